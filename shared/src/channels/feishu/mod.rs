//! Feishu and Lark (飞书, the same platform under two hosts): custom bots in a group
//! (a webhook token, each message signed with the bot's secret) and messages from an
//! app to users or chats (an app id and secret exchanged for a two-hour tenant token).

mod app;
mod bot;

pub use bot::bot_signature;

use super::chat::{self, ChatContent, Limits};
use super::unit::{ChannelUnit, Report};
use super::{HostProviders, Provider, ProviderError};
use crate::integrations::catalog::{FieldKind::*, FieldSpec, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde_json::{Value, json};
use std::sync::Arc;

pub const FEISHU_HOST: &str = "https://open.feishu.cn";
pub const LARK_HOST: &str = "https://open.larksuite.com";

/// A request body is at most 20 KB (bots) and a text message 150 KB (apps): the
/// smaller bounds both.
const LIMITS: Limits = Limits { text: 18_000, markdown: 18_000 };

pub struct Feishu;

impl ChannelUnit for Feishu {
    chat::chat_unit_items!(feishu);

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
        let default = match integration.config.get("domain").and_then(Value::as_str) {
            Some("lark") => LARK_HOST,
            _ => FEISHU_HOST,
        };
        let base = chat::http::base_url(&integration.config, default, &host.networks)?;
        let client = chat::http::client(&host.networks, host.webhook_timeout);
        match integration.provider.as_str() {
            "feishu_bot" => Ok(Arc::new(bot::BotProvider::new(client, base, secrets)?)),
            "feishu_app" => Ok(Arc::new(app::AppProvider::new(
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

const DOMAIN: FieldSpec =
    optional("domain", OneOf(&["feishu", "lark"]), "feishu (open.feishu.cn, the default) or lark.");
const BASE_URL: FieldSpec =
    optional("base_url", Url, "The API host, instead of the domain's; tests point it at a fake.");

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        id: "feishu_bot",
        channel: super::Channel::Feishu,
        about: "A group's custom bot; messages signed with its secret. 100 a minute and 5 a \
                second per bot, which Herald paces.",
        robot: true,
        config: &[DOMAIN, BASE_URL],
        secrets: &[
            required("hook_token", Text, "The token at the end of the bot's webhook URL."),
            optional("secret", Text, "The bot's signing secret, if it signs."),
        ],
    },
    ProviderSpec {
        id: "feishu_app",
        channel: super::Channel::Feishu,
        about: "Messages from a custom app to users (open_id ou_…, user_id, email) or chats \
                (oc_…).",
        robot: false,
        config: &[DOMAIN, BASE_URL],
        secrets: &[
            required("app_id", Text, "The app's App ID (cli_…)."),
            required("app_secret", Text, "The app's App Secret."),
        ],
    },
];

/// Feishu's codes (bot and server API), in the classes the send stage acts on.
fn classify(code: i64, message: Option<&str>) -> ProviderError {
    use ProviderError::*;
    let text = chat::http::vendor_error("feishu", code, message);
    match code {
        // Frequency limits; the server is busy.
        11232 | 99991400 | 99991401 | 1000004 | 1000005 => ProviderError::transient(text),
        // The tenant access token is invalid or expired.
        99991661 | 99991663 | 99991664 | 99991665 | 99991668 => CredentialsExpired(text),
        // The bot's signature, keyword or IP check; the app's id or secret.
        19021 | 19022 | 19024 | 10003 | 10014 => Unavailable(text),
        // The user or chat cannot be reached by this app or bot.
        230001 | 230002 | 230006 | 230013 | 230017 | 99992351 | 99992352 | 99992361 => {
            InvalidAddress(text)
        }
        _ => Permanent(text),
    }
}

/// The message as Feishu's `msg_type` and its content (an object; the app API wants
/// it as a string): text with mentions, or an interactive card for markdown and cards.
fn message(content: &ChatContent) -> (&'static str, Value) {
    if content.text.is_some() {
        let mut text = chat::plain_text(content);
        if let Some(m) = &content.mentions {
            for user in &m.user_ids {
                text.push_str(&format!(" <at user_id=\"{user}\"></at>"));
            }
            if m.all {
                text.push_str(" <at user_id=\"all\"></at>");
            }
        }
        return ("text", json!({"text": text}));
    }
    let (title, body, button) = match (&content.markdown, &content.card) {
        (Some(m), _) => (m.title.as_str(), m.text.as_str(), None),
        (None, Some(c)) => (c.title.as_str(), c.text.as_str(), Some((&c.button, &c.url))),
        (None, None) => ("", "", None),
    };
    let mut elements = vec![json!({"tag": "markdown", "content": body})];
    if let Some((label, url)) = button {
        elements.push(json!({"tag": "action", "actions": [{
            "tag": "button", "type": "primary", "url": url,
            "text": {"tag": "plain_text", "content": label},
        }]}));
    }
    let mut card = json!({"config": {"wide_screen_mode": true}, "elements": elements});
    if !title.is_empty() {
        card["header"] = json!({"title": {"tag": "plain_text", "content": title}});
    }
    ("interactive", card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(matches!(classify(99991663, None), ProviderError::CredentialsExpired(_)));
        assert!(matches!(classify(11232, None), ProviderError::Transient { .. }));
        assert!(matches!(classify(19021, None), ProviderError::Unavailable(_)));
        assert!(matches!(classify(230013, None), ProviderError::InvalidAddress(_)));
        assert!(matches!(classify(9499, None), ProviderError::Permanent(_)));
    }

    #[test]
    fn markdown_becomes_a_card_with_a_header() {
        let content = ChatContent {
            markdown: Some(chat::ChatMarkdown { title: "T".into(), text: "**b**".into() }),
            ..Default::default()
        };
        let (kind, card) = message(&content);
        assert_eq!(kind, "interactive");
        assert_eq!(card["header"]["title"]["content"], "T");
        assert_eq!(card["elements"][0]["content"], "**b**");
    }
}
