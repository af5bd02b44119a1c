//! OneBot v11 over HTTP: `POST /send_private_msg` (`user_id`) or `/send_group_msg`
//! (`group_id`) with the message as segments (text, and `at` for mentions), so nothing
//! in the text is read as a CQ code. `Authorization: Bearer <token>`. The bridge
//! answers `{"status": "ok"|"async"|"failed", "retcode", "data": {"message_id"}}`.

use crate::channels::chat::http::{json, transport, vendor_error};
use crate::channels::chat::{ChatTarget, plain_text};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use async_trait::async_trait;
use serde_json::json;

pub struct OneBot {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl OneBot {
    pub fn new(client: reqwest::Client, base: String, token: Option<String>) -> Self {
        Self { client, base, token }
    }
}

/// Where an id sends: `group:<n>` to a group, else a private message to QQ number n.
fn route(id: &str) -> Option<(&'static str, &'static str, u64)> {
    match id.strip_prefix("group:") {
        Some(group) => Some(("send_group_msg", "group_id", group.parse().ok()?)),
        None => Some(("send_private_msg", "user_id", id.parse().ok()?)),
    }
}

fn classify(retcode: i64, message: Option<&str>) -> ProviderError {
    let text = vendor_error("onebot", retcode, message);
    match retcode {
        // The bridge's worker is not ready; a request it could not finish.
        103 | 201 => ProviderError::transient(text),
        // The bridge ran the action and QQ refused it (not a friend, not in the group).
        102 => ProviderError::InvalidAddress(text),
        1404 => ProviderError::Unavailable(text),
        _ => ProviderError::Permanent(text),
    }
}

#[async_trait]
impl Provider for OneBot {
    fn name(&self) -> &'static str {
        "onebot"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Qq(ChatTarget::Id(id)) = &outbound.address else {
            return Err(ProviderError::InvalidAddress(
                "QQ sends to a number or group:<number>".into(),
            ));
        };
        let (action, field, number) = route(id)
            .ok_or_else(|| ProviderError::InvalidAddress(format!("'{id}' is not a QQ number")))?;
        let content = outbound
            .content
            .qq
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no qq content".into()))?;
        let mut message = Vec::new();
        if let Some(m) = &content.mentions {
            for user in &m.user_ids {
                message.push(json!({"type": "at", "data": {"qq": user}}));
            }
            if m.all {
                message.push(json!({"type": "at", "data": {"qq": "all"}}));
            }
        }
        message.push(json!({"type": "text", "data": {"text": plain_text(content)}}));
        let mut request = self
            .client
            .post(format!("{}/{action}", self.base))
            .json(&json!({field: number, "message": message}));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| transport("onebot", e))?;
        match response.status().as_u16() {
            401 | 403 => {
                return Err(ProviderError::Unavailable("onebot refused the access token".into()));
            }
            404 => {
                return Err(ProviderError::Unavailable(format!("onebot has no action {action}")));
            }
            _ => {}
        }
        let answer = json("onebot", response).await?;
        match (answer["status"].as_str(), answer["retcode"].as_i64()) {
            (Some("ok" | "async"), _) => Ok(Receipt {
                provider_message_id: answer["data"]["message_id"].as_i64().map(|id| id.to_string()),
            }),
            (_, Some(code)) => {
                Err(classify(code, answer["wording"].as_str().or(answer["msg"].as_str())))
            }
            _ => Err(ProviderError::Permanent("onebot answered without a status".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_route_to_private_or_group_messages() {
        assert_eq!(route("10001"), Some(("send_private_msg", "user_id", 10001)));
        assert_eq!(route("group:20002"), Some(("send_group_msg", "group_id", 20002)));
        assert_eq!(route("ann"), None);
    }

    #[test]
    fn codes_are_classified() {
        assert!(matches!(classify(102, None), ProviderError::InvalidAddress(_)));
        assert!(matches!(classify(100, None), ProviderError::Permanent(_)));
        assert!(matches!(classify(201, None), ProviderError::Transient { .. }));
    }
}
