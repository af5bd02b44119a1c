//! What a channel is, as one trait: its content, how a request and a user profile
//! address someone on it, how its content is checked and templated, and which
//! providers carry it. The registry in `channels/mod.rs` turns the list of units into
//! the `Channel` enum, `Content`, `Recipient`, `Address` and `TemplateParts`, so the
//! rest of the crate reaches a channel only through these.

use crate::channels::{Provider, factory::HostProviders};
use crate::domain::UserProfile;
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// Reports a problem with one field: its path (`content.email.subject`) and why.
pub type Report<'a> = &'a mut dyn FnMut(String, String);

/// How a value is written in JSON. Structs insist on an object (serde would also read
/// them from an array); free-form values (a webhook's data) take any JSON.
pub trait JsonShape: Serialize + DeserializeOwned {
    const OBJECT: bool;
}

pub trait ChannelUnit: 'static {
    /// What `content.<channel>` holds and what a template's `<channel>` part renders
    /// into: one type for both.
    type Content: JsonShape
        + super::TemplateText
        + Clone
        + PartialEq
        + Debug
        + Send
        + Sync
        + utoipa::ToSchema;
    /// How a request names someone on this channel (`to[i].<field>`).
    type Target: JsonShape + Clone + PartialEq + Eq + Debug + Send + Sync + utoipa::ToSchema;
    /// Where one delivery goes, as the delivery records it.
    type Address: Serialize + DeserializeOwned + Clone + PartialEq + Eq + Debug + Send + Sync;

    /// What `content.<channel>` must hold in a request without a template.
    fn validate(content: &Self::Content, path: &str, report: Report<'_>);

    /// Checks on a target beyond its type (a webhook URL's network).
    fn check_target(_target: &Self::Target, _path: &str, _report: Report<'_>) {}

    fn address(target: &Self::Target) -> Self::Address;

    /// The user's identity on this channel, if their profile has one.
    fn from_profile(profile: &UserProfile) -> Option<Self::Target>;

    /// A form of the address safe for logs.
    fn redact(address: &Self::Address) -> String;

    /// The integration an address names, when it names one (a chat group robot): the
    /// send goes through that integration only.
    fn robot(_address: &Self::Address) -> Option<&str> {
        None
    }

    /// What `POST /v1/integrations/{id}/test` sends when the request gives no content.
    fn test_content() -> Self::Content;

    /// Whether a user's delivery carries a signed one-click unsubscribe link.
    const ONE_CLICK_UNSUBSCRIBE: bool = false;

    /// The providers an integration on this channel may name (the catalog).
    fn providers() -> &'static [ProviderSpec];

    /// Builds the provider `integration` names, or says why this host cannot.
    fn build(
        host: &HostProviders,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String>;
}

/// A provider's report about a delivery after the send (an SES event, an SMS receipt,
/// a chat app's read receipt), in the terms the store records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// The delivery reached a final status (`delivered`, `bounced`), with why.
    Status { status: crate::domain::DeliveryStatus, reason: Option<String> },
    /// Something happened that the timeline records (`opened`, `clicked`, `complained`).
    Event { name: String, detail: Option<String> },
    /// Nothing to record.
    Ignore,
}
