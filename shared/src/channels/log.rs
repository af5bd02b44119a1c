//! The log provider records what would have been sent instead of sending it. It is the
//! default for every channel without a configured provider, and what it recorded can be
//! read back through `GET /v1/log-messages`.

use super::{OutboundMessage, Provider, ProviderError, Receipt};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use utoipa::ToSchema;

/// How many recorded messages are kept (the oldest are dropped first).
const KEEP: usize = 1000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoggedMessage {
    pub delivery_id: String,
    pub notification_id: String,
    pub app_id: String,
    pub channel: String,
    /// The address with most of it masked.
    pub to: String,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
}

#[derive(Default)]
pub struct LogProvider {
    recent: Mutex<VecDeque<LoggedMessage>>,
}

impl LogProvider {
    pub fn recent(&self, app_id: &str) -> Vec<LoggedMessage> {
        let recent = self.recent.lock().expect("log provider lock");
        recent.iter().filter(|m| m.app_id == app_id).cloned().collect()
    }
}

#[async_trait]
impl Provider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let channel = message.address.channel();
        let content = channel.map(|c| message.content.json(c)).unwrap_or_default();
        let channel = channel.map_or("none", |c| c.as_str());
        let logged = LoggedMessage {
            delivery_id: message.delivery_id.to_string(),
            notification_id: message.notification_id.to_string(),
            app_id: message.app_id.clone(),
            channel: channel.into(),
            to: message.address.redacted(),
            content,
        };
        tracing::info!(delivery = %logged.delivery_id, channel, to = %logged.to, "log provider: would send");
        let mut recent = self.recent.lock().expect("log provider lock");
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(logged);
        Ok(Receipt { provider_message_id: Some(format!("log-{}", message.delivery_id)) })
    }
}
