//! `TemplateStore` on DynamoDB: a template and its versions share one partition
//! (`T#{app}#{id}`: the template at `#`, version n at `V#{n:010}`); GSI1 lists an app's
//! templates (`TPL#{app}`). Publishing is one transaction: the template's
//! `latest_version` moves from n - 1 to n only if the version item is new.

use super::expr::{Expr, n, s};
use super::items::{GSI1PK, GSI1SK, Item, PK, SK, key, text};
use super::store::TxError;
use super::{DynamoStore, sdk_error};
use async_trait::async_trait;
use herald_core::ports::{StoreResult, TemplateStore};
use herald_core::templates::{Template, TemplateVersion};
use herald_core::time::format_time;
use std::collections::HashMap;

fn template_pk(app: &str, id: &str) -> String {
    format!("T#{app}#{id}")
}

fn version_sk(version: u32) -> String {
    format!("V#{version:010}")
}

fn template_item(template: &Template) -> StoreResult<Item> {
    let mut item = key(template_pk(&template.app_id, &template.id));
    item.extend([
        ("body".to_owned(), s(serde_json::to_string(template)?)),
        ("app_id".to_owned(), s(&template.app_id)),
        ("latest_version".to_owned(), n(template.latest_version as i64)),
        (GSI1PK.to_owned(), s(format!("TPL#{}", template.app_id))),
        (GSI1SK.to_owned(), s(&template.id)),
    ]);
    Ok(item)
}

fn decode_template(item: &Item) -> StoreResult<Template> {
    let mut template: Template = serde_json::from_str(text(item, "body")?)?;
    template.app_id = text(item, "app_id")?.to_owned();
    template.latest_version = super::items::number(item, "latest_version") as u32;
    if let Some(updated) = item.get("updated_at").and_then(|v| v.as_s().ok()) {
        template.updated_at = herald_core::time::parse_time(updated)
            .ok_or_else(|| herald_core::ports::StoreError::Corrupt("template time".into()))?;
    }
    Ok(template)
}

fn version_item(app: &str, version: &TemplateVersion) -> StoreResult<Item> {
    Ok(HashMap::from([
        (PK.to_owned(), s(template_pk(app, &version.template_id))),
        (SK.to_owned(), s(version_sk(version.version))),
        ("body".to_owned(), s(serde_json::to_string(version)?)),
    ]))
}

fn tx(result: Result<(), TxError>) -> StoreResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(TxError::ConditionFailed(_)) => Ok(false),
        Err(TxError::Store(e)) => Err(e),
    }
}

#[async_trait]
impl TemplateStore for DynamoStore {
    async fn create_template(
        &self,
        template: &Template,
        first: &TemplateVersion,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let condition = format!("attribute_not_exists({})", e.name(PK));
        let writes = vec![
            self.put(template_item(template)?, Some((&condition, e)))?,
            self.put(version_item(&template.app_id, first)?, None)?,
        ];
        tx(self.commit(writes).await)
    }

    async fn publish_template_version(
        &self,
        app_id: &str,
        version: &TemplateVersion,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let latest = e.name("latest_version");
        let update = format!(
            "SET {latest} = {}, {} = {}",
            e.value(n(version.version as i64)),
            e.name("updated_at"),
            e.value(s(format_time(version.created_at)))
        );
        let condition = format!("{latest} = {}", e.value(n(version.version as i64 - 1)));
        let mut new = Expr::default();
        let new_condition = format!("attribute_not_exists({})", new.name(PK));
        let writes = vec![
            self.update(template_pk(app_id, &version.template_id), &update, Some(&condition), &e)?,
            self.put(version_item(app_id, version)?, Some((&new_condition, new)))?,
        ];
        tx(self.commit(writes).await)
    }

    async fn template(&self, app_id: &str, id: &str) -> StoreResult<Option<Template>> {
        self.get(template_pk(app_id, id)).await?.as_ref().map(decode_template).transpose()
    }

    async fn template_version(
        &self,
        app_id: &str,
        id: &str,
        version: u32,
    ) -> StoreResult<Option<TemplateVersion>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(template_pk(app_id, id)))
            .key(SK, s(version_sk(version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        output.item.map(|item| Ok(serde_json::from_str(text(&item, "body")?)?)).transpose()
    }

    async fn list_templates(&self, app_id: &str) -> StoreResult<Vec<Template>> {
        let mut e = Expr::default();
        let condition = format!("{} = {}", e.name(GSI1PK), e.value(s(format!("TPL#{app_id}"))));
        let items = self.query(Some("GSI1"), &condition, None, &e, true, None).await?;
        items.iter().map(decode_template).collect()
    }

    async fn delete_template(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        self.delete_partition(template_pk(app_id, id)).await
    }
}
