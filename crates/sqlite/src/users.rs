//! `UserStore` on SQLite: one row per user, the profile as JSON.

use super::SqliteBackend;
use crate::Db;
use async_trait::async_trait;
use herald_core::domain::{User, UserProfile};
use herald_core::ports::{StoreError, StoreResult, UserStore};
use herald_core::time::{format_time, parse_time};
use rusqlite::{OptionalExtension, Row, params};

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<User>> {
    let (app_id, id, body, created_at, updated_at): (String, String, String, String, String) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
    let (preferences, revision): (Option<String>, i64) = (row.get(5)?, row.get(6)?);
    Ok((|| {
        let time = |t: &str| parse_time(t).ok_or_else(|| StoreError::Corrupt("user time".into()));
        let profile: UserProfile = serde_json::from_str(&body)?;
        Ok(User {
            id,
            app_id,
            profile,
            preferences: preferences
                .map(|p| serde_json::from_str(&p))
                .transpose()?
                .unwrap_or_default(),
            preferences_revision: revision as u64,
            created_at: time(&created_at)?,
            updated_at: time(&updated_at)?,
        })
    })())
}

const COLUMNS: &str = "app_id, id, body, created_at, updated_at";
const READ_COLUMNS: &str =
    "app_id, id, body, created_at, updated_at, preferences, preferences_revision";

#[async_trait]
impl UserStore for SqliteBackend {
    async fn upsert_users(&self, users: &[User]) -> StoreResult<Vec<bool>> {
        let users = users.to_vec();
        self.writer()
            .run(move |conn| {
                let mut created = Vec::with_capacity(users.len());
                for user in &users {
                    let existed = conn
                        .prepare_cached("SELECT 1 FROM users WHERE app_id = ?1 AND id = ?2")
                        .db()?
                        .query_row(params![user.app_id, user.id], |_| Ok(()))
                        .optional()
                        .db()?
                        .is_some();
                    conn.prepare_cached(&format!(
                        "INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (app_id, id) DO UPDATE SET body = excluded.body,
                             updated_at = excluded.updated_at"
                    ))
                    .db()?
                    .execute(params![
                        user.app_id,
                        user.id,
                        serde_json::to_string(&user.profile)?,
                        format_time(user.created_at),
                        format_time(user.updated_at)
                    ])
                    .db()?;
                    created.push(!existed);
                }
                Ok(created)
            })
            .await
    }

    async fn user(&self, app_id: &str, id: &str) -> StoreResult<Option<User>> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {READ_COLUMNS} FROM users WHERE app_id = ?1 AND id = ?2"
            ))
            .db()?
            .query_row(params![app_id, id], user_from_row)
            .optional()
            .db()?
            .transpose()
        })
        .await
    }

    async fn list_users(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let (app_id, after) = (app_id.to_owned(), after.unwrap_or("").to_owned());
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {READ_COLUMNS} FROM users WHERE app_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            )).db()?;
            let rows = statement.query_map(params![app_id, after, limit as i64], user_from_row).db()?;
            rows.map(|row| row.db()?).collect()
        })
        .await
    }

    async fn delete_user(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.writer()
            .run(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM users WHERE app_id = ?1 AND id = ?2")
                    .db()?
                    .execute(params![app_id, id])
                    .db()?
                    == 1)
            })
            .await
    }
}
