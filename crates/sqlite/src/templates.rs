//! `TemplateStore` on SQLite: a row per template, a row per immutable version.

use super::SqliteBackend;
use crate::Db;
use async_trait::async_trait;
use herald_core::ports::{StoreError, StoreResult, TemplateStore};
use herald_core::templates::{Template, TemplateVersion};
use herald_core::time::{format_time, parse_time};
use rusqlite::{OptionalExtension, Row, params};

const TEMPLATE_COLUMNS: &str =
    "app_id, id, name, description, latest_version, created_at, updated_at";

fn template_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<Template>> {
    let (created_at, updated_at): (String, String) = (row.get(5)?, row.get(6)?);
    let time =
        |text: &str| parse_time(text).ok_or_else(|| StoreError::Corrupt("template time".into()));
    let (app_id, id, name, description, latest): (String, String, String, Option<String>, i64) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
    Ok((|| {
        Ok(Template {
            id,
            app_id,
            name,
            description,
            latest_version: latest as u32,
            created_at: time(&created_at)?,
            updated_at: time(&updated_at)?,
        })
    })())
}

fn insert_version(
    conn: &rusqlite::Connection,
    app_id: &str,
    version: &TemplateVersion,
) -> StoreResult<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO template_versions (app_id, template_id, version, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        ).db()?
        .execute(params![
            app_id,
            version.template_id,
            version.version as i64,
            serde_json::to_string(version)?,
            format_time(version.created_at)
        ]).db()?;
    Ok(inserted == 1)
}

#[async_trait]
impl TemplateStore for SqliteBackend {
    async fn create_template(
        &self,
        template: &Template,
        first: &TemplateVersion,
    ) -> StoreResult<bool> {
        let (template, first) = (template.clone(), first.clone());
        self.writer()
            .run(move |conn| {
                let created = conn
                    .prepare_cached(&format!(
                        "INSERT OR IGNORE INTO templates ({TEMPLATE_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ))
                    .db()?
                    .execute(params![
                        template.app_id,
                        template.id,
                        template.name,
                        template.description,
                        first.version as i64,
                        format_time(template.created_at),
                        format_time(template.updated_at)
                    ])
                    .db()?
                    == 1;
                if created {
                    // A leftover version of a deleted template with the same id goes.
                    conn.prepare_cached(
                        "DELETE FROM template_versions WHERE app_id = ?1 AND template_id = ?2",
                    )
                    .db()?
                    .execute(params![template.app_id, template.id])
                    .db()?;
                    insert_version(conn, &template.app_id, &first)?;
                }
                Ok(created)
            })
            .await
    }

    async fn publish_template_version(
        &self,
        app_id: &str,
        version: &TemplateVersion,
    ) -> StoreResult<bool> {
        let (app_id, version) = (app_id.to_owned(), version.clone());
        self.writer()
            .run(move |conn| {
                let moved = conn
                    .prepare_cached(
                        "UPDATE templates SET latest_version = ?1, updated_at = ?2
                         WHERE app_id = ?3 AND id = ?4 AND latest_version = ?5",
                    )
                    .db()?
                    .execute(params![
                        version.version as i64,
                        format_time(version.created_at),
                        app_id,
                        version.template_id,
                        version.version as i64 - 1
                    ])
                    .db()?
                    == 1;
                Ok(moved && insert_version(conn, &app_id, &version)?)
            })
            .await
    }

    async fn template(&self, app_id: &str, id: &str) -> StoreResult<Option<Template>> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE app_id = ?1 AND id = ?2"
            ))
            .db()?
            .query_row(params![app_id, id], template_from_row)
            .optional()
            .db()?
            .transpose()
        })
        .await
    }

    async fn template_version(
        &self,
        app_id: &str,
        id: &str,
        version: u32,
    ) -> StoreResult<Option<TemplateVersion>> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.read(move |conn| {
            let body: Option<String> = conn
                .prepare_cached(
                    "SELECT v.body FROM template_versions v JOIN templates t
                       ON t.app_id = v.app_id AND t.id = v.template_id
                     WHERE v.app_id = ?1 AND v.template_id = ?2 AND v.version = ?3",
                )
                .db()?
                .query_row(params![app_id, id, version as i64], |r| r.get(0))
                .optional()
                .db()?;
            Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
        })
        .await
    }

    async fn list_templates(&self, app_id: &str) -> StoreResult<Vec<Template>> {
        let app_id = app_id.to_owned();
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE app_id = ?1 ORDER BY id"
                ))
                .db()?;
            let rows = statement.query_map([app_id], template_from_row).db()?;
            rows.map(|row| row.db()?).collect()
        })
        .await
    }

    async fn delete_template(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.writer()
            .run(move |conn| {
                let deleted = conn
                    .prepare_cached("DELETE FROM templates WHERE app_id = ?1 AND id = ?2")
                    .db()?
                    .execute(params![app_id, id])
                    .db()?
                    == 1;
                conn.prepare_cached(
                    "DELETE FROM template_versions WHERE app_id = ?1 AND template_id = ?2",
                )
                .db()?
                .execute(params![app_id, id])
                .db()?;
                Ok(deleted)
            })
            .await
    }
}
