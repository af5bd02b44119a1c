//! An app's list of notifications: GSI2 (keys only), spread over `LIST_SHARDS`
//! partitions and read back newest first by merging them.
//!
//! One DynamoDB partition takes about 1,000 write units a second, and ids that grow
//! with time keep DynamoDB from splitting a busy partition by key range, so one index
//! partition per app would hold an app to about 1,000 notifications a second. A
//! notification's shard comes from the random part of its id.

use super::expr::{Expr, s};
use super::items::{GSI2PK, GSI2SK, Item, PK, decode_notification, key, text};
use super::{BATCH_GET, DynamoStore, sdk_error};
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::domain::{Notification, NotificationId};
use herald_core::ports::StoreResult;
use std::collections::{HashMap, VecDeque};

/// 16 partitions: about 16,000 notifications a second for one app, for 16 small
/// queries per page listed.
const LIST_SHARDS: u128 = 16;

/// The index partition of `id` in `app`'s list.
pub(super) fn list_partition(app: &str, id: &NotificationId) -> String {
    shard_partition(app, id.ulid().random() % LIST_SHARDS)
}

fn shard_partition(app: &str, shard: u128) -> String {
    format!("APP#{app}#{shard}")
}

/// What to list: an app, optionally a condition on the id (the sort key) whose names
/// and values `e` holds, and how many to find.
pub(super) struct ListQuery<'a> {
    pub app: &'a str,
    pub id_condition: Option<String>,
    pub e: Expr,
    pub limit: usize,
    /// Whether `keep` may drop items (then reading is bounded by the read budget).
    pub filtered: bool,
}

/// One shard's keys read and not yet taken, and where its query goes on.
struct Shard {
    partition: String,
    keys: VecDeque<Item>,
    next: Option<HashMap<String, AttributeValue>>,
    exhausted: bool,
}

impl Shard {
    fn newest(&self) -> Option<&str> {
        self.keys.front().map(id_of)
    }

    /// Nothing held but more to read: nothing older may be taken from other shards
    /// until it is read.
    fn must_read(&self) -> bool {
        self.keys.is_empty() && !self.exhausted
    }
}

fn id_of(index_item: &Item) -> &str {
    index_item.get(GSI2SK).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

impl DynamoStore {
    /// A newest-first page of an app's notifications that pass `keep`. Keys come from
    /// every shard of the list, merged by id, then the items themselves; a call takes at
    /// most `list_read_budget` keys, so a filter that matches little costs a bounded
    /// read. Returns what matched and, when it stopped early, the last id it took
    /// (every key not taken is older).
    pub(super) async fn list_app(
        &self,
        query: ListQuery<'_>,
        keep: impl Fn(&Notification) -> bool,
    ) -> StoreResult<(Vec<Notification>, Option<String>)> {
        let mut shards: Vec<Shard> = (0..LIST_SHARDS)
            .map(|shard| Shard {
                partition: shard_partition(query.app, shard),
                keys: VecDeque::new(),
                next: None,
                exhausted: false,
            })
            .collect();
        let (mut found, mut taken) = (Vec::new(), 0usize);
        loop {
            let wanted = if query.filtered {
                self.list_read_budget - taken
            } else {
                query.limit - found.len()
            };
            let page = wanted.clamp(1, BATCH_GET);
            // A shard holds about 1/16 of a page; reading twice that spares most re-reads.
            let per_shard = (page * 2 / LIST_SHARDS as usize).clamp(2, BATCH_GET);
            let reads = shards
                .iter_mut()
                .filter(|shard| shard.must_read())
                .map(|shard| self.read_shard(shard, &query, per_shard));
            futures::future::try_join_all(reads).await?;
            let mut keys = Vec::new();
            while keys.len() < page && !shards.iter().any(Shard::must_read) {
                let Some(newest) = shards
                    .iter_mut()
                    .filter(|shard| shard.newest().is_some())
                    .max_by(|a, b| a.newest().cmp(&b.newest()))
                else {
                    break;
                };
                keys.extend(newest.keys.pop_front());
            }
            taken += keys.len();
            let last = keys.last().map(|k| id_of(k).to_owned());
            let items = keys.iter().map(|k| key(text(k, PK).unwrap_or_default().to_owned()));
            let mut batch = self
                .batch_get(items.collect())
                .await?
                .iter()
                .map(decode_notification)
                .collect::<StoreResult<Vec<_>>>()?;
            batch.sort_by(|a, b| b.id.cmp(&a.id));
            found.extend(batch.into_iter().filter(|n| keep(n)));
            if found.len() >= query.limit {
                found.truncate(query.limit);
                return Ok((found, None));
            }
            if shards.iter().all(|shard| shard.exhausted && shard.keys.is_empty()) {
                return Ok((found, None));
            }
            if taken >= self.list_read_budget {
                return Ok((found, last));
            }
        }
    }

    /// Reads the next `limit` keys of one shard, newest first.
    async fn read_shard(
        &self,
        shard: &mut Shard,
        query: &ListQuery<'_>,
        limit: usize,
    ) -> StoreResult<()> {
        let mut e = query.e.clone();
        let partition = format!("{} = {}", e.name(GSI2PK), e.value(s(&shard.partition)));
        let condition = match &query.id_condition {
            Some(ids) => format!("{partition} AND {ids}"),
            None => partition,
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("GSI2")
            .key_condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(shard.next.take())
            .send()
            .await
            .map_err(sdk_error)?;
        shard.keys.extend(output.items.unwrap_or_default());
        shard.next = output.last_evaluated_key;
        shard.exhausted = shard.next.is_none();
        Ok(())
    }
}
