//! DingTalk work notifications: `GET /gettoken?appkey&appsecret` for a two-hour access
//! token, then `POST /topapi/message/corpconversation/asyncsend_v2?access_token=…` with
//! the app's `agent_id`, the user ids and the message. DingTalk answers with a task id
//! and delivers asynchronously.

use super::{classify, message};
use crate::channels::chat::ChatTarget;
use crate::channels::chat::http::{code, json, transport};
use crate::channels::chat::tokens::{AccessToken, TokenCache};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use crate::integrations::{Integration, SecretValues};
use async_trait::async_trait;

pub struct WorkProvider {
    client: reqwest::Client,
    base: String,
    agent_id: i64,
    app_key: String,
    app_secret: String,
    tokens: TokenCache,
    token_key: String,
}

impl WorkProvider {
    pub fn new(
        client: reqwest::Client,
        base: String,
        integration: &Integration,
        secrets: &SecretValues,
        tokens: TokenCache,
    ) -> Result<Self, String> {
        let agent_id = integration
            .config
            .get("agent_id")
            .and_then(serde_json::Value::as_i64)
            .ok_or("config 'agent_id' is not set")?;
        let secret = |name: &str| crate::channels::chat::http::secret(secrets, name);
        Ok(Self {
            client,
            base,
            agent_id,
            app_key: secret("app_key")?,
            app_secret: secret("app_secret")?,
            tokens,
            token_key: TokenCache::key_for(integration),
        })
    }

    async fn fetch_token(&self) -> Result<AccessToken, ProviderError> {
        let response = self
            .client
            .get(format!("{}/gettoken", self.base))
            .query(&[("appkey", &self.app_key), ("appsecret", &self.app_secret)])
            .send()
            .await
            .map_err(|e| transport("dingtalk", e))?;
        let answer = json("dingtalk", response).await?;
        match (code(&answer, "errcode"), answer["access_token"].as_str()) {
            (Some(0), Some(token)) => Ok(AccessToken::lasting(
                token.to_owned(),
                code(&answer, "expires_in").unwrap_or(7200),
            )),
            // A refused key and secret cannot be fixed by trying again.
            (code, _) => Err(ProviderError::Unavailable(format!(
                "dingtalk gettoken: {}",
                crate::channels::chat::http::vendor_error(
                    "dingtalk",
                    code.unwrap_or(-1),
                    answer["errmsg"].as_str()
                )
            ))),
        }
    }
}

#[async_trait]
impl Provider for WorkProvider {
    fn name(&self) -> &'static str {
        "dingtalk_work"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Dingtalk(ChatTarget::Id(user)) = &outbound.address else {
            return Err(ProviderError::InvalidAddress(
                "a work notification goes to a user id".into(),
            ));
        };
        let content = outbound
            .content
            .dingtalk
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no dingtalk content".into()))?;
        let token = self.tokens.get(&self.token_key, || self.fetch_token()).await?;
        let body = serde_json::json!({
            "agent_id": self.agent_id,
            "userid_list": user,
            "msg": message(content, true),
        });
        let response = self
            .client
            .post(format!("{}/topapi/message/corpconversation/asyncsend_v2", self.base))
            .query(&[("access_token", &token)])
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("dingtalk", e))?;
        let answer = json("dingtalk", response).await?;
        match code(&answer, "errcode") {
            Some(0) => {
                Ok(Receipt { provider_message_id: code(&answer, "task_id").map(|t| t.to_string()) })
            }
            Some(code) => {
                let error = classify(code, answer["errmsg"].as_str());
                Err(self.tokens.after_refusal(&self.token_key, &token, error).await)
            }
            None => Err(ProviderError::Permanent("dingtalk answered without errcode".into())),
        }
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.tokens.get(&self.token_key, || self.fetch_token()).await.map(|_| ())
    }
}
