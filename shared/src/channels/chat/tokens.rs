//! Access tokens (WeCom, DingTalk, Feishu, WeChat: about two hours each), cached per
//! integration and shared by every sender in the process. One caller at a time fetches
//! a token for a key (the others wait for its result), a token is replaced five minutes
//! before it expires, and a token the vendor called expired is dropped only if it is
//! still the cached one, so that a burst of expired-token answers costs one refresh.

use crate::channels::ProviderError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Replaced this long before the vendor's expiry.
const EARLY: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

impl AccessToken {
    /// A token the vendor says lives `seconds` from now.
    pub fn lasting(value: String, seconds: i64) -> Self {
        Self { value, expires_at: Utc::now() + chrono::Duration::seconds(seconds.max(0)) }
    }

    fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.expires_at - EARLY > now
    }
}

#[derive(Default)]
struct Slot {
    token: Option<AccessToken>,
    /// How many times a token was fetched for this key (tests and metrics).
    fetches: u64,
}

/// The process's tokens, by key (`<app>/<integration id>/<revision>`).
#[derive(Default, Clone)]
pub struct TokenCache {
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>>,
}

impl TokenCache {
    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots.lock().expect("token slots").entry(key.to_owned()).or_default().clone()
    }

    /// The cached token for `key`, or a new one from `fetch` (one fetch at a time).
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<String, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, ProviderError>>,
    {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(token) = &slot.token
            && token.fresh(Utc::now())
        {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        slot.fetches += 1;
        let value = token.value.clone();
        slot.token = Some(token);
        Ok(value)
    }

    /// Drops `value` if it is still the cached token for `key` (the vendor refused it).
    pub async fn expire(&self, key: &str, value: &str) {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if slot.token.as_ref().is_some_and(|t| t.value == value) {
            slot.token = None;
        }
    }

    /// How many tokens were fetched for `key`.
    pub async fn fetches(&self, key: &str) -> u64 {
        self.slot(key).lock().await.fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_one_refresh() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicU32::new(0));
        let fetch = |calls: Arc<AtomicU32>| async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::lasting(format!("t{n}"), 7200))
        };
        let gets = (0..8).map(|_| cache.get("k", || fetch(calls.clone())));
        let tokens = futures::future::join_all(gets).await;
        assert!(tokens.iter().all(|t| t.as_ref().unwrap() == "t0"));
        // Eight senders are told t0 expired: one refresh, and a late report of the old
        // token does not drop the new one.
        for _ in 0..8 {
            cache.expire("k", "t0").await;
        }
        assert_eq!(cache.get("k", || fetch(calls.clone())).await.unwrap(), "t1");
        cache.expire("k", "t0").await;
        assert_eq!(cache.get("k", || fetch(calls.clone())).await.unwrap(), "t1");
        assert_eq!(cache.fetches("k").await, 2);
    }

    #[tokio::test]
    async fn a_token_near_its_expiry_is_replaced() {
        let cache = TokenCache::default();
        let short = || async { Ok(AccessToken::lasting("short".into(), 60)) };
        assert_eq!(cache.get("k", short).await.unwrap(), "short");
        let long = || async { Ok(AccessToken::lasting("long".into(), 7200)) };
        assert_eq!(cache.get("k", long).await.unwrap(), "long");
    }
}
