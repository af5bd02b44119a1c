//! API keys: minted once, shown once, stored only as a SHA-256 hash (the keys carry 192
//! bits of randomness, so a fast hash is enough), bound to one app, with scopes.

use chrono::{DateTime, SubsecRound, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Send,
    Read,
    Manage,
    Approve,
    /// Everything within the key's own app, minting keys for it included.
    Admin,
    /// The installation's operator (the key from `HERALD_ADMIN_KEY` or the first
    /// start): may act on any app, and see what spans apps (dead letters).
    Operator,
}

impl Scope {
    pub const ALL: [Scope; 6] =
        [Scope::Send, Scope::Read, Scope::Manage, Scope::Approve, Scope::Admin, Scope::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Manage => "manage",
            Scope::Approve => "approve",
            Scope::Admin => "admin",
            Scope::Operator => "operator",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            format!("unknown scope '{s}' (send, read, manage, approve, admin, operator)")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyRecord {
    /// Public identifier of the key (`key_…`), safe to log.
    pub id: String,
    pub app_id: String,
    pub name: String,
    #[serde(skip_serializing)]
    pub hash: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
}

impl ApiKeyRecord {
    /// `operator` implies every scope; `admin` every scope but `operator`.
    pub fn allows(&self, scope: Scope) -> bool {
        let has = |s: Scope| self.scopes.contains(&s);
        has(Scope::Operator) || has(scope) || (has(Scope::Admin) && scope != Scope::Operator)
    }
}

/// A freshly minted key: the secret is only ever in this value and the response that
/// carries it to its owner.
pub struct MintedKey {
    pub secret: String,
    pub record: ApiKeyRecord,
}

pub const KEY_PREFIX: &str = "hk_";

pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn mint_key(app_id: &str, name: &str, scopes: Vec<Scope>) -> MintedKey {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    record_for(secret, app_id, name, scopes)
}

/// Wraps a secret chosen by the operator (`HERALD_ADMIN_KEY`) as a key record.
pub fn key_from_secret(secret: &str, app_id: &str, name: &str, scopes: Vec<Scope>) -> MintedKey {
    record_for(secret.to_owned(), app_id, name, scopes)
}

fn record_for(secret: String, app_id: &str, name: &str, scopes: Vec<Scope>) -> MintedKey {
    let hash = hash_key(&secret);
    let record = ApiKeyRecord {
        id: format!("key_{}", &hash[..16]),
        app_id: app_id.to_owned(),
        name: name.to_owned(),
        hash,
        scopes,
        // Stored with millisecond precision, like every time Herald keeps.
        created_at: Utc::now().trunc_subsecs(3),
    };
    MintedKey { secret, record }
}

/// App ids name tenants in URLs and logs: keep them short and plain.
pub fn validate_app_id(app_id: &str) -> Result<(), String> {
    let ok = !app_id.is_empty()
        && app_id.len() <= 64
        && app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err("app ids are 1-64 characters of letters, digits, '-' and '_'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_hash_to_their_record() {
        let key = mint_key("app1", "ci", vec![Scope::Send]);
        assert!(key.secret.starts_with(KEY_PREFIX));
        assert_eq!(hash_key(&key.secret), key.record.hash);
        assert!(!key.record.hash.contains(&key.secret));
        assert!(key.record.allows(Scope::Send));
        assert!(!key.record.allows(Scope::Read));
    }

    #[test]
    fn admin_implies_every_scope_but_operator() {
        let key = mint_key("app1", "ops", vec![Scope::Admin]);
        let allowed: Vec<_> = Scope::ALL.into_iter().filter(|s| key.record.allows(*s)).collect();
        assert_eq!(
            allowed,
            [Scope::Send, Scope::Read, Scope::Manage, Scope::Approve, Scope::Admin]
        );
        let operator = mint_key("default", "installation", vec![Scope::Operator]);
        assert!(Scope::ALL.iter().all(|s| operator.record.allows(*s)));
    }
}
