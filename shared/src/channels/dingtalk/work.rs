//! DingTalk work notifications: `GET /gettoken?appkey&appsecret` for a two-hour access
//! token, then `POST /topapi/message/corpconversation/asyncsend_v2?access_token=…` with
//! the app's `agent_id`, the user ids and the message. DingTalk answers with a task id
//! and delivers asynchronously; `getsendresult` with that task id, polled after the
//! send (`pipeline::receipts`), says whether the user read it, has it unread, or never
//! got it (failed, an invalid user, flow-controlled).

use super::{classify, message};
use crate::channels::chat::ChatTarget;
use crate::channels::chat::http::{code, json, transport};
use crate::channels::chat::tokens::{AccessToken, TokenCache};
use crate::channels::{Feedback, OutboundMessage, PolledReceipt, Provider, ProviderError, Receipt};
use crate::domain::{Address, DeliveryStatus};
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

    fn polls_receipts(&self) -> bool {
        true
    }

    async fn poll_receipt(
        &self,
        task_id: &str,
        address: &Address,
    ) -> Result<PolledReceipt, ProviderError> {
        let (Address::Dingtalk(ChatTarget::Id(user)), Ok(task_id)) =
            (address, task_id.parse::<i64>())
        else {
            return Err(ProviderError::Permanent("not a work notification's task".into()));
        };
        let token = self.tokens.get(&self.token_key, || self.fetch_token()).await?;
        let response = self
            .client
            .post(format!("{}/topapi/message/corpconversation/getsendresult", self.base))
            .query(&[("access_token", &token)])
            .json(&serde_json::json!({"agent_id": self.agent_id, "task_id": task_id}))
            .send()
            .await
            .map_err(|e| transport("dingtalk", e))?;
        let answer = json("dingtalk", response).await?;
        match code(&answer, "errcode") {
            Some(0) => Ok(receipt_of(&answer["send_result"], user)),
            Some(code) => {
                let error = classify(code, answer["errmsg"].as_str());
                Err(self.tokens.after_refusal(&self.token_key, &token, error).await)
            }
            None => Err(ProviderError::Permanent("dingtalk answered without errcode".into())),
        }
    }
}

/// What `send_result` says of `user`: read (delivered, and a `read` event; settled),
/// unread (delivered; a later poll may see it read), never got it (bounced, with
/// which list named them; settled), or not yet known.
fn receipt_of(result: &serde_json::Value, user: &str) -> PolledReceipt {
    let listed = |list: &str| {
        result[list].as_array().is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(user)))
    };
    let delivered = Feedback::Status { status: DeliveryStatus::Delivered, reason: None };
    let bounced = |why: String| PolledReceipt {
        feedback: vec![Feedback::Status { status: DeliveryStatus::Bounced, reason: Some(why) }],
        settled: true,
    };
    if listed("read_user_id_list") {
        let read = Feedback::Event { name: "read".into(), detail: None };
        return PolledReceipt { feedback: vec![delivered, read], settled: true };
    }
    if listed("unread_user_id_list") {
        return PolledReceipt { feedback: vec![delivered], settled: false };
    }
    if listed("failed_user_id_list") {
        return bounced("dingtalk: the send to this user failed".into());
    }
    if listed("invalid_user_id_list") {
        return bounced("dingtalk: invalid user id".into());
    }
    if listed("forbidden_user_id_list") {
        // Flow control: the same content to one user once a day, 500 a day per user.
        let code = result["forbidden_list"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["userid"].as_str() == Some(user)))
            .and_then(|i| i["code"].as_str())
            .unwrap_or("unknown");
        return bounced(format!("dingtalk: flow-controlled, code {code}"));
    }
    PolledReceipt::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn send_results_become_receipts() {
        let result = json!({
            "read_user_id_list": ["ann"], "unread_user_id_list": ["bob"],
            "failed_user_id_list": ["cid"], "invalid_user_id_list": [],
            "forbidden_user_id_list": ["dan"],
            "forbidden_list": [{"code": "143106", "count": 1, "userid": "dan"}]
        });
        let read = receipt_of(&result, "ann");
        assert!(read.settled);
        assert_eq!(read.feedback[1], Feedback::Event { name: "read".into(), detail: None });
        assert!(!receipt_of(&result, "bob").settled);
        let dan = receipt_of(&result, "dan");
        assert_eq!(
            dan.feedback,
            [Feedback::Status {
                status: DeliveryStatus::Bounced,
                reason: Some("dingtalk: flow-controlled, code 143106".into())
            }]
        );
        assert!(receipt_of(&result, "cid").settled);
        assert_eq!(receipt_of(&result, "eve"), PolledReceipt::default());
    }
}
