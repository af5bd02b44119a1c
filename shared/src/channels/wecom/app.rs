//! WeCom app messages: `GET /cgi-bin/gettoken?corpid&corpsecret` for a two-hour access
//! token, then `POST /cgi-bin/message/send?access_token=…` with `touser`, `agentid`
//! and the message. WeCom reports members it could not reach in `invaliduser` (and
//! `unlicenseduser`) of a successful answer: that delivery fails as an invalid address.

use super::{classify, message};
use crate::channels::chat::ChatTarget;
use crate::channels::chat::http::{code, json, transport, vendor_error};
use crate::channels::chat::tokens::{AccessToken, TokenCache};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use crate::integrations::{Integration, SecretValues};
use async_trait::async_trait;
use serde_json::Value;

pub struct AppProvider {
    client: reqwest::Client,
    base: String,
    corp_id: String,
    agent_id: i64,
    corp_secret: String,
    tokens: TokenCache,
    token_key: String,
}

impl AppProvider {
    pub fn new(
        client: reqwest::Client,
        base: String,
        integration: &Integration,
        secrets: &SecretValues,
        tokens: TokenCache,
    ) -> Result<Self, String> {
        let config = &integration.config;
        let corp_id =
            config.get("corp_id").and_then(Value::as_str).ok_or("config 'corp_id' is not set")?;
        let agent_id =
            config.get("agent_id").and_then(Value::as_i64).ok_or("config 'agent_id' is not set")?;
        let corp_secret = secrets.get("corp_secret").ok_or("secret 'corp_secret' is not set")?;
        Ok(Self {
            client,
            base,
            corp_id: corp_id.to_owned(),
            agent_id,
            corp_secret: corp_secret.clone(),
            tokens,
            token_key: TokenCache::key_for(integration),
        })
    }

    async fn fetch_token(&self) -> Result<AccessToken, ProviderError> {
        let response = self
            .client
            .get(format!("{}/cgi-bin/gettoken", self.base))
            .query(&[("corpid", &self.corp_id), ("corpsecret", &self.corp_secret)])
            .send()
            .await
            .map_err(|e| transport("wecom", e))?;
        let answer = json("wecom", response).await?;
        match (code(&answer, "errcode"), answer["access_token"].as_str()) {
            (Some(0), Some(token)) => Ok(AccessToken::lasting(
                token.to_owned(),
                code(&answer, "expires_in").unwrap_or(7200),
            )),
            (code, _) => Err(ProviderError::Unavailable(format!(
                "wecom gettoken: {}",
                vendor_error("wecom", code.unwrap_or(-1), answer["errmsg"].as_str())
            ))),
        }
    }
}

/// Whether WeCom's list (`a|b`) names `user`.
fn lists(answer: &Value, field: &str, user: &str) -> bool {
    answer[field].as_str().is_some_and(|list| list.split('|').any(|u| u == user))
}

#[async_trait]
impl Provider for AppProvider {
    fn name(&self) -> &'static str {
        "wecom_app"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Wecom(ChatTarget::Id(user)) = &outbound.address else {
            return Err(ProviderError::InvalidAddress("an app message goes to a user id".into()));
        };
        let content = outbound
            .content
            .wecom
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no wecom content".into()))?;
        let token = self.tokens.get(&self.token_key, || self.fetch_token()).await?;
        let mut body = message(content, true);
        body["touser"] = Value::from(user.as_str());
        body["agentid"] = Value::from(self.agent_id);
        let response = self
            .client
            .post(format!("{}/cgi-bin/message/send", self.base))
            .query(&[("access_token", &token)])
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("wecom", e))?;
        let answer = json("wecom", response).await?;
        match code(&answer, "errcode") {
            Some(0) if lists(&answer, "invaliduser", user) => Err(ProviderError::InvalidAddress(
                format!("wecom: {user} is not a member the app can reach (invaliduser)"),
            )),
            Some(0) if lists(&answer, "unlicenseduser", user) => {
                Err(ProviderError::InvalidAddress(format!(
                    "wecom: {user} has no license (unlicenseduser)"
                )))
            }
            Some(0) => {
                Ok(Receipt { provider_message_id: answer["msgid"].as_str().map(str::to_owned) })
            }
            Some(code) => {
                let error = classify(code, answer["errmsg"].as_str());
                Err(self.tokens.after_refusal(&self.token_key, &token, error).await)
            }
            None => Err(ProviderError::Permanent("wecom answered without errcode".into())),
        }
    }

    /// WeCom drops, without a word, more than 30 messages a minute to one member.
    fn recipient_window_limit(&self) -> Option<crate::integrations::WindowLimit> {
        Some(crate::integrations::WindowLimit::per_minute(30))
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.tokens.get(&self.token_key, || self.fetch_token()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_results_name_the_user() {
        let answer = serde_json::json!({"errcode": 0, "invaliduser": "ann|bob"});
        assert!(lists(&answer, "invaliduser", "bob"));
        assert!(!lists(&answer, "invaliduser", "bo"));
        assert!(!lists(&answer, "unlicenseduser", "ann"));
    }
}
