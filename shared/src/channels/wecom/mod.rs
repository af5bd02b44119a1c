//! WeCom (企业微信): group robots (a webhook key) and app messages to the organisation's
//! members (a corp id and the app's secret exchanged for a two-hour access token).

mod app;
mod robot;

use super::chat::{self, ChatContent, Limits};
use super::unit::{ChannelUnit, Report};
use super::{HostProviders, Provider, ProviderError};
use crate::integrations::catalog::{FieldKind::*, FieldSpec, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use std::sync::Arc;

pub const HOST: &str = "https://qyapi.weixin.qq.com";

/// Text is at most 2,048 bytes, markdown 4,096 (robot and app alike).
const LIMITS: Limits = Limits { text: 2048, markdown: 4096 };

pub struct WeCom;

impl ChannelUnit for WeCom {
    chat::chat_unit_items!(wecom);

    fn validate(content: &ChatContent, path: &str, report: Report<'_>) {
        chat::validate(content, path, &LIMITS, report);
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
            "wecom_robot" => Ok(Arc::new(robot::RobotProvider::new(client, base, secrets)?)),
            "wecom_app" => Ok(Arc::new(app::AppProvider::new(
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

const BASE_URL: FieldSpec = optional(
    "base_url",
    Url,
    "The API host (https://qyapi.weixin.qq.com); tests point it at a fake.",
);

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        id: "wecom_robot",
        channel: super::Channel::Wecom,
        about: "A group's robot (webhook key). 20 messages a minute per robot, which Herald \
                paces.",
        robot: true,
        config: &[BASE_URL],
        secrets: &[required("key", Text, "The key= of the robot's webhook URL.")],
    },
    ProviderSpec {
        id: "wecom_app",
        channel: super::Channel::Wecom,
        about: "App messages to members by their WeCom user id. WeCom silently drops more \
                than 30 a minute to one member; calls must come from the app's trusted IPs.",
        robot: false,
        config: &[
            required("corp_id", Text, "The organisation's CorpID."),
            required("agent_id", Integer, "The app's AgentId."),
            BASE_URL,
        ],
        secrets: &[required("corp_secret", Text, "The app's Secret.")],
    },
];

/// WeCom's global error codes, in the classes the send stage acts on.
fn classify(code: i64, message: Option<&str>) -> ProviderError {
    use ProviderError::*;
    let text = chat::http::vendor_error("wecom", code, message);
    match code {
        // System busy; API frequency limit.
        -1 | 45009 | 45033 => ProviderError::transient(text),
        // The access token is invalid or expired.
        40001 | 40014 | 42001 => CredentialsExpired(text),
        // Invalid webhook key, corp id, secret or agent; the caller's IP is not trusted.
        93000 | 40013 | 40056 | 48002 | 60020 | 301002 => Unavailable(text),
        // The member does not exist or is outside the app's visible range.
        60111 | 81013 | 82001 => InvalidAddress(text),
        _ => Permanent(text),
    }
}

/// The body parts a robot and an app message share: `msgtype` and its part.
fn message(content: &ChatContent, app: bool) -> serde_json::Value {
    use serde_json::json;
    if let Some(m) = &content.markdown {
        let text = if m.title.is_empty() {
            m.text.clone()
        } else {
            format!("**{}**\n{}", m.title, m.text)
        };
        return json!({"msgtype": "markdown", "markdown": {"content": text}});
    }
    if let Some(card) = &content.card {
        if app {
            return json!({"msgtype": "textcard", "textcard": {
                "title": card.title, "description": card.text, "url": card.url, "btntxt": card.button,
            }});
        }
        return json!({"msgtype": "news", "news": {"articles": [{
            "title": card.title, "description": card.text, "url": card.url,
        }]}});
    }
    json!({"msgtype": "text", "text": {"content": chat::plain_text(content)}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(matches!(classify(42001, None), ProviderError::CredentialsExpired(_)));
        assert!(matches!(classify(45009, None), ProviderError::Transient { .. }));
        assert!(matches!(classify(93000, None), ProviderError::Unavailable(_)));
        assert!(matches!(classify(81013, None), ProviderError::InvalidAddress(_)));
        assert!(matches!(classify(44004, None), ProviderError::Permanent(_)));
    }
}
