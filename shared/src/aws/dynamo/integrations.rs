//! `IntegrationStore` on DynamoDB: one item per app (`INTEGRATIONS#{app}`) holding its
//! integrations as JSON, replaced with a condition on its revision. A send reads it
//! with one GetItem; the secrets inside are only references to SSM parameters.

use super::expr::{Expr, n, s};
use super::items::{Item, PK, number, text};
use super::{DynamoStore, sdk_error};
use crate::integrations::{Integration, IntegrationSet};
use crate::ports::{IntegrationStore, StoreResult};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;

fn set_pk(app: &str) -> String {
    format!("INTEGRATIONS#{app}")
}

#[async_trait]
impl IntegrationStore for DynamoStore {
    async fn integrations(&self, app_id: &str) -> StoreResult<IntegrationSet> {
        let Some(item) = self.get(set_pk(app_id)).await? else {
            return Ok(IntegrationSet::default());
        };
        let revision = u64::try_from(number(&item, "revision")).unwrap_or(0);
        Ok(IntegrationSet { items: serde_json::from_str(text(&item, "body")?)?, revision })
    }

    async fn replace_integrations(
        &self,
        app_id: &str,
        items: &[Integration],
        expected: u64,
    ) -> StoreResult<bool> {
        let mut item: Item = super::items::key(set_pk(app_id));
        item.insert("body".into(), s(serde_json::to_string(items)?));
        item.insert("revision".into(), n(i64::try_from(expected + 1).unwrap_or(i64::MAX)));
        let mut e = Expr::default();
        let condition = if expected == 0 {
            format!("attribute_not_exists({})", e.name(PK))
        } else {
            let expected = n(i64::try_from(expected).unwrap_or(i64::MAX));
            format!("{} = {}", e.name("revision"), e.value(expected))
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }
}
