//! Slack: incoming webhooks (a URL that posts to one channel) and `chat.postMessage`
//! with a bot token, to a member (their DM with the app) or a channel by id.

mod api;
mod webhook;

use super::chat::{self, ChatContent, Limits};
use super::unit::{ChannelUnit, Report};
use super::{HostProviders, Provider, ProviderError};
use crate::integrations::catalog::{FieldKind::*, FieldSpec, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde_json::{Value, json};
use std::sync::Arc;

pub const HOST: &str = "https://slack.com";

/// Slack truncates `text` past 40,000 characters and refuses a section's text past
/// 3,000.
const LIMITS: Limits = Limits { text: 40_000, markdown: 3_000 };

pub struct Slack;

impl ChannelUnit for Slack {
    chat::chat_unit_items!(slack);

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
        let client = chat::http::client(&host.networks, host.webhook_timeout);
        match integration.provider.as_str() {
            "slack_webhook" => {
                let url = secrets.get("url").ok_or("secret 'url' is not set")?;
                // The URL is where Slack listens: it gets the checks a base URL gets.
                let url = chat::http::vendor_url(url, &host.networks)
                    .map_err(|why| format!("secrets.url {why}"))?;
                Ok(Arc::new(webhook::WebhookProvider::new(client, url)))
            }
            "slack_api" => {
                let base = chat::http::base_url(&integration.config, HOST, &host.networks)?;
                let token = secrets.get("bot_token").ok_or("secret 'bot_token' is not set")?;
                Ok(Arc::new(api::ApiProvider::new(client, base, token.clone())))
            }
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        id: "slack_webhook",
        channel: super::Channel::Slack,
        about: "An incoming webhook, posting to its one channel. About one message a second, \
                which Herald paces.",
        robot: true,
        config: &[],
        secrets: &[required("url", Url, "The webhook URL (https://hooks.slack.com/services/…).")],
    },
    ProviderSpec {
        id: "slack_api",
        channel: super::Channel::Slack,
        about: "chat.postMessage with a bot token, to a member id (U…) or a channel id (C…).",
        robot: false,
        config: &[BASE_URL],
        secrets: &[required("bot_token", Text, "The bot's OAuth token (xoxb-…).")],
    },
];

const BASE_URL: FieldSpec =
    optional("base_url", Url, "The API host (https://slack.com); tests point it at a fake.");

/// Slack's error strings (Web API `error`, webhook answers), in the send stage's classes.
fn classify(error: &str) -> ProviderError {
    use ProviderError::*;
    let text = chat::http::vendor_error("slack", error, None);
    match error {
        "ratelimited"
        | "rate_limited"
        | "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout" => ProviderError::transient(text),
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive"
        | "no_service" | "invalid_token" | "action_prohibited" | "missing_scope"
        | "team_disabled" => Unavailable(text),
        "channel_not_found"
        | "not_in_channel"
        | "is_archived"
        | "channel_is_archived"
        | "user_not_found"
        | "cannot_dm_bot"
        | "user_disabled" => InvalidAddress(text),
        _ => Permanent(text),
    }
}

/// Escapes what Slack's mrkdwn reads as markup (`&`, `<`, `>`), as Slack asks for text
/// that is not meant as a link or mention.
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `text` (the notification's plain text, which Slack also shows in notifications) and
/// `blocks` for markdown and cards; mentions lead the text.
fn message(content: &ChatContent) -> Value {
    let mut lead = String::new();
    if let Some(m) = &content.mentions {
        for user in &m.user_ids {
            lead.push_str(&format!("<@{user}> "));
        }
        if m.all {
            lead.push_str("<!channel> ");
        }
    }
    let text = format!("{lead}{}", chat::plain_text(content));
    if content.text.is_some() {
        return json!({"text": text});
    }
    let mut blocks = Vec::new();
    let (title, body) = match (&content.markdown, &content.card) {
        (Some(m), _) => (m.title.as_str(), m.text.as_str()),
        (None, Some(c)) => (c.title.as_str(), c.text.as_str()),
        (None, None) => ("", ""),
    };
    if !title.is_empty() {
        blocks.push(json!({"type": "header", "text": {"type": "plain_text", "text": title}}));
    }
    let mut section =
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{lead}{body}")}});
    if let Some(card) = &content.card {
        section["accessory"] = json!({"type": "button", "url": card.url,
            "text": {"type": "plain_text", "text": card.button}});
    }
    blocks.push(section);
    json!({"text": text, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        assert!(matches!(classify("ratelimited"), ProviderError::Transient { .. }));
        assert!(matches!(classify("invalid_auth"), ProviderError::Unavailable(_)));
        assert!(matches!(classify("channel_not_found"), ProviderError::InvalidAddress(_)));
        assert!(
            matches!(classify("msg_too_long"), ProviderError::Permanent(m) if m.contains("msg_too_long"))
        );
    }

    #[test]
    fn mrkdwn_control_characters_are_escaped() {
        assert_eq!(escape_mrkdwn("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
    }
}
