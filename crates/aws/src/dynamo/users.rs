//! `UserStore` on DynamoDB: `U#{app}#{id}` / `#`, listed by app through GSI1
//! (`USERS#{app}` / id). An upsert is one UpdateItem that keeps `created_at`
//! (`if_not_exists`) and says from the old image whether the user is new.

use super::expr::{Expr, s};
use super::items::{GSI1PK, GSI1SK, Item, key, number, optional_text, text};
use super::{BATCH_GET, DynamoStore, PARALLEL_BATCHES, sdk_error};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use futures::{StreamExt, TryStreamExt};
use herald_core::domain::{User, UserProfile};
use herald_core::ports::{StoreResult, UserStore};
use herald_core::time::{format_time, parse_time};
use std::collections::HashMap;

pub(super) fn user_pk(app: &str, id: &str) -> String {
    format!("U#{app}#{id}")
}

fn decode_user(item: &Item) -> StoreResult<User> {
    let time = |name: &str| {
        parse_time(text(item, name)?)
            .ok_or_else(|| herald_core::ports::StoreError::Corrupt("user time".into()))
    };
    let profile: UserProfile = serde_json::from_str(text(item, "body")?)?;
    Ok(User {
        id: text(item, "user_id")?.to_owned(),
        app_id: text(item, "app_id")?.to_owned(),
        profile,
        preferences: optional_text(item, "preferences")
            .map(|p| serde_json::from_str(&p))
            .transpose()?
            .unwrap_or_default(),
        preferences_revision: number(item, "preferences_revision") as u64,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

impl DynamoStore {
    async fn upsert_user(&self, user: User) -> StoreResult<bool> {
        let attributes = vec![
            ("body", s(serde_json::to_string(&user.profile)?)),
            ("user_id", s(&user.id)),
            ("app_id", s(&user.app_id)),
            ("updated_at", s(format_time(user.updated_at))),
            (GSI1PK, s(format!("USERS#{}", user.app_id))),
            (GSI1SK, s(&user.id)),
        ];
        self.upsert_record(user_pk(&user.app_id, &user.id), attributes, user.created_at).await
    }
}

impl DynamoStore {
    async fn batch_get_users(&self, app_id: &str, ids: Vec<String>) -> StoreResult<Vec<User>> {
        let keys: Vec<Item> = ids.iter().map(|id| key(user_pk(app_id, id))).collect();
        self.batch_get(keys).await?.iter().map(decode_user).collect()
    }
}

/// Upserts in flight at once for a bulk request.
const PARALLEL_UPSERTS: usize = 16;

#[async_trait]
impl UserStore for DynamoStore {
    async fn upsert_users(&self, users: &[User]) -> StoreResult<Vec<bool>> {
        futures::stream::iter(users.to_vec())
            .map(|user| self.upsert_user(user))
            .buffered(PARALLEL_UPSERTS)
            .try_collect()
            .await
    }

    async fn user(&self, app_id: &str, id: &str) -> StoreResult<Option<User>> {
        self.get(user_pk(app_id, id)).await?.as_ref().map(decode_user).transpose()
    }

    /// BatchGetItem, 100 keys a request, a few requests in flight; keys DynamoDB
    /// leaves unprocessed (throttling) are asked for again, a bounded number of times.
    async fn users(&self, app_id: &str, ids: &[String]) -> StoreResult<Vec<Option<User>>> {
        // BatchGetItem refuses a repeated key: ask for each user once.
        let mut unique: Vec<String> = ids.to_vec();
        unique.sort();
        unique.dedup();
        let chunks: Vec<Vec<String>> = unique.chunks(BATCH_GET).map(<[String]>::to_vec).collect();
        let pages = futures::stream::iter(chunks)
            .map(|chunk| self.batch_get_users(app_id, chunk))
            .buffered(PARALLEL_BATCHES)
            .try_collect::<Vec<_>>()
            .await?;
        let found: HashMap<String, User> =
            pages.into_iter().flatten().map(|user| (user.id.clone(), user)).collect();
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn list_users(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let mut e = Expr::default();
        let mut condition =
            format!("{} = {}", e.name(GSI1PK), e.value(s(format!("USERS#{app_id}"))));
        if let Some(after) = after {
            condition.push_str(&format!(" AND {} > {}", e.name(GSI1SK), e.value(s(after))));
        }
        let items = self.query(Some("GSI1"), &condition, None, &e, true, Some(limit)).await?;
        items.iter().map(decode_user).collect()
    }

    async fn delete_user(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(app_id, id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }
}
