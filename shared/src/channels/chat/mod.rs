//! What every chat channel (DingTalk, WeCom, Feishu/Lark, Slack) shares: the content a
//! request or template gives (`text`, `markdown` or a `card`, with optional mentions),
//! how a recipient is named (a group robot by its integration's name, or a user's id
//! in the app), access tokens cached per integration, and vendor HTTP helpers. Each
//! vendor's folder turns the content into its own message body.

pub mod http;
pub mod tokens;

use super::registry::TemplateText;
use super::unit::{JsonShape, Report};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A chat message: exactly one of `text`, `markdown` or `card`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatContent {
    /// Plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The vendor's markdown (each supports its own subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<ChatMarkdown>,
    /// A card with a title, text and a link button (DingTalk actionCard, WeCom
    /// textcard, a Feishu interactive card, Slack blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<ChatCard>,
    /// Who the message calls out in a group (robots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Mentions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMarkdown {
    /// The title shown in the conversation list (DingTalk requires one).
    #[serde(default)]
    pub title: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatCard {
    pub title: String,
    /// Markdown on DingTalk, Feishu and Slack; plain text on WeCom.
    pub text: String,
    /// Where the button leads (https).
    pub url: String,
    /// The button's label.
    #[serde(default = "default_button")]
    pub button: String,
}

fn default_button() -> String {
    "Details".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mentions {
    /// The app's user ids to call out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// Mobile numbers to call out (DingTalk, WeCom).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobiles: Vec<String>,
    /// Everyone in the group.
    #[serde(default)]
    pub all: bool,
}

impl JsonShape for ChatContent {
    const OBJECT: bool = true;
}

impl TemplateText for ChatContent {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        let text = match &self.text {
            Some(text) => Some(render(&format!("{path}.text"), text)?),
            None => None,
        };
        let markdown = match &self.markdown {
            Some(m) => Some(ChatMarkdown {
                title: render(&format!("{path}.markdown.title"), &m.title)?,
                text: render(&format!("{path}.markdown.text"), &m.text)?,
            }),
            None => None,
        };
        let card = match &self.card {
            Some(c) => Some(ChatCard {
                title: render(&format!("{path}.card.title"), &c.title)?,
                text: render(&format!("{path}.card.text"), &c.text)?,
                url: render(&format!("{path}.card.url"), &c.url)?,
                button: render(&format!("{path}.card.button"), &c.button)?,
            }),
            None => None,
        };
        Ok(ChatContent { text, markdown, card, mentions: self.mentions.clone() })
    }
}

/// The `ChannelUnit` items every chat channel shares: its content and target types,
/// robots named by the target, the user's identity from `chat.<field>` of their
/// profile, and the test message. The vendor's unit adds validation, providers and
/// `build`.
macro_rules! chat_unit_items {
    ($field:ident) => {
        type Content = $crate::channels::chat::ChatContent;
        type Target = $crate::channels::chat::ChatTarget;
        type Address = $crate::channels::chat::ChatTarget;

        fn check_target(
            target: &$crate::channels::chat::ChatTarget,
            path: &str,
            report: $crate::channels::Report<'_>,
        ) {
            target.check(path, report);
        }

        fn address(
            target: &$crate::channels::chat::ChatTarget,
        ) -> $crate::channels::chat::ChatTarget {
            target.clone()
        }

        fn robot(address: &$crate::channels::chat::ChatTarget) -> Option<&str> {
            address.robot()
        }

        fn from_profile(
            profile: &$crate::domain::UserProfile,
        ) -> Option<$crate::channels::chat::ChatTarget> {
            profile.chat.$field.clone().map($crate::channels::chat::ChatTarget::Id)
        }

        fn redact(address: &$crate::channels::chat::ChatTarget) -> String {
            address.redacted()
        }

        fn test_content() -> $crate::channels::chat::ChatContent {
            $crate::channels::chat::ChatContent {
                text: Some($crate::channels::TEST_TEXT.into()),
                ..Default::default()
            }
        }
    };
}
pub(crate) use chat_unit_items;

/// A vendor's size limits, in bytes of UTF-8 as the vendors count them.
pub struct Limits {
    pub text: usize,
    pub markdown: usize,
}

/// The rules every chat channel shares, with the vendor's limits.
pub fn validate(content: &ChatContent, path: &str, limits: &Limits, report: Report<'_>) {
    let given = [content.text.is_some(), content.markdown.is_some(), content.card.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        report(path.to_owned(), "give exactly one of text, markdown or card".into());
        return;
    }
    let mut problems: Vec<(String, String)> = Vec::new();
    let within = |problems: &mut Vec<(String, String)>, field: &str, value: &str, max: usize| {
        if value.trim().is_empty() || value.len() > max {
            problems.push((format!("{path}.{field}"), format!("must be 1 to {max} bytes")));
        }
    };
    if let Some(text) = &content.text {
        within(&mut problems, "text", text, limits.text);
    }
    if let Some(markdown) = &content.markdown {
        within(&mut problems, "markdown.text", &markdown.text, limits.markdown);
        if markdown.title.len() > 256 {
            problems.push((format!("{path}.markdown.title"), "must be at most 256 bytes".into()));
        }
    }
    if let Some(card) = &content.card {
        within(&mut problems, "card.title", &card.title, 256);
        within(&mut problems, "card.text", &card.text, limits.markdown);
        within(&mut problems, "card.button", &card.button, 64);
        if !(card.url.starts_with("https://") || card.url.starts_with("http://")) {
            problems.push((format!("{path}.card.url"), "must be an http(s) URL".into()));
        }
    }
    for (field, message) in problems {
        report(field, message);
    }
    if let Some(m) = &content.mentions
        && m.user_ids.len() + m.mobiles.len() > 100
    {
        report(format!("{path}.mentions"), "at most 100 user ids and mobiles together".into());
    }
}

/// The plain text of any content: what a vendor shows where it takes no markdown.
pub fn plain_text(content: &ChatContent) -> String {
    if let Some(text) = &content.text {
        return text.clone();
    }
    if let Some(m) = &content.markdown {
        return if m.title.is_empty() {
            m.text.clone()
        } else {
            format!("{}\n{}", m.title, m.text)
        };
    }
    content.card.as_ref().map(|c| format!("{}\n{}\n{}", c.title, c.text, c.url)).unwrap_or_default()
}

/// How a request names someone on a chat channel: a group robot, by the name of the
/// integration that holds its webhook (`{"robot": "ops-alerts"}`), or a user (or, on
/// Slack, a channel) by its id in the app (`{"id": "manager4521"}`). A user's profile
/// gives the id (`chat.dingtalk`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChatTarget {
    Robot(String),
    Id(String),
}

