//! A Feishu custom bot: `POST /open-apis/bot/v2/hook/{token}`. A signing bot takes
//! `timestamp` (seconds) and `sign` in the body: base64 of HMAC-SHA256 keyed with
//! `timestamp + "\n" + secret` over an empty message.

use super::{classify, message};
use crate::channels::chat::http::{code, json, transport};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::integrations::{SecretValues, WindowLimit};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `sign` of a message sent at `timestamp` (Unix seconds).
pub fn bot_signature(secret: &str, timestamp: i64) -> String {
    let key = format!("{timestamp}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    STANDARD.encode(mac.finalize().into_bytes())
}

pub struct BotProvider {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
}

impl BotProvider {
    pub fn new(
        client: reqwest::Client,
        base: String,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let token = secrets.get("hook_token").ok_or("secret 'hook_token' is not set")?;
        Ok(Self {
            client,
            url: format!("{base}/open-apis/bot/v2/hook/{token}"),
            secret: secrets.get("secret").cloned(),
        })
    }
}

#[async_trait]
impl Provider for BotProvider {
    fn name(&self) -> &'static str {
        "feishu_bot"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let content = outbound
            .content
            .feishu
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no feishu content".into()))?;
        let (kind, part) = message(content);
        let mut body = serde_json::json!({"msg_type": kind});
        body[if kind == "interactive" { "card" } else { "content" }] = part;
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp();
            body["timestamp"] = now.to_string().into();
            body["sign"] = bot_signature(secret, now).into();
        }
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("feishu", e))?;
        let answer = json("feishu", response).await?;
        // Newer answers carry `code`, older ones `StatusCode`.
        match code(&answer, "code").or_else(|| code(&answer, "StatusCode")) {
            Some(0) => Ok(Receipt { provider_message_id: None }),
            Some(code) => Err(classify(code, answer["msg"].as_str())),
            None => Err(ProviderError::Permanent("feishu answered without a code".into())),
        }
    }

    /// 100 a minute per bot (and 5 a second, `rate_limit_per_second`).
    fn window_limit(&self) -> Option<WindowLimit> {
        Some(WindowLimit::per_minute(100))
    }

    fn rate_limit_per_second(&self) -> Option<u32> {
        Some(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python, as Feishu's documentation computes it:
    /// base64.b64encode(hmac.new(b"1700000000\nsecret", b"", sha256).digest())
    #[test]
    fn signature_matches_an_independent_computation() {
        assert_eq!(
            bot_signature("secret", 1_700_000_000),
            "fiWS2+gh28DOydAv7hzONH/mDn9+b1Y4Y5ivXWXy8vA="
        );
    }
}
