//! One-click unsubscribe links (RFC 8058). A link carries who and what it unsubscribes
//! (app, user and the user's incarnation, category) and an HMAC-SHA256 over exactly
//! that, so the endpoint needs no API key, a link cannot be edited into someone
//! else's, and a link sent to a deleted user does nothing for a new user of the same
//! id. Links name the signing scheme's version, so the key can be rotated later.

use crate::ports::{Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// What one link unsubscribes: a category's emails, or (without one) everything but
/// critical categories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    #[serde(rename = "a")]
    pub app_id: String,
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The user record's creation time (milliseconds) when the link was made.
    #[serde(rename = "i")]
    pub since: i64,
    #[serde(rename = "k")]
    pub key_version: u32,
}

/// The version of the signing key links are made with today.
pub const KEY_VERSION: u32 = 1;

fn mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

/// `payload.signature`, both base64url: short enough for a header, safe in a path.
pub fn sign(key: &[u8], what: &Unsubscribe) -> String {
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(what).expect("plain strings serialize"));
    let signature = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// The link's content if its signature is ours (compared in constant time).
pub fn verify(key: &[u8], token: &str) -> Option<Unsubscribe> {
    let (payload, signature) = token.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    mac(key, payload).verify_slice(&signature).ok()?;
    let what: Unsubscribe = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (what.key_version == KEY_VERSION).then_some(what)
}

/// The setting that holds the signing key, made once per installation.
pub const KEY_SETTING: &str = "unsubscribe_signing_key";

/// Signs and checks links with the installation's key, read (or made) on first use so
/// a cold start costs no request.
pub struct UnsubscribeLinks {
    /// Where the API is reachable from a recipient's mail client.
    public_url: String,
    store: Arc<dyn Store>,
    key: OnceCell<Vec<u8>>,
}

impl UnsubscribeLinks {
    pub fn new(public_url: &str, store: Arc<dyn Store>) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self { public_url, store, key: OnceCell::new() }
    }

    /// Herald's public URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    async fn key(&self) -> Result<&[u8], StoreError> {
        let key = self
            .key
            .get_or_try_init(|| async {
                let fresh = hex::encode(rand::random::<[u8; 32]>());
                let stored = self.store.init_setting(KEY_SETTING, &fresh).await?;
                hex::decode(stored).map_err(|_| StoreError::Corrupt("signing key".into()))
            })
            .await?;
        Ok(key)
    }

    /// The one-click URL for `what`.
    pub async fn url(&self, what: &Unsubscribe) -> Result<String, StoreError> {
        Ok(format!("{}/v1/unsubscribe/{}", self.public_url, sign(self.key().await?, what)))
    }

    pub async fn verify(&self, token: &str) -> Result<Option<Unsubscribe>, StoreError> {
        Ok(verify(self.key().await?, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_and_an_edited_one_does_not() {
        let key = b"0123456789abcdef0123456789abcdef";
        let what = Unsubscribe {
            app_id: "shop".into(),
            user_id: "ann".into(),
            category: Some("newsletter".into()),
            since: 1_764_000_000_000,
            key_version: KEY_VERSION,
        };
        let token = sign(key, &what);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_eq!(verify(key, &token), Some(what.clone()));
        assert_eq!(verify(b"another key", &token), None);

        let (_, signature) = token.split_once('.').unwrap();
        let other = Unsubscribe { user_id: "bob".into(), ..what };
        let forged =
            format!("{}.{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()));
        assert_eq!(verify(key, &forged), None, "a payload edited under the old signature");
        assert_eq!(verify(key, "garbage"), None);
        assert_eq!(verify(key, "a.b"), None);
        let future = Unsubscribe { key_version: KEY_VERSION + 1, ..other };
        assert_eq!(verify(key, &sign(key, &future)), None, "an unknown key version");
    }
}
