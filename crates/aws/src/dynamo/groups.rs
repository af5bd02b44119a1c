//! `GroupStore` on DynamoDB: a group and its memberships share a partition
//! (`G#{app}#{id}`: the group at `#`, each member at `M#{user}`). GSI1 lists an app's
//! groups (`GROUPS#{app}`) and a user's groups (`MEMBER#{app}#{user}`).

use super::expr::{Expr, s};
use super::items::{GSI1PK, GSI1SK, Item, PK, SK, text};
use super::{DynamoStore, sdk_error};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use futures::{StreamExt, TryStreamExt};
use herald_core::domain::Group;
use herald_core::ports::{GroupStore, StoreResult};
use herald_core::time::{format_time, parse_time};
use std::collections::HashMap;

/// Membership writes in flight at once.
const PARALLEL: usize = 16;

fn group_pk(app: &str, id: &str) -> String {
    format!("G#{app}#{id}")
}

fn decode_group(item: &Item) -> StoreResult<Group> {
    let time = |name: &str| {
        parse_time(text(item, name)?)
            .ok_or_else(|| herald_core::ports::StoreError::Corrupt("group time".into()))
    };
    Ok(Group {
        id: text(item, "group_id")?.to_owned(),
        app_id: text(item, "app_id")?.to_owned(),
        name: text(item, "name")?.to_owned(),
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

impl DynamoStore {
    async fn add_member(&self, app: &str, group: &str, user: &str) -> StoreResult<bool> {
        let item = HashMap::from([
            (PK.to_owned(), s(group_pk(app, group))),
            (SK.to_owned(), s(format!("M#{user}"))),
            ("user_id".to_owned(), s(user)),
            (GSI1PK.to_owned(), s(format!("MEMBER#{app}#{user}"))),
            (GSI1SK.to_owned(), s(group)),
        ]);
        let mut e = Expr::default();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({})", e.name(PK)))
            .set_expression_attribute_names(e.names())
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

    async fn remove_member(&self, app: &str, group: &str, user: &str) -> StoreResult<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(group_pk(app, group)))
            .key(SK, s(format!("M#{user}")))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }
}

#[async_trait]
impl GroupStore for DynamoStore {
    async fn put_group(&self, group: &Group) -> StoreResult<bool> {
        let attributes = vec![
            ("name", s(&group.name)),
            ("group_id", s(&group.id)),
            ("app_id", s(&group.app_id)),
            ("updated_at", s(format_time(group.updated_at))),
            (GSI1PK, s(format!("GROUPS#{}", group.app_id))),
            (GSI1SK, s(&group.id)),
        ];
        self.upsert_record(group_pk(&group.app_id, &group.id), attributes, group.created_at).await
    }

    async fn group(&self, app_id: &str, id: &str) -> StoreResult<Option<Group>> {
        self.get(group_pk(app_id, id)).await?.as_ref().map(decode_group).transpose()
    }

    async fn list_groups(&self, app_id: &str) -> StoreResult<Vec<Group>> {
        let mut e = Expr::default();
        let condition = format!("{} = {}", e.name(GSI1PK), e.value(s(format!("GROUPS#{app_id}"))));
        let items = self.query(Some("GSI1"), &condition, None, &e, true, None).await?;
        items.iter().map(decode_group).collect()
    }

    async fn delete_group(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        self.delete_partition(group_pk(app_id, id)).await
    }

    async fn add_members(&self, app_id: &str, group: &str, users: &[String]) -> StoreResult<usize> {
        // Owned ids: the futures borrow nothing but `self`.
        let (app, group) = (app_id.to_owned(), group.to_owned());
        let added: Vec<bool> = futures::stream::iter(users.to_vec())
            .map(|user| {
                let (app, group) = (app.clone(), group.clone());
                async move { self.add_member(&app, &group, &user).await }
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        Ok(added.into_iter().filter(|a| *a).count())
    }

    async fn remove_members(
        &self,
        app_id: &str,
        group: &str,
        users: &[String],
    ) -> StoreResult<usize> {
        let (app, group) = (app_id.to_owned(), group.to_owned());
        let removed: Vec<bool> = futures::stream::iter(users.to_vec())
            .map(|user| {
                let (app, group) = (app.clone(), group.clone());
                async move { self.remove_member(&app, &group, &user).await }
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        Ok(removed.into_iter().filter(|r| *r).count())
    }

    async fn members(
        &self,
        app_id: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut e = Expr::default();
        let lower = format!("M#{}", after.unwrap_or(""));
        let condition = format!(
            "{} = {} AND {} > {}",
            e.name(PK),
            e.value(s(group_pk(app_id, group))),
            e.name(SK),
            e.value(s(lower))
        );
        let items = self.query(None, &condition, None, &e, true, Some(limit)).await?;
        items.iter().map(|item| Ok(text(item, "user_id")?.to_owned())).collect()
    }

    async fn groups_of(&self, app_id: &str, user: &str) -> StoreResult<Vec<String>> {
        let mut e = Expr::default();
        let condition =
            format!("{} = {}", e.name(GSI1PK), e.value(s(format!("MEMBER#{app_id}#{user}"))));
        let items = self.query(Some("GSI1"), &condition, None, &e, true, None).await?;
        items.iter().map(|item| Ok(text(item, GSI1SK)?.to_owned())).collect()
    }
}
