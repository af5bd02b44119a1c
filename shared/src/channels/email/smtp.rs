//! Email over SMTP with lettre: a pooled connection, TLS as configured, and SMTP reply
//! codes mapped to retry decisions (4xx transient, 5xx permanent).

use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text; only for a relay on the same host or a test server.
    None,
    /// Connect in plain text and upgrade with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            other => Err(format!("unknown SMTP TLS mode '{other}' (none, starttls or tls)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: Mailbox,
    /// A `List-Unsubscribe` value with `{delivery_id}` filled in per message. The
    /// preferences work will replace it with a signed one-click link.
    pub list_unsubscribe: Option<String>,
    pub timeout: Duration,
}

pub struct SmtpProvider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    list_unsubscribe: Option<String>,
}

impl SmtpProvider {
    pub fn new(config: SmtpConfig) -> Result<Self, String> {
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("SMTP STARTTLS setup failed: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| format!("SMTP TLS setup failed: {e}"))?,
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (config.username, config.password) {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            transport: builder.build(),
            from: config.from,
            list_unsubscribe: config.list_unsubscribe,
        })
    }

    fn build_message(&self, message: &OutboundMessage) -> Result<Message, ProviderError> {
        let permanent = |e: &dyn std::fmt::Display| ProviderError::Permanent(e.to_string());
        let Address::Email(to) = &message.address else {
            return Err(ProviderError::Permanent("not an email address".into()));
        };
        let Some(email) = &message.content.email else {
            return Err(ProviderError::Permanent("the notification has no email content".into()));
        };
        let to: Mailbox = to.as_str().parse().map_err(|e| permanent(&e))?;
        let domain = self.from.email.domain().to_owned();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}@{}>", message.delivery_id, domain)));
        for (name, value) in
            crate::channels::unsubscribe_headers(message, self.list_unsubscribe.as_deref())
        {
            builder =
                builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(name), value));
        }
        let built = match (&email.text, &email.html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
            }
            (None, Some(html)) => builder.singlepart(
                SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone()),
            ),
            (text, None) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text.clone().unwrap_or_default()),
            ),
        };
        built.map_err(|e| permanent(&e))
    }
}

/// RFC 4954's authentication replies (530, 534, 535, 538) say the integration's
/// credentials are wrong: fail over. Other 5xx replies refuse this message or mailbox.
fn classify(error: &lettre::transport::smtp::Error) -> ProviderError {
    let text = format!("SMTP: {error}");
    let code = error.status().map(|code| code.to_string());
    match code.as_deref() {
        Some("530" | "534" | "535" | "538") => ProviderError::Unavailable(text),
        Some("550" | "551" | "553") => ProviderError::InvalidAddress(text),
        _ if error.is_permanent() => ProviderError::Permanent(text),
        _ => ProviderError::transient(text),
    }
}

#[async_trait]
impl Provider for SmtpProvider {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let email = self.build_message(message)?;
        match self.transport.send(email).await {
            Ok(response) => Ok(Receipt {
                provider_message_id: Some(
                    response.message().collect::<Vec<_>>().join(" ").chars().take(200).collect(),
                ),
            }),
            Err(e) => Err(classify(&e)),
        }
    }

    async fn check(&self) -> Result<(), ProviderError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProviderError::transient("SMTP: the server did not answer NOOP")),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// An `smtp` integration's provider.
pub(super) fn from_integration(
    config: &serde_json::Map<String, serde_json::Value>,
    secrets: &crate::integrations::SecretValues,
) -> Result<std::sync::Arc<dyn Provider>, String> {
    let text = |name: &str| config.get(name).and_then(serde_json::Value::as_str);
    let tls: SmtpTls = text("tls").unwrap_or("starttls").parse()?;
    let default_port = match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let port = config.get("port").and_then(serde_json::Value::as_u64);
    let from = text("from").ok_or("config 'from' is not set")?;
    let smtp = SmtpConfig {
        host: text("host").ok_or("config 'host' is not set")?.to_owned(),
        port: port.and_then(|p| u16::try_from(p).ok()).unwrap_or(default_port),
        tls,
        username: text("username").map(str::to_owned),
        password: secrets.get("password").cloned(),
        from: from.parse().map_err(|e| format!("config 'from': {e}"))?,
        list_unsubscribe: None,
        timeout: Duration::from_secs(30),
    };
    Ok(std::sync::Arc::new(SmtpProvider::new(smtp)?))
}
