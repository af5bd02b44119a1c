//! A WeChat Official Account's sends: `POST /cgi-bin/stable_token` for the token (the
//! same token while it is valid; `force_refresh` only when WeChat refused the one we
//! hold), then `POST /cgi-bin/message/template/send` (or `subscribe/bizsend`) with the
//! openid, the template and its data as `{field: {"value": …}}`. The delivery id goes
//! as `client_msg_id`, which WeChat uses to drop a repeated send.

use super::WechatContent;
use crate::channels::chat::ChatTarget;
use crate::channels::chat::http::{code, json, transport, vendor_error};
use crate::channels::chat::tokens::{AccessToken, TokenCache};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use crate::integrations::{Integration, SecretValues};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Mutex;

pub struct OfficialAccount {
    client: reqwest::Client,
    base: String,
    app_id: String,
    app_secret: String,
    tokens: TokenCache,
    token_key: String,
    /// The last token WeChat refused: a fetch that returns it again is forced.
    refused: Mutex<Option<String>>,
}

fn classify(code: i64, message: Option<&str>) -> ProviderError {
    use ProviderError::*;
    let text = vendor_error("wechat", code, message);
    match code {
        -1 | 45009 | 45047 => ProviderError::transient(text),
        40001 | 40014 | 42001 => CredentialsExpired(text),
        // Not a follower, an openid of another account, refused subscriptions.
        43004 | 40003 | 43101 | 43019 => InvalidAddress(text),
        40013 | 40125 | 40164 | 48001 | 50001 | 50002 => Unavailable(text),
        _ => Permanent(text),
    }
}

impl OfficialAccount {
    pub fn new(
        client: reqwest::Client,
        base: String,
        integration: &Integration,
        secrets: &SecretValues,
        tokens: TokenCache,
    ) -> Result<Self, String> {
        let app_id = integration
            .config
            .get("app_id")
            .and_then(Value::as_str)
            .ok_or("config 'app_id' is not set")?;
        let app_secret = secrets.get("app_secret").ok_or("secret 'app_secret' is not set")?;
        Ok(Self {
            client,
            base,
            app_id: app_id.to_owned(),
            app_secret: app_secret.clone(),
            tokens,
            token_key: TokenCache::key_for(integration),
            refused: Mutex::new(None),
        })
    }

    async fn stable_token(&self, force: bool) -> Result<AccessToken, ProviderError> {
        let response = self
            .client
            .post(format!("{}/cgi-bin/stable_token", self.base))
            .json(&json!({"grant_type": "client_credential", "appid": self.app_id,
                          "secret": self.app_secret, "force_refresh": force}))
            .send()
            .await
            .map_err(|e| transport("wechat", e))?;
        let answer = json("wechat", response).await?;
        match answer["access_token"].as_str() {
            Some(token) => Ok(AccessToken::lasting(
                token.to_owned(),
                code(&answer, "expires_in").unwrap_or(7200),
            )),
            None => Err(ProviderError::Unavailable(format!(
                "wechat stable_token: {}",
                vendor_error(
                    "wechat",
                    code(&answer, "errcode").unwrap_or(-1),
                    answer["errmsg"].as_str()
                )
            ))),
        }
    }

    async fn fetch_token(&self) -> Result<AccessToken, ProviderError> {
        let token = self.stable_token(false).await?;
        let refused = self.refused.lock().expect("refused token").clone();
        if refused.as_deref() == Some(token.value.as_str()) {
            return self.stable_token(true).await;
        }
        Ok(token)
    }
}

fn body(openid: &str, content: &WechatContent, delivery: &str) -> (&'static str, Value) {
    let data: Map<String, Value> =
        content.data.iter().map(|(k, v)| (k.clone(), json!({"value": v}))).collect();
    let mut body = json!({"touser": openid, "template_id": content.template_id, "data": data});
    if let Some(mini) = &content.miniprogram {
        body["miniprogram"] = json!({"appid": mini.appid, "pagepath": mini.pagepath});
    }
    if content.subscribe {
        if let Some(url) = &content.url {
            body["page"] = url.clone().into();
        }
        return ("/cgi-bin/message/subscribe/bizsend", body);
    }
    if let Some(url) = &content.url {
        body["url"] = url.clone().into();
    }
    body["client_msg_id"] = delivery.into();
    ("/cgi-bin/message/template/send", body)
}

#[async_trait]
impl Provider for OfficialAccount {
    fn name(&self) -> &'static str {
        "wechat_oa"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Wechat(ChatTarget::Id(openid)) = &outbound.address else {
            return Err(ProviderError::InvalidAddress("WeChat sends to an openid".into()));
        };
        let content = outbound
            .content
            .wechat
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no wechat content".into()))?;
        let token = self.tokens.get(&self.token_key, || self.fetch_token()).await?;
        let (path, body) = body(openid, content, &outbound.delivery_id.to_string());
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .query(&[("access_token", &token)])
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("wechat", e))?;
        let answer = json("wechat", response).await?;
        // Success is errcode 0 (subscribe messages) or a msgid (template messages).
        match code(&answer, "errcode").or_else(|| answer.get("msgid").map(|_| 0)) {
            Some(0) => {
                Ok(Receipt { provider_message_id: code(&answer, "msgid").map(|id| id.to_string()) })
            }
            Some(code) => {
                let error = classify(code, answer["errmsg"].as_str());
                if matches!(error, ProviderError::CredentialsExpired(_)) {
                    *self.refused.lock().expect("refused token") = Some(token.clone());
                    self.tokens.expire(&self.token_key, &token).await;
                }
                Err(error)
            }
            None => Err(ProviderError::Permanent("wechat answered without errcode".into())),
        }
    }

    /// `TEMPLATESENDJOBFINISH` names the `msgid` only.
    fn receipts_by_message_id(&self) -> bool {
        true
    }

    async fn check(&self) -> Result<(), ProviderError> {
        self.tokens.get(&self.token_key, || self.fetch_token()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn template_data_is_wrapped_in_values() {
        let content = WechatContent {
            template_id: "T1".into(),
            data: BTreeMap::from([("thing1".into(), "Order 1001".into())]),
            url: Some("https://example.com/o/1001".into()),
            ..Default::default()
        };
        let (path, body) = body("oABC", &content, "dlv_1");
        assert_eq!(path, "/cgi-bin/message/template/send");
        assert_eq!(body["data"]["thing1"]["value"], "Order 1001");
        assert_eq!(body["client_msg_id"], "dlv_1");
        let (path, body) = body_subscribe(&content);
        assert_eq!(path, "/cgi-bin/message/subscribe/bizsend");
        assert_eq!(body["page"], "https://example.com/o/1001");
    }

    fn body_subscribe(content: &WechatContent) -> (&'static str, Value) {
        body("oABC", &WechatContent { subscribe: true, ..content.clone() }, "dlv_1")
    }

    #[test]
    fn codes_are_classified() {
        assert!(matches!(classify(40001, None), ProviderError::CredentialsExpired(_)));
        assert!(matches!(classify(43004, None), ProviderError::InvalidAddress(_)));
        assert!(matches!(classify(40037, None), ProviderError::Permanent(_)));
    }
}
