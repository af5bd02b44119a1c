//! `PreferenceStore` on SQLite: preferences as JSON in the user's row, a row per
//! category, a row per delivery counted against a frequency cap.

use super::SqliteBackend;
use crate::Db;
use async_trait::async_trait;
use herald_core::domain::{CategorySettings, DeliveryId, Preferences};
use herald_core::ports::{CapWindow, PreferenceStore, PreferencesWrite, StoreError, StoreResult};
use herald_core::time::{format_time, parse_time};
use rusqlite::{OptionalExtension, Row, params};

fn category_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<CategorySettings>> {
    let (app_id, body, created, updated): (String, String, String, String) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    Ok((|| {
        let time =
            |t: &str| parse_time(t).ok_or_else(|| StoreError::Corrupt("category time".into()));
        let mut settings: CategorySettings = serde_json::from_str(&body)?;
        settings.app_id = app_id;
        settings.created_at = time(&created)?;
        settings.updated_at = time(&updated)?;
        Ok(settings)
    })())
}

#[async_trait]
impl PreferenceStore for SqliteBackend {
    async fn put_preferences(
        &self,
        app_id: &str,
        user_id: &str,
        preferences: &Preferences,
        expected_revision: Option<u64>,
    ) -> StoreResult<PreferencesWrite> {
        let (app_id, user_id) = (app_id.to_owned(), user_id.to_owned());
        let body = serde_json::to_string(preferences)?;
        self.writer()
            .run(move |conn| {
                let current: Option<i64> = conn
                    .prepare_cached(
                        "SELECT preferences_revision FROM users WHERE app_id = ?1 AND id = ?2",
                    )
                    .db()?
                    .query_row(params![app_id, user_id], |row| row.get(0))
                    .optional()
                    .db()?;
                let Some(current) = current else { return Ok(PreferencesWrite::NoUser) };
                if expected_revision.is_some_and(|expected| expected != current as u64) {
                    return Ok(PreferencesWrite::Conflict);
                }
                conn.prepare_cached(
                    "UPDATE users SET preferences = ?3, preferences_revision = ?4
                     WHERE app_id = ?1 AND id = ?2",
                )
                .db()?
                .execute(params![app_id, user_id, body, current + 1])
                .db()?;
                Ok(PreferencesWrite::Saved { revision: current as u64 + 1 })
            })
            .await
    }

    async fn put_category(&self, settings: &CategorySettings) -> StoreResult<bool> {
        let settings = settings.clone();
        let body = serde_json::to_string(&settings)?;
        self.writer()
            .run(move |conn| {
                let existed = conn
                    .prepare_cached("SELECT 1 FROM categories WHERE app_id = ?1 AND name = ?2")
                    .db()?
                    .query_row(params![settings.app_id, settings.name], |_| Ok(()))
                    .optional()
                    .db()?
                    .is_some();
                conn.prepare_cached(
                    "INSERT INTO categories (app_id, name, body, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app_id, name) DO UPDATE SET body = excluded.body,
                         updated_at = excluded.updated_at",
                )
                .db()?
                .execute(params![
                    settings.app_id,
                    settings.name,
                    body,
                    format_time(settings.created_at),
                    format_time(settings.updated_at)
                ])
                .db()?;
                Ok(!existed)
            })
            .await
    }

    async fn category(&self, app_id: &str, name: &str) -> StoreResult<Option<CategorySettings>> {
        let (app_id, name) = (app_id.to_owned(), name.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT app_id, body, created_at, updated_at FROM categories
                 WHERE app_id = ?1 AND name = ?2",
            )
            .db()?
            .query_row(params![app_id, name], category_from_row)
            .optional()
            .db()?
            .transpose()
        })
        .await
    }

    async fn list_categories(&self, app_id: &str) -> StoreResult<Vec<CategorySettings>> {
        let app_id = app_id.to_owned();
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT app_id, body, created_at, updated_at FROM categories
                 WHERE app_id = ?1 ORDER BY name",
                )
                .db()?;
            let rows = statement.query_map(params![app_id], category_from_row).db()?;
            rows.map(|row| row.db()?).collect()
        })
        .await
    }

    async fn delete_category(&self, app_id: &str, name: &str) -> StoreResult<bool> {
        let (app_id, name) = (app_id.to_owned(), name.to_owned());
        self.writer()
            .run(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM categories WHERE app_id = ?1 AND name = ?2")
                    .db()?
                    .execute(params![app_id, name])
                    .db()?
                    == 1)
            })
            .await
    }

    async fn take_cap_slot(
        &self,
        window: &CapWindow,
        delivery: &DeliveryId,
        limit: u32,
    ) -> StoreResult<bool> {
        let (app_id, counter, delivery) =
            (window.app_id.clone(), window.key(), delivery.to_string());
        let expires_at = window.period.window_end(window.start).timestamp();
        self.writer()
            .run(move |conn| {
                let (counted, already): (i64, bool) = conn
                    .prepare_cached(
                        "SELECT count(*), coalesce(sum(delivery_id = ?3), 0) > 0 FROM cap_slots
                         WHERE app_id = ?1 AND counter = ?2",
                    )
                    .db()?
                    .query_row(params![app_id, counter, delivery], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .db()?;
                if already {
                    return Ok(true);
                }
                if counted >= i64::from(limit) {
                    return Ok(false);
                }
                conn.prepare_cached(
                    "INSERT INTO cap_slots (app_id, counter, delivery_id, expires_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .db()?
                .execute(params![app_id, counter, delivery, expires_at])
                .db()?;
                Ok(true)
            })
            .await
    }
}
