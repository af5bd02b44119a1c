//! A user: the caller's own id, locale and time zone, and the identities Herald can
//! reach them at on each channel. Every identity is validated when it is written.

use super::preferences::Preferences;
use super::{EmailAddress, PhoneNumber, WebhookUrl};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PushPlatform {
    /// Apple Push Notification service.
    Apns,
    /// Firebase Cloud Messaging (Android and others).
    Fcm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushToken {
    pub platform: PushPlatform,
    pub token: String,
}

/// A browser's Web Push subscription (RFC 8030 endpoint, RFC 8291 keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushSubscription {
    #[schema(value_type = String)]
    pub endpoint: WebhookUrl,
    pub p256dh: String,
    pub auth: String,
}

/// The user's ids in the chat apps Herald sends to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feishu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat: Option<String>,
    /// A Slack member id (`U…`); Slack sends it to the member's DMs with the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<String>,
}

/// What a caller writes: everything but the id and the times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "ann@example.com")]
    pub email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "+14155552671")]
    pub phone: Option<PhoneNumber>,
    #[serde(
        deserialize_with = "crate::objects::objects",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub push_tokens: Vec<PushToken>,
    #[serde(
        deserialize_with = "crate::objects::objects",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub web_push: Vec<WebPushSubscription>,
    #[serde(
        deserialize_with = "crate::objects::object",
        default,
        skip_serializing_if = "is_default"
    )]
    pub chat: ChatIds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<WebhookUrl>,
}

fn is_default(chat: &ChatIds) -> bool {
    *chat == ChatIds::default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    #[serde(skip)]
    pub app_id: String,
    #[serde(flatten)]
    pub profile: UserProfile,
    /// Kept in the same record (one read for dispatch) but written only through the
    /// preferences API, never by a profile upsert.
    #[serde(skip)]
    pub preferences: Preferences,
    /// Bumped by every preferences write; a conditional write names the one it read.
    #[serde(skip)]
    pub preferences_revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An id the caller chose (a user's, a group's): 1-128 characters that are safe in a
/// URL path segment and a log line.
pub fn check_caller_id(id: &str) -> Result<(), &'static str> {
    let ok = !id.is_empty()
        && id.chars().count() <= 128
        && !id.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/' || is_invisible(c));
    if ok {
        Ok(())
    } else {
        Err("1-128 characters, no spaces, control, invisible or bidirectional characters or '/'")
    }
}

/// Unicode format characters: invisible, and the bidirectional ones (U+202E) can make
/// an id read differently from what it is.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The checks serde's types cannot make: the id's form, the locale tag, the time zone,
/// the sizes of tokens and chat ids. Returns (field, message) pairs.
pub fn validate_user(id: &str, profile: &UserProfile) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| errors.push((field.to_owned(), message.to_owned()));
    if let Err(message) = check_caller_id(id) {
        bad("id", message);
    }
    if let Some(locale) = &profile.locale {
        let ok = locale.len() <= 35
            && locale.split('-').all(|s| {
                !s.is_empty() && s.len() <= 8 && s.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if !ok {
            bad("locale", "a BCP 47 language tag such as 'de-AT' or 'zh-Hant-TW'");
        }
    }
    if let Some(zone) = &profile.time_zone
        && zone.parse::<chrono_tz::Tz>().is_err()
    {
        bad("time_zone", "an IANA time zone such as 'Europe/Berlin'");
    }
    for (i, token) in profile.push_tokens.iter().enumerate() {
        if token.token.is_empty() || token.token.len() > 4096 {
            bad(&format!("push_tokens[{i}].token"), "1 to 4096 characters");
        }
    }
    for (i, subscription) in profile.web_push.iter().enumerate() {
        if subscription.p256dh.is_empty() || subscription.auth.is_empty() {
            bad(&format!("web_push[{i}]"), "p256dh and auth keys are required");
        }
        if subscription.p256dh.len() > 512 || subscription.auth.len() > 512 {
            bad(&format!("web_push[{i}]"), "p256dh and auth keys are at most 512 characters");
        }
    }
    if let Some(url) = &profile.webhook_url
        && !crate::net::permits_url(url.as_str())
    {
        bad("webhook_url", crate::net::REFUSED);
    }
    for (name, value) in [
        ("wecom", &profile.chat.wecom),
        ("dingtalk", &profile.chat.dingtalk),
        ("feishu", &profile.chat.feishu),
        ("qq", &profile.chat.qq),
        ("wechat", &profile.chat.wechat),
        ("slack", &profile.chat.slack),
    ] {
        if value.as_ref().is_some_and(|v| v.is_empty() || v.len() > 128) {
            bad(&format!("chat.{name}"), "1 to 128 characters");
        }
    }
    errors
}

/// A named set of users (`beta-testers`); a user can be in many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    #[serde(skip)]
    pub app_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
