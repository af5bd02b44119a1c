//! Integrations: an app's own providers, each with its configuration and write-only
//! secrets. Sends go to the first enabled integration of their channel by priority and
//! fail over to the next (see `router`). An app with none on a channel uses the
//! installation's default provider, configured from the environment.

pub mod catalog;
pub mod pacing;
pub mod router;
pub mod vault;

use crate::domain::Channel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub use catalog::{FieldError, ProviderSpec, providers};
pub use pacing::{LocalPacer, Pacer, WindowLimit};
pub use router::{IntegrationRouter, ProviderFactory, Route};
pub use vault::{LocalVault, SecretValues, SecretVault, VaultError};

/// An app holds at most this many integrations.
pub const MAX_PER_APP: usize = 50;

/// An integration as stored. Its secrets are only in `sealed` (what the vault returned)
/// and, for display, `secret_hints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    pub channel: Channel,
    pub provider: String,
    pub name: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub enabled: bool,
    /// Lower first; ties by creation.
    pub priority: i32,
    /// At most this many sends a second through this integration, per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// At most this many sends in any window, across every sender (a robot's 20 a
    /// minute); the provider's documented limit when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_limit: Option<WindowLimit>,
    /// Each secret field's hint: its last four characters for long values, else empty.
    pub secret_hints: BTreeMap<String, String>,
    pub sealed: String,
    /// Changes with every update: built providers are cached by id and revision.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the API shows of an integration: everything but the secrets' values.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntegrationView {
    #[schema(example = "int_01JABCDEF0123456789ABCDEFG")]
    pub id: String,
    pub channel: Channel,
    #[schema(example = "smtp")]
    pub provider: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The secret fields that are set, each with at most its last four characters
    /// (`…7f3a`), and only for values of 16 characters or more.
    pub secrets: BTreeMap<String, String>,
    pub enabled: bool,
    pub priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_limit: Option<WindowLimit>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Integration> for IntegrationView {
    fn from(i: &Integration) -> Self {
        Self {
            id: i.id.clone(),
            channel: i.channel,
            provider: i.provider.clone(),
            name: i.name.clone(),
            config: i.config.clone(),
            secrets: i.secret_hints.clone(),
            enabled: i.enabled,
            priority: i.priority,
            rate_limit_per_second: i.rate_limit_per_second,
            window_limit: i.window_limit,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// What the record shows of a secret: `…` and the last four characters of a value of
/// 16 characters or more (a shorter one would give away too much of itself).
pub fn secret_hint(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 16 {
        return "…".into();
    }
    let last: String = chars[chars.len() - 4..].iter().collect();
    format!("…{last}")
}

/// All of an app's integrations, stored and replaced as one record: there are few,
/// every send reads them together, and names stay unique without a second index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegrationSet {
    pub items: Vec<Integration>,
    /// 0 while the app has never had one; the store bumps it on every write.
    pub revision: u64,
}

impl IntegrationSet {
    pub fn get(&self, id: &str) -> Option<&Integration> {
        self.items.iter().find(|i| i.id == id)
    }

    /// The enabled integrations of `channel`, in the order sends try them.
    pub fn for_channel(&self, channel: Channel) -> Vec<&Integration> {
        let mut found: Vec<&Integration> =
            self.items.iter().filter(|i| i.enabled && i.channel == channel).collect();
        found.sort_by_key(|i| (i.priority, i.created_at, i.id.clone()));
        found
    }
}

/// A new integration id: `int_` and a ULID.
pub fn new_id() -> String {
    format!("int_{}", ulid::Ulid::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_show_at_most_four_characters_of_long_secrets() {
        assert_eq!(secret_hint("short"), "…");
        assert_eq!(secret_hint("0123456789abcdef"), "…cdef");
    }
}
