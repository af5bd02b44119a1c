//! DingTalk (钉钉): group robots (a webhook token, each request signed with the robot's
//! secret) and work notifications from an app to its organisation's users (an app key
//! and secret exchanged for a two-hour access token).

mod robot;
mod work;

pub use robot::robot_signature;

use super::chat::{self, ChatContent, Limits};
use super::unit::{ChannelUnit, Report};
use super::{HostProviders, Provider};
use crate::integrations::catalog::{FieldKind::*, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use std::sync::Arc;

/// The vendor's host, unless the integration's `base_url` says otherwise.
pub const HOST: &str = "https://oapi.dingtalk.com";

/// Robot text is limited to 20,000 bytes; markdown the same.
const LIMITS: Limits = Limits { text: 20_000, markdown: 20_000 };

pub struct DingTalk;

impl ChannelUnit for DingTalk {
    chat::chat_unit_items!(dingtalk);

    fn validate(content: &ChatContent, path: &str, report: Report<'_>) {
        chat::validate(content, path, &LIMITS, report);
        if content.markdown.as_ref().is_some_and(|m| m.title.trim().is_empty()) {
            report(format!("{path}.markdown.title"), "DingTalk needs a title".into());
        }
    }

    fn providers() -> &'static [ProviderSpec] {
        PROVIDERS
    }

    fn build(
        host: &HostProviders,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        let base = chat::http::base_url(&integration.config, HOST, &host.networks)?;
        let client = chat::http::client(&host.networks, host.webhook_timeout);
        match integration.provider.as_str() {
            "dingtalk_robot" => Ok(Arc::new(robot::RobotProvider::new(client, base, secrets)?)),
            "dingtalk_work" => Ok(Arc::new(work::WorkProvider::new(
                client,
                base,
                integration,
                secrets,
                host.tokens.clone(),
            )?)),
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const BASE_URL: crate::integrations::catalog::FieldSpec = optional(
    "base_url",
    Url,
    "The API host (https://oapi.dingtalk.com); tests point it at a fake.",
);

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        id: "dingtalk_robot",
        channel: super::Channel::Dingtalk,
        about: "A group's custom robot; requests signed with its secret. About 20 messages \
                a minute per robot, which Herald paces.",
        robot: true,
        config: &[BASE_URL],
        secrets: &[
            required("access_token", Text, "The access_token of the robot's webhook URL."),
            optional("secret", Text, "The robot's signing secret (SEC…), if it signs."),
        ],
    },
    ProviderSpec {
        id: "dingtalk_work",
        channel: super::Channel::Dingtalk,
        about: "Work notifications from an internal app to users by their DingTalk user id.",
        robot: false,
        config: &[required("agent_id", Integer, "The app's AgentId."), BASE_URL],
        secrets: &[
            required("app_key", Text, "The app's AppKey."),
            required("app_secret", Text, "The app's AppSecret."),
        ],
    },
];

/// DingTalk's error codes, in the classes the send stage acts on (from the server API's
/// global error codes and the robot's documentation).
fn classify(code: i64, message: Option<&str>) -> super::ProviderError {
    use super::ProviderError::*;
    let text = chat::http::vendor_error("dingtalk", code, message);
    match code {
        // System busy.
        -1 => super::ProviderError::transient(text),
        // The robot sent too fast and is muted for ten minutes.
        130101 => {
            Transient { message: text, retry_after: Some(std::time::Duration::from_secs(600)) }
        }
        // The access token is invalid or expired.
        40014 | 42001 | 88 => CredentialsExpired(text),
        // The robot's token, signature, keyword or IP check failed; the app's key.
        300001 | 310000 | 40089 | 40091 => Unavailable(text),
        // The user is not in the organisation or the app cannot reach them.
        33012 | 60121 => InvalidAddress(text),
        _ => Permanent(text),
    }
}

/// The message body both providers send (`msg` of a work notification, the whole body
/// of a robot message but for `at`).
fn message(content: &ChatContent, work: bool) -> serde_json::Value {
    use serde_json::json;
    if let Some(m) = &content.markdown {
        return json!({"msgtype": "markdown", "markdown": {"title": m.title, "text": m.text}});
    }
    if let Some(card) = &content.card {
        let body = if work {
            json!({"title": card.title, "markdown": card.text,
                   "single_title": card.button, "single_url": card.url})
        } else {
            json!({"title": card.title, "text": card.text,
                   "singleTitle": card.button, "singleURL": card.url})
        };
        let kind = if work { "action_card" } else { "actionCard" };
        return json!({"msgtype": kind, kind: body});
    }
    json!({"msgtype": "text", "text": {"content": chat::plain_text(content)}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        use super::super::ProviderError::*;
        assert!(matches!(classify(42001, None), CredentialsExpired(_)));
        assert!(matches!(classify(130101, None), Transient { retry_after: Some(_), .. }));
        assert!(
            matches!(classify(310000, Some("sign not match")), Unavailable(m) if m.contains("310000"))
        );
        assert!(matches!(classify(400013, None), Permanent(_)));
    }
}
