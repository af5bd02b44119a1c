//! Channels and their providers. Each channel is one unit in its own folder (its
//! content, address, validation, templating, providers and feedback); the registry
//! below is the one list of them, and generates the types the rest of the crate uses
//! (`Channel`, `Content`, `TemplateParts`, `Recipient`, `Address`). Adding a channel:
//! docs/design.md, "Adding a channel".

pub mod chat;
pub mod dingtalk;
pub mod email;
mod factory;
pub mod feishu;
mod log;
pub mod qq;
mod registry;
pub mod slack;
pub mod sms;
mod unit;
pub mod webhook;
pub mod wechat;
pub mod wecom;

pub use self::log::{LogProvider, LoggedMessage};
pub use chat::{ChatContent, ChatTarget};
#[cfg(feature = "aws")]
pub use email::SesProvider;
pub use email::{DELIVERY_TAG, EmailAddress, EmailContent};
#[cfg(feature = "smtp")]
pub use email::{SmtpConfig, SmtpProvider, SmtpTls};
pub use factory::HostProviders;
pub use registry::{TemplateText, part};
pub use sms::{PhoneNumber, SmsContent};
#[cfg(feature = "aws")]
pub use sms::{SnsSmsProvider, sms_type};
pub use unit::{ChannelUnit, Feedback, JsonShape, Report};
pub use webhook::{WebhookData, WebhookProvider, WebhookSecret, WebhookTarget, sign_payload};
pub use wechat::WechatContent;

registry::channel_registry! {
    Email(email) => email::Email {
        content: EmailContent,
        to: email: EmailAddress,
        address: Email,
    },
    Sms(sms) => sms::Sms {
        content: SmsContent,
        to: phone: PhoneNumber,
        address: Phone,
    },
    Webhook(webhook) => webhook::Webhook {
        content: WebhookData,
        to: webhook: WebhookTarget,
        address: Webhook,
    },
    Dingtalk(dingtalk) => dingtalk::DingTalk {
        content: ChatContent,
        to: dingtalk: ChatTarget,
        address: Dingtalk,
    },
    Wecom(wecom) => wecom::WeCom {
        content: ChatContent,
        to: wecom: ChatTarget,
        address: Wecom,
    },
    Feishu(feishu) => feishu::Feishu {
        content: ChatContent,
        to: feishu: ChatTarget,
        address: Feishu,
    },
    Slack(slack) => slack::Slack {
        content: ChatContent,
        to: slack: ChatTarget,
        address: Slack,
    },
    Wechat(wechat) => wechat::Wechat {
        content: WechatContent,
        to: wechat: ChatTarget,
        address: Wechat,
    },
    Qq(qq) => qq::Qq {
        content: ChatContent,
        to: qq: ChatTarget,
        address: Qq,
    },
}

/// The text of a test send when the request gives none.
pub(crate) const TEST_TEXT: &str = "This is a test message from Herald.";

fn not_on_this_host(provider: &str) -> String {
    format!("provider '{provider}' is not available on this host")
}

use crate::domain::{DeliveryId, NotificationId, Priority};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a provider needs to send one delivery.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub delivery_id: DeliveryId,
    pub notification_id: NotificationId,
    pub app_id: String,
    pub priority: Priority,
    pub category: Option<String>,
    pub address: Address,
    pub content: Content,
    /// A signed one-click unsubscribe URL: email providers send it as RFC 8058
    /// `List-Unsubscribe` with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
    pub unsubscribe_url: Option<String>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The unsubscribe headers of an email: for a signed one-click link, RFC 8058's pair
