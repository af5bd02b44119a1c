//! Feishu app messages: `POST /open-apis/auth/v3/tenant_access_token/internal` with the
//! app id and secret for a two-hour tenant token, then `POST /open-apis/im/v1/messages
//! ?receive_id_type=…` with the message's content as a JSON string. The delivery id
//! goes as `uuid`, which Feishu uses to drop a repeat within the hour: a redelivered
//! send does not post twice.

use super::{classify, message};
use crate::channels::chat::ChatTarget;
use crate::channels::chat::http::{code, json, transport, vendor_error};
use crate::channels::chat::tokens::{AccessToken, TokenCache};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use crate::integrations::{Integration, SecretValues};
use async_trait::async_trait;

pub struct AppProvider {
    client: reqwest::Client,
    base: String,
    app_id: String,
    app_secret: String,
    tokens: TokenCache,
    token_key: String,
}

/// How Feishu is told what kind of id `id` is, from its form: open ids start `ou_`,
/// union ids `on_`, chat ids `oc_`, emails hold an `@`; anything else is a user id.
pub fn receive_id_type(id: &str) -> &'static str {
    match id {
        _ if id.starts_with("ou_") => "open_id",
        _ if id.starts_with("on_") => "union_id",
        _ if id.starts_with("oc_") => "chat_id",
        _ if id.contains('@') => "email",
        _ => "user_id",
    }
}

impl AppProvider {
    pub fn new(
        client: reqwest::Client,
        base: String,
        integration: &Integration,
        secrets: &SecretValues,
        tokens: TokenCache,
    ) -> Result<Self, String> {
        let secret = |name: &str| crate::channels::chat::http::secret(secrets, name);
        Ok(Self {
            client,
            base,
            app_id: secret("app_id")?,
            app_secret: secret("app_secret")?,
            tokens,
            token_key: TokenCache::key_for(integration),
        })
    }

    async fn fetch_token(&self) -> Result<AccessToken, ProviderError> {
        let response = self
            .client
            .post(format!("{}/open-apis/auth/v3/tenant_access_token/internal", self.base))
            .json(&serde_json::json!({"app_id": self.app_id, "app_secret": self.app_secret}))
            .send()
            .await
            .map_err(|e| transport("feishu", e))?;
        let answer = json("feishu", response).await?;
        match (code(&answer, "code"), answer["tenant_access_token"].as_str()) {
            (Some(0), Some(token)) => {
                Ok(AccessToken::lasting(token.to_owned(), code(&answer, "expire").unwrap_or(7200)))
            }
            (code, _) => Err(ProviderError::Unavailable(format!(
                "feishu tenant_access_token: {}",
                vendor_error("feishu", code.unwrap_or(-1), answer["msg"].as_str())
            ))),
        }
    }
}

#[async_trait]
impl Provider for AppProvider {
    fn name(&self) -> &'static str {
        "feishu_app"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Feishu(ChatTarget::Id(id)) = &outbound.address else {
            return Err(ProviderError::InvalidAddress("an app message goes to an id".into()));
        };
        let content = outbound
            .content
            .feishu
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no feishu content".into()))?;
        let token = self.tokens.get(&self.token_key, || self.fetch_token()).await?;
        let (kind, part) = message(content);
        let body = serde_json::json!({
            "receive_id": id,
            "msg_type": kind,
            "content": part.to_string(),
            "uuid": outbound.delivery_id.to_string(),
        });
        let response = self
            .client
            .post(format!("{}/open-apis/im/v1/messages", self.base))
            .query(&[("receive_id_type", receive_id_type(id))])
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("feishu", e))?;
        let answer = json("feishu", response).await?;
        match code(&answer, "code") {
            Some(0) => Ok(Receipt {
                provider_message_id: answer["data"]["message_id"].as_str().map(str::to_owned),
            }),
            Some(code) => {
                let error = classify(code, answer["msg"].as_str());
                Err(self.tokens.after_refusal(&self.token_key, &token, error).await)
            }
            None => Err(ProviderError::Permanent("feishu answered without a code".into())),
        }
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.tokens.get(&self.token_key, || self.fetch_token()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_say_their_type() {
        assert_eq!(receive_id_type("ou_7d8a6e6df7621556ce0d21922b676706ccs"), "open_id");
        assert_eq!(receive_id_type("oc_a0553eda9014c201e6969b478895c230"), "chat_id");
        assert_eq!(receive_id_type("ann@example.com"), "email");
        assert_eq!(receive_id_type("5d9bdxxx"), "user_id");
    }
}