impl JsonShape for ChatTarget {
    const OBJECT: bool = true;
}

impl ChatTarget {
    pub fn robot(&self) -> Option<&str> {
        match self {
            ChatTarget::Robot(name) => Some(name),
            ChatTarget::Id(_) => None,
        }
    }

    pub fn check(&self, path: &str, report: Report<'_>) {
        let (field, value) = match self {
            ChatTarget::Robot(name) => ("robot", name),
            ChatTarget::Id(id) => ("id", id),
        };
        if value.trim().is_empty() || value.len() > 128 {
            report(format!("{path}.{field}"), "must be 1 to 128 characters".into());
        }
    }

    /// For logs: a robot's name is the app's own label; a user id is shortened.
    pub fn redacted(&self) -> String {
        match self {
            ChatTarget::Robot(name) => format!("robot {name}"),
            ChatTarget::Id(id) => {
                let shown: String = id.chars().take(3).collect();
                format!("id {shown}…")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(content: &ChatContent) -> Vec<String> {
        let mut found = Vec::new();
        validate(content, "content.dingtalk", &Limits { text: 20, markdown: 40 }, &mut |p, _| {
            found.push(p)
        });
        found
    }

    #[test]
    fn exactly_one_kind_within_the_vendor_limits() {
        assert_eq!(problems(&ChatContent::default()), ["content.dingtalk"]);
        let text = ChatContent { text: Some("hello".into()), ..Default::default() };
        assert!(problems(&text).is_empty());
        let long = ChatContent { text: Some("x".repeat(21)), ..Default::default() };
        assert_eq!(problems(&long), ["content.dingtalk.text"]);
        let card = ChatContent {
            card: Some(ChatCard {
                title: "t".into(),
                text: "x".into(),
                url: "ftp://x".into(),
                button: "Go".into(),
            }),
            ..Default::default()
        };
        assert_eq!(problems(&card), ["content.dingtalk.card.url"]);
    }

    #[test]
    fn targets_read_as_robot_or_id() {
        let robot: ChatTarget = serde_json::from_str(r#"{"robot": "ops"}"#).unwrap();
        assert_eq!(robot.robot(), Some("ops"));
        let id: ChatTarget = serde_json::from_str(r#"{"id": "u1"}"#).unwrap();
        assert_eq!(id, ChatTarget::Id("u1".into()));
        assert!(serde_json::from_str::<ChatTarget>(r#"{"robot": "a", "id": "b"}"#).is_err());
    }
}
