//! `IntegrationStore` on DynamoDB: one item per app (`INTEGRATIONS#{app}`) holding its
//! integrations as JSON, replaced with a condition on its revision. A send reads it
//! with one GetItem; the secrets inside are only references to SSM parameters.

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::{Item, PK, number, text};
use super::store::TxError;
use async_trait::async_trait;
use herald_core::integrations::{Integration, IntegrationSet};
use herald_core::ports::{IntegrationStore, StoreResult};

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
        match self.commit(vec![self.put(item, Some((&condition, e)))?]).await {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(TxError::Store(e)) => Err(e),
        }
    }
}
