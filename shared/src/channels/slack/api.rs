//! `POST /api/chat.postMessage` with a bot token. Slack answers 200 with `{"ok": true,
//! "ts"}` or `{"ok": false, "error"}`, and 429 with `Retry-After` when rate limited.

use super::{classify, message};
use crate::channels::chat::ChatTarget;
use crate::channels::chat::http::{json, transport};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use async_trait::async_trait;

pub struct ApiProvider {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl ApiProvider {
    pub fn new(client: reqwest::Client, base: String, token: String) -> Self {
        Self { client, url: format!("{base}/api/chat.postMessage"), token }
    }
}

#[async_trait]
impl Provider for ApiProvider {
    fn name(&self) -> &'static str {
        "slack_api"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Slack(ChatTarget::Id(channel)) = &outbound.address else {
            return Err(ProviderError::InvalidAddress("chat.postMessage needs an id".into()));
        };
        let content = outbound
            .content
            .slack
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no slack content".into()))?;
        let mut body = message(content);
        body["channel"] = channel.as_str().into();
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("slack", e))?;
        let answer = json("slack", response).await?;
        if answer["ok"].as_bool() == Some(true) {
            return Ok(Receipt { provider_message_id: answer["ts"].as_str().map(str::to_owned) });
        }
        Err(classify(answer["error"].as_str().unwrap_or("unknown_error")))
    }
}
