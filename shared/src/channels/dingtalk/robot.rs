//! A DingTalk group robot: `POST /robot/send?access_token=…`, with `timestamp` and
//! `sign` when the robot signs: base64 of HMAC-SHA256 keyed with the secret over
//! `timestamp + "\n" + secret`, the timestamp in milliseconds.

use super::{classify, message};
use crate::channels::chat::http::{code, json, transport};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::integrations::SecretValues;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `sign` parameter for a request made at `timestamp_ms` (before URL encoding).
pub fn robot_signature(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

pub struct RobotProvider {
    client: reqwest::Client,
    url: String,
    access_token: String,
    secret: Option<String>,
}

impl RobotProvider {
    pub fn new(
        client: reqwest::Client,
        base: String,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let access_token =
            secrets.get("access_token").ok_or("secret 'access_token' is not set")?.clone();
        let secret = secrets.get("secret").cloned();
        Ok(Self { client, url: format!("{base}/robot/send"), access_token, secret })
    }
}

#[async_trait]
impl Provider for RobotProvider {
    fn name(&self) -> &'static str {
        "dingtalk_robot"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let content = outbound
            .content
            .dingtalk
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no dingtalk content".into()))?;
        let mut body = message(content, false);
        if let Some(m) = &content.mentions {
            body["at"] = serde_json::json!({
                "atUserIds": m.user_ids, "atMobiles": m.mobiles, "isAtAll": m.all,
            });
        }
        let mut query = vec![("access_token", self.access_token.clone())];
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp_millis();
            query.push(("timestamp", now.to_string()));
            query.push(("sign", robot_signature(secret, now)));
        }
        let response = self
            .client
            .post(&self.url)
            .query(&query)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("dingtalk", e))?;
        let answer = json("dingtalk", response).await?;
        match code(&answer, "errcode") {
            Some(0) => Ok(Receipt { provider_message_id: None }),
            Some(code) => Err(classify(code, answer["errmsg"].as_str())),
            None => Err(ProviderError::Permanent("dingtalk answered without errcode".into())),
        }
    }

    /// Robots take about 20 messages a minute; past that DingTalk mutes them for ten.
    fn window_limit(&self) -> Option<crate::integrations::WindowLimit> {
        Some(crate::integrations::WindowLimit::per_minute(20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value computed with Python's hmac module, as DingTalk's documentation does it:
    /// base64.b64encode(hmac.new(b"SECtest", b"1700000000000\nSECtest", sha256).digest())
    #[test]
    fn signature_matches_an_independent_computation() {
        assert_eq!(
            robot_signature("SECtest", 1_700_000_000_000),
            "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
        );
    }
}
