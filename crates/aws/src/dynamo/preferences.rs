//! `PreferenceStore` on DynamoDB. Preferences live in the user's item (`preferences`,
//! `preferences_revision`), so dispatch reads a user and their choices in one read.
//! Categories are `C#{app}#{name}` / `#`, listed through GSI1 (`CATEGORIES#{app}`).
//! A frequency-cap window is one item holding the set of delivery ids it counted: one
//! conditional UpdateItem adds an id only while the set is smaller than the cap, and
//! adding an id twice is a no-op, so a redelivered dispatch never counts twice.

use super::expr::{Expr, n, s};
use super::items::{GSI1PK, GSI1SK, Item, PK, TTL, key, text, ttl};
use super::users::user_pk;
use super::{DynamoStore, backend, sdk_error};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::Duration;
use herald_core::domain::{CategorySettings, DeliveryId, Preferences};
use herald_core::ports::{CapWindow, PreferenceStore, PreferencesWrite, StoreResult, UserStore};
use herald_core::time::{format_time, parse_time};

fn category_pk(app: &str, name: &str) -> String {
    format!("C#{app}#{name}")
}

fn cap_pk(window: &CapWindow) -> String {
    format!("F#{}#{}", window.app_id, window.key())
}

fn decode_category(item: &Item) -> StoreResult<CategorySettings> {
    let time = |name: &str| {
        parse_time(text(item, name)?)
            .ok_or_else(|| herald_core::ports::StoreError::Corrupt("category time".into()))
    };
    let mut settings: CategorySettings = serde_json::from_str(text(item, "body")?)?;
    settings.app_id = text(item, "app_id")?.to_owned();
    settings.created_at = time("created_at")?;
    settings.updated_at = time("updated_at")?;
    Ok(settings)
}

fn is_condition_failure(error: &UpdateItemError) -> bool {
    error.is_conditional_check_failed_exception()
}

#[async_trait]
impl PreferenceStore for DynamoStore {
    async fn put_preferences(
        &self,
        app_id: &str,
        user_id: &str,
        preferences: &Preferences,
        expected_revision: Option<u64>,
    ) -> StoreResult<PreferencesWrite> {
        let mut e = Expr::default();
        let revision = e.name("preferences_revision");
        let mut condition = format!("attribute_exists({})", e.name(PK));
        if let Some(expected) = expected_revision {
            condition = if expected == 0 {
                format!("{condition} AND attribute_not_exists({revision})")
            } else {
                format!("{condition} AND {revision} = {}", e.value(n(expected as i64)))
            };
        }
        let update = format!(
            "SET {} = {}, {revision} = if_not_exists({revision}, {}) + {}",
            e.name("preferences"),
            e.value(s(serde_json::to_string(preferences)?)),
            e.value(n(0)),
            e.value(n(1)),
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(app_id, user_id))))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let revision = output
                    .attributes
                    .as_ref()
                    .and_then(|item| item.get("preferences_revision"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| backend("no revision after a preferences write"))?;
                Ok(PreferencesWrite::Saved { revision })
            }
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {
                // The condition names two things: tell which one failed.
                Ok(match self.user(app_id, user_id).await? {
                    None => PreferencesWrite::NoUser,
                    Some(_) => PreferencesWrite::Conflict,
                })
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn put_category(&self, settings: &CategorySettings) -> StoreResult<bool> {
        let attributes = vec![
            ("body", s(serde_json::to_string(settings)?)),
            ("app_id", s(&settings.app_id)),
            ("updated_at", s(format_time(settings.updated_at))),
            (GSI1PK, s(format!("CATEGORIES#{}", settings.app_id))),
            (GSI1SK, s(&settings.name)),
        ];
        self.upsert_record(
            category_pk(&settings.app_id, &settings.name),
            attributes,
            settings.created_at,
        )
        .await
    }

    async fn category(&self, app_id: &str, name: &str) -> StoreResult<Option<CategorySettings>> {
        self.get(category_pk(app_id, name)).await?.as_ref().map(decode_category).transpose()
    }

    async fn list_categories(&self, app_id: &str) -> StoreResult<Vec<CategorySettings>> {
        let mut e = Expr::default();
        let condition =
            format!("{} = {}", e.name(GSI1PK), e.value(s(format!("CATEGORIES#{app_id}"))));
        let items = self.query(Some("GSI1"), &condition, None, &e, true, None).await?;
        items.iter().map(decode_category).collect()
    }

    async fn delete_category(&self, app_id: &str, name: &str) -> StoreResult<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(category_pk(app_id, name))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn take_cap_slot(
        &self,
        window: &CapWindow,
        delivery: &DeliveryId,
        limit: u32,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let ids = e.name("ids");
        let id = e.value(s(delivery.to_string()));
        let condition = format!(
            "attribute_not_exists({ids}) OR size({ids}) < {} OR contains({ids}, {id})",
            e.value(n(i64::from(limit)))
        );
        // The counter outlives its window by a day, then TTL removes it.
        let expires = window.period.window_end(window.start) + Duration::days(1);
        let update = format!(
            "ADD {ids} {} SET {} = {}",
            e.value(AttributeValue::Ss(vec![delivery.to_string()])),
            e.name(TTL),
            e.value(ttl(expires)),
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(cap_pk(window))))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }
}
