//! What chat senders share across Lambda instances, one small item each: an
//! integration's access token (`TOKEN#{key}`: the token, its expiry and the refresh
//! lease) and its pacing log (`PACE#{key}`: the last sends' times and the holds of
//! waiting sends as one JSON string, with a version that makes each change conditional
//! on the log read). TTL removes both a day after use.

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::{Item, PK, TTL, key, number, optional_text, ttl};
use super::store::TxError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use herald_core::channels::chat::tokens::{AccessToken, TokenStore};
use herald_core::integrations::pacing::{Claimant, PaceLog, Pacer, WindowLimit};
use herald_core::ports::{StoreError, StoreResult};
use herald_core::time::{format_time, parse_time};
use std::time::Duration;

/// Writes that lost a race for the pacing log are tried again this often.
const PACE_RACES: usize = 8;

fn token_pk(key: &str) -> String {
    format!("TOKEN#{key}")
}

fn pace_pk(key: &str) -> String {
    format!("PACE#{key}")
}

fn a_day_after(at: DateTime<Utc>) -> AttributeValue {
    ttl(at + chrono::Duration::days(1))
}

impl DynamoStore {
    async fn conditional(
        &self,
        pk: String,
        update: &str,
        condition: &str,
        e: &Expr,
    ) -> StoreResult<bool> {
        match self.commit(vec![self.update(pk, update, Some(condition), e)?]).await {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(TxError::Store(e)) => Err(e),
        }
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn load_token(&self, key: &str) -> StoreResult<Option<AccessToken>> {
        let Some(item) = self.get(token_pk(key)).await? else { return Ok(None) };
        let (Some(value), Some(expires)) =
            (optional_text(&item, "token"), optional_text(&item, "token_expires_at"))
        else {
            return Ok(None);
        };
        let expires_at =
            parse_time(&expires).ok_or_else(|| StoreError::Corrupt("token expiry".into()))?;
        Ok(Some(AccessToken { value, expires_at }))
    }

    async fn save_token(&self, key: &str, token: &AccessToken) -> StoreResult<()> {
        let mut item: Item = super::items::key(token_pk(key));
        item.insert("token".into(), s(&token.value));
        item.insert("token_expires_at".into(), s(format_time(token.expires_at)));
        item.insert(TTL.into(), a_day_after(token.expires_at));
        match self.commit(vec![self.put(item, None)?]).await {
            Ok(()) => Ok(()),
            Err(TxError::ConditionFailed(_)) => Ok(()),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    async fn lease_token_refresh(&self, key: &str, until: DateTime<Utc>) -> StoreResult<bool> {
        let mut e = Expr::default();
        let lease = e.name("lease_until");
        let update = format!(
            "SET {lease} = {}, {} = {}",
            e.value(s(format_time(until))),
            e.name(TTL),
            e.value(a_day_after(until))
        );
        let condition = format!(
            "attribute_not_exists({lease}) OR {lease} < {}",
            e.value(s(format_time(Utc::now())))
        );
        self.conditional(token_pk(key), &update, &condition, &e).await
    }

    async fn expire_token(&self, key: &str, value: &str) -> StoreResult<()> {
        let mut e = Expr::default();
        let token = e.name("token");
        let update = format!("REMOVE {token}, {}", e.name("token_expires_at"));
        let condition = format!("{token} = {}", e.value(s(value)));
        self.conditional(token_pk(key), &update, &condition, &e).await.map(|_| ())
    }
}

#[async_trait]
impl Pacer for DynamoStore {
    async fn acquire(
        &self,
        pace_key: &str,
        limit: WindowLimit,
        who: Claimant<'_>,
    ) -> StoreResult<Result<(), Duration>> {
        for _ in 0..PACE_RACES {
            let item = self.get(pace_pk(pace_key)).await?;
            let version = item.as_ref().map_or(0, |item| number(item, "version"));
            let mut log = item
                .as_ref()
                .and_then(|item| item.get("log")?.as_s().ok())
                .and_then(|log| serde_json::from_str::<PaceLog>(log).ok())
                .unwrap_or_default();
            let now = Utc::now();
            let before = log.holds.clone();
            let admitted = log.admit(limit, now.timestamp_millis(), who);
            let mut item: Item = key(pace_pk(pace_key));
            let text =
                serde_json::to_string(&log).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            item.insert("log".into(), AttributeValue::S(text));
            item.insert("version".into(), n(version + 1));
            item.insert(TTL.into(), a_day_after(now));
            let mut e = Expr::default();
            let condition = if version == 0 {
                format!("attribute_not_exists({})", e.name(PK))
            } else {
                format!("{} = {}", e.name("version"), e.value(n(version)))
            };
            // A refusal is written too when it changed the holds.
            if admitted.is_err() && log.holds == before {
                return Ok(admitted.map_err(Duration::from_millis));
            }
            match self.commit(vec![self.put(item, Some((&condition, e)))?]).await {
                Ok(()) => return Ok(admitted.map_err(Duration::from_millis)),
                Err(TxError::ConditionFailed(_)) => continue,
                Err(TxError::Store(e)) => return Err(e),
            }
        }
        // Lost every race: others are sending through it right now; come back shortly.
        Ok(Err(Duration::from_millis(50)))
    }
}
