//! The `Caller` extractor: resolves `Authorization: Bearer <key>` to a key record, with
//! a short-lived cache so the hot path does not read the database per request.

use super::AppState;
use super::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use herald_core::auth::{ApiKeyRecord, Scope, hash_key};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::RwLock;
use std::time::{Duration, Instant};

const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (ApiKeyRecord, Instant)>>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<ApiKeyRecord> {
        let entries = self.entries.read().expect("key cache");
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(record, _)| record.clone())
    }

    fn put(&self, record: ApiKeyRecord) {
        let mut entries = self.entries.write().expect("key cache");
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(record.hash.clone(), (record, Instant::now()));
    }
}

/// The authenticated caller of a request.
pub struct Caller(pub ApiKeyRecord);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("this API key lacks the '{scope}' scope")))
        }
    }

    pub fn app_id(&self) -> &str {
        &self.0.app_id
    }
}

/// A caller whose key holds the scope `S`: checked as the request's first step, before
/// any body is read, so a key without it gets 403 whatever it sent.
pub struct Scoped<S>(pub Caller, PhantomData<S>);

/// The scope a [`Scoped`] caller needs.
pub trait Needs {
    const SCOPE: Scope;
}

/// Marker types for [`Scoped`], one per scope.
pub mod scopes {
    use super::{Needs, Scope};
    pub struct Send;
    pub struct Read;
    pub struct Manage;
    pub struct Admin;
    pub struct Operator;
    impl Needs for Send {
        const SCOPE: Scope = Scope::Send;
    }
    impl Needs for Read {
        const SCOPE: Scope = Scope::Read;
    }
    impl Needs for Manage {
        const SCOPE: Scope = Scope::Manage;
    }
    impl Needs for Admin {
        const SCOPE: Scope = Scope::Admin;
    }
    impl Needs for Operator {
        const SCOPE: Scope = Scope::Operator;
    }
}

impl<S> std::ops::Deref for Scoped<S> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S: Needs + Send + Sync> FromRequestParts<AppState> for Scoped<S> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(S::SCOPE)?;
        Ok(Scoped(caller, PhantomData))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            Problem::unauthorized("send an API key as 'Authorization: Bearer <key>'")
        })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be 'Bearer <key>'")
            })?;
        let hash = hash_key(secret);
        if let Some(record) = state.keys.get(&hash) {
            return Ok(Caller(record));
        }
        let record = state
            .store
            .api_key_by_hash(&hash)
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown API key"))?;
        state.keys.put(record.clone());
        Ok(Caller(record))
    }
}
