//! A WeCom group robot: `POST /cgi-bin/webhook/send?key=…`; the key is the secret.

use super::{classify, message};
use crate::channels::chat::http::{code, json, transport};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::integrations::{SecretValues, WindowLimit};
use async_trait::async_trait;

pub struct RobotProvider {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl RobotProvider {
    pub fn new(
        client: reqwest::Client,
        base: String,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let key = secrets.get("key").ok_or("secret 'key' is not set")?.clone();
        Ok(Self { client, url: format!("{base}/cgi-bin/webhook/send"), key })
    }
}

#[async_trait]
impl Provider for RobotProvider {
    fn name(&self) -> &'static str {
        "wecom_robot"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let content = outbound
            .content
            .wecom
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no wecom content".into()))?;
        let mut body = message(content, false);
        // Mentions work in text messages: user ids, "@all", and mobiles.
        if let (Some(m), Some(text)) = (&content.mentions, body.get_mut("text")) {
            let mut users = m.user_ids.clone();
            if m.all {
                users.push("@all".into());
            }
            text["mentioned_list"] = serde_json::json!(users);
            text["mentioned_mobile_list"] = serde_json::json!(m.mobiles);
        }
        let response = self
            .client
            .post(&self.url)
            .query(&[("key", &self.key)])
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("wecom", e))?;
        let answer = json("wecom", response).await?;
        match code(&answer, "errcode") {
            Some(0) => Ok(Receipt { provider_message_id: None }),
            Some(code) => Err(classify(code, answer["errmsg"].as_str())),
            None => Err(ProviderError::Permanent("wecom answered without errcode".into())),
        }
    }

    /// A robot takes 20 messages a minute.
    fn window_limit(&self) -> Option<WindowLimit> {
        Some(WindowLimit::per_minute(20))
    }
}
