//! Access tokens (WeCom, DingTalk, Feishu, WeChat: about two hours each), cached per
//! integration and shared by every sender in the process. One caller at a time fetches
//! a token for a key (the others wait for its result), a token is replaced five minutes
//! before it expires, and a token the vendor called expired is dropped only if it is
//! still the cached one, so that a burst of expired-token answers costs one refresh.
//!
//! Where senders are many processes (Lambda instances), the cache sits over a
//! `TokenStore` (one store item per key): an instance reads the token there before
//! fetching one, and only the instance that takes the refresh lease fetches; the
//! others read its token once it is saved. Vendors such as WeChat invalidate older
//! tokens when a new one is issued, so instances must not each fetch their own.

use crate::channels::ProviderError;
use crate::ports::StoreResult;
use async_trait::async_trait;
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

/// Access tokens shared by every process of an installation.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn load_token(&self, key: &str) -> StoreResult<Option<AccessToken>>;
    /// Saves the token and releases the refresh lease.
    async fn save_token(&self, key: &str, token: &AccessToken) -> StoreResult<()>;
    /// Takes the right to fetch a token for `key` until `until`; false while another
    /// caller holds it.
    async fn lease_token_refresh(&self, key: &str, until: DateTime<Utc>) -> StoreResult<bool>;
    /// Drops the stored token if it is still `value`.
    async fn expire_token(&self, key: &str, value: &str) -> StoreResult<()>;
}

/// How long a refresh lease lasts: longer than a token request takes.
const LEASE: chrono::Duration = chrono::Duration::seconds(20);
/// How often, and how many times, a caller without the lease looks for the new token.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
const LOOKS: u32 = 100;

fn store_error(e: crate::ports::StoreError) -> ProviderError {
    ProviderError::transient(format!("token store: {e}"))
}

#[derive(Default)]
struct Slot {
    token: Option<AccessToken>,
    /// How many times a token was fetched for this key (tests and metrics).
    fetches: u64,
}

/// The process's tokens, by key (`<integration id>/<revision>`), over the shared
/// store if there is one.
#[derive(Default, Clone)]
pub struct TokenCache {
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>>,
    shared: Option<Arc<dyn TokenStore>>,
}

impl TokenCache {
    /// A cache whose tokens are shared through `store` with other processes.
    pub fn shared(store: Arc<dyn TokenStore>) -> Self {
        Self { slots: Arc::default(), shared: Some(store) }
    }

    /// A fresh token from the shared store, or one this caller fetched under the lease.
    async fn from_store<F, Fut>(
        store: &dyn TokenStore,
        key: &str,
        fetch: F,
    ) -> Result<(AccessToken, bool), ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, ProviderError>>,
    {
        for _ in 0..LOOKS {
            if let Some(token) = store.load_token(key).await.map_err(store_error)?
                && token.fresh(Utc::now())
            {
                return Ok((token, false));
            }
            if store.lease_token_refresh(key, Utc::now() + LEASE).await.map_err(store_error)? {
                // Another caller may have saved a token (and released its lease) between
                // the read above and this lease: read again before fetching.
                if let Some(token) = store.load_token(key).await.map_err(store_error)?
                    && token.fresh(Utc::now())
                {
                    store.save_token(key, &token).await.map_err(store_error)?;
                    return Ok((token, false));
                }
                let token = fetch().await?;
                store.save_token(key, &token).await.map_err(store_error)?;
                return Ok((token, true));
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
        Err(ProviderError::transient("another sender kept the token refresh lease"))
    }

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
        let token = match &self.shared {
            Some(store) => {
                let (token, fetched) = Self::from_store(store.as_ref(), key, fetch).await?;
                slot.fetches += u64::from(fetched);
                token
            }
            None => {
                slot.fetches += 1;
                fetch().await?
            }
        };
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
        if let Some(store) = &self.shared
            && let Err(e) = store.expire_token(key, value).await
        {
            tracing::warn!(error = %e, "could not drop an expired token from the store");
        }
    }

    /// The key of an integration's token: a changed integration (new secret) gets a
    /// new token.
    pub fn key_for(integration: &crate::integrations::Integration) -> String {
        format!("{}/{}", integration.id, integration.revision)
    }

    /// A vendor's answer to a send with `token`: an expired-token error drops the
    /// token (if still cached) so that the one retry fetches a new one.
    pub async fn after_refusal(
        &self,
        key: &str,
        token: &str,
        error: ProviderError,
    ) -> ProviderError {
        if matches!(error, ProviderError::CredentialsExpired(_)) {
            self.expire(key, token).await;
        }
        error
    }

    /// How many tokens this process fetched for `key`.
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

    /// A store another process writes to between this caller's read and its lease: the
    /// first read finds nothing, the lease is free (the other process saved its token
    /// and released it), and the token is there on the second read.
    struct SavedMeanwhile {
        loads: AtomicU32,
        saved: std::sync::Mutex<Option<AccessToken>>,
    }

    #[async_trait]
    impl TokenStore for SavedMeanwhile {
        async fn load_token(&self, _key: &str) -> StoreResult<Option<AccessToken>> {
            if self.loads.fetch_add(1, Ordering::SeqCst) == 0 {
                return Ok(None);
            }
            Ok(Some(AccessToken::lasting("theirs".into(), 7200)))
        }
        async fn save_token(&self, _key: &str, token: &AccessToken) -> StoreResult<()> {
            *self.saved.lock().unwrap() = Some(token.clone());
            Ok(())
        }
        async fn lease_token_refresh(&self, _: &str, _: DateTime<Utc>) -> StoreResult<bool> {
            Ok(true)
        }
        async fn expire_token(&self, _key: &str, _value: &str) -> StoreResult<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_token_saved_between_the_read_and_the_lease_is_used_not_fetched_again() {
        let store =
            Arc::new(SavedMeanwhile { loads: AtomicU32::new(0), saved: Default::default() });
        let cache = TokenCache::shared(store.clone());
        let fetch = || async { Ok(AccessToken::lasting("mine".into(), 7200)) };
        assert_eq!(cache.get("k", fetch).await.unwrap(), "theirs");
        assert_eq!(cache.fetches("k").await, 0);
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