/// (`List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`);
/// otherwise the operator's own `List-Unsubscribe` template, if configured.
pub fn unsubscribe_headers(
    message: &OutboundMessage,
    configured: Option<&str>,
) -> Vec<(&'static str, String)> {
    match (&message.unsubscribe_url, configured) {
        (Some(url), _) => vec![
            ("List-Unsubscribe", format!("<{url}>")),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_owned()),
        ],
        (None, Some(template)) => vec![(
            "List-Unsubscribe",
            template.replace("{delivery_id}", &message.delivery_id.to_string()),
        )],
        (None, None) => Vec::new(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Receipt {
    pub provider_message_id: Option<String>,
}

/// What went wrong, in the classes the send stage acts on (after vector's sinks).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Worth another try later; `retry_after` is the provider's own hint (HTTP
    /// `Retry-After`, a vendor's rate-limit code), used instead of the backoff.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<std::time::Duration> },
    /// The provider's access token expired: refresh it once and try again at once.
    #[error("{0}")]
    CredentialsExpired(String),
    /// This recipient cannot be reached this way (unknown user, invalid number): no
    /// other integration would do better, so the delivery fails.
    #[error("{0}")]
    InvalidAddress(String),
    /// This message is refused for good (content, size, policy).
    #[error("{0}")]
    Permanent(String),
    /// The integration itself cannot send (bad credentials, suspended account, not
    /// available on this host): the send fails over to the next integration.
    #[error("{0}")]
    Unavailable(String),
}

impl ProviderError {
    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::Transient { message: message.into(), retry_after: None }
    }

    /// Whether the next integration of the channel should be tried.
    pub fn fails_over(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_) | ProviderError::CredentialsExpired(_))
    }
}

/// A polled receipt: what to apply to the delivery, and whether the vendor will say
/// nothing more (asking again is pointless).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolledReceipt {
    pub feedback: Vec<Feedback>,
    pub settled: bool,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// A short name recorded on each delivery (`smtp`, `webhook`, `log`, …).
    fn name(&self) -> &'static str;
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError>;
    /// Whether the provider can send now (credentials, connectivity), without sending.
    async fn check(&self) -> Result<(), ProviderError> {
        Ok(())
    }
    /// Drops cached credentials so that the next send fetches new ones.
    async fn refresh_credentials(&self) {}
    /// The vendor's documented send rate, when it has one and the integration sets none.
    fn rate_limit_per_second(&self) -> Option<u32> {
        None
    }
    /// Whether the vendor's receipts name only its own message id, so that the send
    /// must remember which delivery that id belongs to (`ReceiptStore`).
    fn receipts_by_message_id(&self) -> bool {
        false
    }
    /// Whether the vendor reports on a message only when asked (DingTalk's
    /// `getsendresult`): then the send queues polls of `poll_receipt` after it.
    fn polls_receipts(&self) -> bool {
        false
    }
    /// What the vendor knows now of message `message_id`, sent to `address`.
    async fn poll_receipt(
        &self,
        message_id: &str,
        address: &Address,
    ) -> Result<PolledReceipt, ProviderError> {
        let _ = (message_id, address);
        Ok(PolledReceipt::default())
    }
    /// The vendor's limit per recipient (WeCom: 30 a minute to one member, dropped
    /// silently past it), which Herald paces each recipient's sends to.
    fn recipient_window_limit(&self) -> Option<crate::integrations::WindowLimit> {
        None
    }
    /// The vendor's documented limit per window (a robot's 20 a minute), which Herald
    /// paces sends to, when the integration sets none.
    fn window_limit(&self) -> Option<crate::integrations::WindowLimit> {
        None
    }
}

/// The provider for each channel; channels without one configured use the log provider,
/// so a fresh `herald serve` works with no setup.
#[derive(Clone)]
pub struct Providers {
    by_channel: HashMap<Channel, Arc<dyn Provider>>,
    fallback: Arc<LogProvider>,
}

impl Providers {
    pub fn new(log: Arc<LogProvider>) -> Self {
        Self { by_channel: HashMap::new(), fallback: log }
    }

    pub fn with(mut self, channel: Channel, provider: Arc<dyn Provider>) -> Self {
        self.by_channel.insert(channel, provider);
        self
    }

    pub fn for_channel(&self, channel: Channel) -> Arc<dyn Provider> {
        self.by_channel.get(&channel).cloned().unwrap_or_else(|| self.fallback.clone())
    }

    pub fn log(&self) -> Arc<LogProvider> {
        self.fallback.clone()
    }
}
