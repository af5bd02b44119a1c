//! `GroupStore` on SQLite: a row per group, a row per membership.

use super::SqliteBackend;
use crate::Db;
use async_trait::async_trait;
use herald_core::domain::Group;
use herald_core::ports::{GroupStore, StoreError, StoreResult};
use herald_core::time::{format_time, parse_time};
use rusqlite::{OptionalExtension, Row, params};

fn group_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<Group>> {
    let (app_id, id, name, created, updated): (String, String, String, String, String) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
    let time = |t: &str| parse_time(t).ok_or_else(|| StoreError::Corrupt("group time".into()));
    Ok((|| {
        Ok(Group { id, app_id, name, created_at: time(&created)?, updated_at: time(&updated)? })
    })())
}

const COLUMNS: &str = "app_id, id, name, created_at, updated_at";

#[async_trait]
impl GroupStore for SqliteBackend {
    async fn put_group(&self, group: &Group) -> StoreResult<bool> {
        let group = group.clone();
        self.writer()
            .run(move |conn| {
                let existed = conn
                    .prepare_cached("SELECT 1 FROM groups WHERE app_id = ?1 AND id = ?2")
                    .db()?
                    .query_row(params![group.app_id, group.id], |_| Ok(()))
                    .optional()
                    .db()?
                    .is_some();
                conn.prepare_cached(&format!(
                    "INSERT INTO groups ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app_id, id) DO UPDATE SET name = excluded.name,
                         updated_at = excluded.updated_at"
                ))
                .db()?
                .execute(params![
                    group.app_id,
                    group.id,
                    group.name,
                    format_time(group.created_at),
                    format_time(group.updated_at)
                ])
                .db()?;
                Ok(!existed)
            })
            .await
    }

    async fn group(&self, app_id: &str, id: &str) -> StoreResult<Option<Group>> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM groups WHERE app_id = ?1 AND id = ?2"
            ))
            .db()?
            .query_row(params![app_id, id], group_from_row)
            .optional()
            .db()?
            .transpose()
        })
        .await
    }

    async fn list_groups(&self, app_id: &str) -> StoreResult<Vec<Group>> {
        let app_id = app_id.to_owned();
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM groups WHERE app_id = ?1 ORDER BY id"
                ))
                .db()?;
            let rows = statement.query_map([app_id], group_from_row).db()?;
            rows.map(|row| row.db()?).collect()
        })
        .await
    }

    async fn delete_group(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.writer()
            .run(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM group_members WHERE app_id = ?1 AND group_id = ?2",
                )
                .db()?
                .execute(params![app_id, id])
                .db()?;
                Ok(conn
                    .prepare_cached("DELETE FROM groups WHERE app_id = ?1 AND id = ?2")
                    .db()?
                    .execute(params![app_id, id])
                    .db()?
                    == 1)
            })
            .await
    }

    async fn add_members(&self, app_id: &str, group: &str, users: &[String]) -> StoreResult<usize> {
        let (app_id, group, users) = (app_id.to_owned(), group.to_owned(), users.to_vec());
        self.writer()
            .run(move |conn| {
                let mut insert = conn.prepare_cached(
                    "INSERT OR IGNORE INTO group_members (app_id, group_id, user_id) VALUES (?1, ?2, ?3)",
                ).db()?;
                let mut added = 0;
                for user in &users {
                    added += insert.execute(params![app_id, group, user]).db()?;
                }
                Ok(added)
            })
            .await
    }

    async fn remove_members(
        &self,
        app_id: &str,
        group: &str,
        users: &[String],
    ) -> StoreResult<usize> {
        let (app_id, group, users) = (app_id.to_owned(), group.to_owned(), users.to_vec());
        self.writer()
            .run(move |conn| {
                let mut delete = conn.prepare_cached(
                    "DELETE FROM group_members WHERE app_id = ?1 AND group_id = ?2 AND user_id = ?3",
                ).db()?;
                let mut removed = 0;
                for user in &users {
                    removed += delete.execute(params![app_id, group, user]).db()?;
                }
                Ok(removed)
            })
            .await
    }

    async fn members(
        &self,
        app_id: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let (app_id, group, after) =
            (app_id.to_owned(), group.to_owned(), after.unwrap_or("").to_owned());
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT user_id FROM group_members WHERE app_id = ?1 AND group_id = ?2 AND user_id > ?3
                 ORDER BY user_id LIMIT ?4",
            ).db()?;
            let rows = statement.query_map(params![app_id, group, after, limit as i64], |r| r.get(0)).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
        .await
    }

    async fn groups_of(&self, app_id: &str, user: &str) -> StoreResult<Vec<String>> {
        let (app_id, user) = (app_id.to_owned(), user.to_owned());
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT group_id FROM group_members WHERE app_id = ?1 AND user_id = ?2 ORDER BY group_id",
            ).db()?;
            let rows = statement.query_map(params![app_id, user], |r| r.get(0)).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
        .await
    }
}
