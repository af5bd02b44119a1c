//! A Slack incoming webhook: `POST` the message to the webhook's URL. Slack answers
//! 200 `ok`, or an HTTP error with a plain-text reason (`invalid_payload`,
//! `channel_not_found`, `no_service`, …).

use super::{classify, message};
use crate::channels::chat::http::{retry_after, transport};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::integrations::WindowLimit;
use async_trait::async_trait;

pub struct WebhookProvider {
    client: reqwest::Client,
    url: String,
}

impl WebhookProvider {
    pub fn new(client: reqwest::Client, url: String) -> Self {
        Self { client, url }
    }
}

#[async_trait]
impl Provider for WebhookProvider {
    fn name(&self) -> &'static str {
        "slack_webhook"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let content = outbound
            .content
            .slack
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no slack content".into()))?;
        let response = self
            .client
            .post(&self.url)
            .json(&message(content))
            .send()
            .await
            .map_err(|e| transport("slack", e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let reason = response.text().await.unwrap_or_default();
        let reason = reason.trim();
        if status.is_success() {
            return Ok(Receipt { provider_message_id: None });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(ProviderError::Transient {
                message: format!("slack answered {status}"),
                retry_after: wait,
            });
        }
        Err(classify(if reason.is_empty() { status.as_str() } else { reason }))
    }

    /// About one message a second per webhook.
    fn window_limit(&self) -> Option<WindowLimit> {
        Some(WindowLimit { max: 1, window_seconds: 1 })
    }
}
