//! `IntegrationStore` on SQLite: one row per app holding its integrations as JSON,
//! replaced under a revision check.

use super::SqliteBackend;
use crate::Db;
use async_trait::async_trait;
use herald_core::integrations::{Integration, IntegrationSet};
use herald_core::ports::{IntegrationStore, StoreResult};
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl IntegrationStore for SqliteBackend {
    async fn integrations(&self, app_id: &str) -> StoreResult<IntegrationSet> {
        let app_id = app_id.to_owned();
        let row: Option<(u64, String)> = self
            .read(move |conn| {
                conn.prepare_cached("SELECT revision, body FROM integration_sets WHERE app_id = ?1")
                    .db()?
                    .query_row([app_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
                    .db()
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
                    )
                    .db()?
                    .execute(params![app_id, body])
                    .db()?
                } else {
                    conn.prepare_cached(
                        "UPDATE integration_sets SET revision = revision + 1, body = ?2
                         WHERE app_id = ?1 AND revision = ?3",
                    )
                    .db()?
                    .execute(params![app_id, body, expected])
                    .db()?
                };
                Ok(changed == 1)
            })
            .await
    }
}
