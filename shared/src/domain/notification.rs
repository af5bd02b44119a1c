//! Notifications, their recipients and content, and the deliveries they fan out into.

use super::ids::{DeliveryId, NotificationId};
use super::status::{DeliveryStatus, NotificationStatus};
pub use crate::channels::{Address, Channel, Content, Recipient};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

/// Three lanes. Work in a higher lane is always taken before work in a lower one, so a
/// password reset never waits behind a campaign.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

    /// Lower ranks are served first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::High => 0,
            Priority::Medium => 1,
            Priority::Low => 2,
        }
    }

    pub fn from_rank(rank: i64) -> Self {
        match rank {
            0 => Priority::High,
            1 => Priority::Medium,
            _ => Priority::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "high" => Ok(Priority::High),
            "medium" => Ok(Priority::Medium),
            "low" => Ok(Priority::Low),
            other => Err(format!("unknown priority '{other}' (high, medium or low)")),
        }
    }
}

/// `all` sends on every channel; `fallback` tries the channels in order and moves to the
/// next one only when a delivery fails for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    #[default]
    All,
    Fallback,
}

/// Which template rendered a notification's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateUse {
    pub id: String,
    pub version: u32,
    /// The locale variant used, after fallback (`default`, `zh-Hant`, …).
    pub locale: String,
    /// What the request asked for: a delivery to a user is rendered again in the
    /// user's own locale and time zone, falling back to these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    #[schema(value_type = String, example = "ntf_01JABCDEF0123456789ABCDEFG")]
    pub id: NotificationId,
    pub app_id: String,
    pub status: NotificationStatus,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub to: Vec<Recipient>,
    pub channels: Vec<Channel>,
    pub routing: Routing,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub resent_from: Option<NotificationId>,
    /// The template version (and locale variant) the content was rendered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateUse>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Notification {
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    #[schema(value_type = String, example = "dlv_01JABCDEF0123456789ABCDEFG")]
    pub id: DeliveryId,
    #[schema(value_type = String)]
    pub notification_id: NotificationId,
    /// Which recipient: a direct address's position in `to`; users (named or group
    /// members) are numbered from `to.len()` on, in the order dispatch resolved them.
    pub recipient_index: usize,
    pub channel: Channel,
    pub address: Address,
    pub status: DeliveryStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// The app's integration the delivery is on, once a send failed over to it (before
    /// that, the first of the channel's integrations by priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    /// Why the delivery ended as it did: a provider error, `no_address`, `expired`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The user it is for, when the recipient was a user or a group member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<DeliveryUser>,
    /// Not sent before this time (the end of the user's quiet hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_after: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Delivery {
    /// What the timeline says when the delivery is planned: why it was suppressed, or
    /// until when quiet hours hold it.
    pub fn planned_detail(&self) -> Option<String> {
        self.reason.clone().or_else(|| {
            self.deliver_after.map(|at| {
                format!(
                    "held by quiet hours until {}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
        })
    }
}

/// The user a delivery is for, as of dispatch: the send stage renders the template in
/// their locale and time zone and signs their unsubscribe link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryUser {
    pub id: String,
    /// Whether the email carries a one-click unsubscribe link (not for a critical
    /// category).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsubscribable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// When the user record was created (milliseconds): an unsubscribe link is bound
    /// to this incarnation of the user id, not to a later user of the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// One entry of a notification's status timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEvent {
    pub at: DateTime<Utc>,
    /// A notification or delivery status, or `attempt_failed` for a retried attempt.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub delivery_id: Option<DeliveryId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
