//! `IntegrationStore` on SQLite: one row per app holding its integrations as JSON,
//! replaced under a revision check.

use super::SqliteBackend;
use crate::integrations::{Integration, IntegrationSet};
use crate::ports::{IntegrationStore, StoreResult};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl IntegrationStore for SqliteBackend {
    async fn integrations(&self, app_id: &str) -> StoreResult<IntegrationSet> {
        let app_id = app_id.to_owned();
        let row: Option<(u64, String)> = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT revision, body FROM integration_sets WHERE app_id = ?1",
                    )?
                    .query_row([app_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?)
            })
            .await?;
        match row {
            None => Ok(IntegrationSet::default()),
            Some((revision, body)) => {
                Ok(IntegrationSet { items: serde_json::from_str(&body)?, revision })
            }
        }
    }

    async fn replace_integrations(
        &self,
        app_id: &str,
        items: &[Integration],
        expected: u64,
    ) -> StoreResult<bool> {
        let (app_id, body) = (app_id.to_owned(), serde_json::to_string(items)?);
        self.writer()
            .run(move |conn| {
                let changed = if expected == 0 {
                    conn.prepare_cached(
                        "INSERT OR IGNORE INTO integration_sets (app_id, revision, body)
                         VALUES (?1, 1, ?2)",
                    )?
                    .execute(params![app_id, body])?
                } else {
                    conn.prepare_cached(
                        "UPDATE integration_sets SET revision = revision + 1, body = ?2
                         WHERE app_id = ?1 AND revision = ?3",
                    )?
                    .execute(params![app_id, body, expected])?
                };
                Ok(changed == 1)
            })
            .await
    }
}
