//! An app's list of notifications: the notification items themselves, kept in
//! `LIST_SHARDS` partitions of the table per app tag and read back newest first by
//! merging them. No index: listing costs no write.
//!
//! A notification's partition comes from its id alone (`NotificationId::for_app`): the
//! app's tag and a shard from the random part's low bits, so a read by id needs nothing
//! else. One DynamoDB partition takes about 1,000 write units a second, and ids that
//! grow with time keep DynamoDB from splitting a busy partition by key range, so one
//! partition per app would hold an app to about 1,000 notifications a second. Apps
//! that share a tag share partitions; each read keeps its own app's items.

use super::expr::{Expr, s};
use super::items::{Item, LIST_PK_PREFIX, NOTIFICATION_SK_PREFIX, PK, SK, decode_notification};
use super::{DynamoStore, sdk_error};
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::domain::{Notification, NotificationId, app_tag};
use herald_core::ports::StoreResult;
use std::collections::{HashMap, VecDeque};

/// 16 partitions: about 16,000 notifications a second for one app, for 16 small
/// queries per page listed.
const LIST_SHARDS: u128 = 16;

/// Items taken per round of merging, and read at most per query.
const ROUND: usize = 100;

/// The partition that holds notification `id`.
pub(super) fn notification_partition(id: &NotificationId) -> String {
    shard_partition(id.app_tag(), id.ulid().random() % LIST_SHARDS)
}

fn shard_partition(tag: u16, shard: u128) -> String {
    format!("{LIST_PK_PREFIX}{tag:04x}#{shard}")
}

/// What to list: an app, optionally a condition on the sort key (`N#{id}`) whose names
/// and values `e` holds, and how many to find.
pub(super) struct ListQuery<'a> {
    pub app: &'a str,
    pub id_condition: Option<String>,
    pub e: Expr,
    pub limit: usize,
    /// Whether `keep` may drop items (then reading is bounded by the read budget).
    pub filtered: bool,
}

/// One shard's items read and not yet taken, and where its query goes on.
struct Shard {
    partition: String,
    items: VecDeque<Item>,
    next: Option<HashMap<String, AttributeValue>>,
    exhausted: bool,
}

impl Shard {
    fn newest(&self) -> Option<&str> {
        self.items.front().map(sort_key)
    }

    /// Nothing held but more to read: nothing older may be taken from other shards
    /// until it is read.
    fn must_read(&self) -> bool {
        self.items.is_empty() && !self.exhausted
    }
}

/// `N#{id}`: ids of one app sort as their sort keys do.
fn sort_key(item: &Item) -> &str {
    item.get(SK).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

impl DynamoStore {
    /// A newest-first page of an app's notifications that pass `keep`, merged by id
    /// from every shard of the list; a call takes at most `list_read_budget` items, so
    /// a filter that matches little costs a bounded read. Returns what matched and,
    /// when it stopped early, the last id it took (every one not taken is older).
    pub(super) async fn list_app(
        &self,
        query: ListQuery<'_>,
        keep: impl Fn(&Notification) -> bool,
    ) -> StoreResult<(Vec<Notification>, Option<String>)> {
        let tag = app_tag(query.app);
        let mut shards: Vec<Shard> = (0..LIST_SHARDS)
            .map(|shard| Shard {
                partition: shard_partition(tag, shard),
                items: VecDeque::new(),
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
            let page = wanted.clamp(1, ROUND);
            // A shard holds about 1/16 of a page; reading twice that spares most re-reads.
            let per_shard = (page * 2 / LIST_SHARDS as usize).clamp(2, ROUND);
            let reads = shards
                .iter_mut()
                .filter(|shard| shard.must_read())
                .map(|shard| self.read_shard(shard, &query, per_shard));
            futures::future::try_join_all(reads).await?;
            let mut taking = Vec::new();
            while taking.len() < page && !shards.iter().any(Shard::must_read) {
                let Some(newest) = shards
                    .iter_mut()
                    .filter(|shard| shard.newest().is_some())
                    .max_by(|a, b| a.newest().cmp(&b.newest()))
                else {
                    break;
                };
                taking.extend(newest.items.pop_front());
            }
            taken += taking.len();
            let last = taking
                .last()
                .map(|item| sort_key(item).trim_start_matches(NOTIFICATION_SK_PREFIX).to_owned());
            let batch = taking.iter().map(decode_notification).collect::<StoreResult<Vec<_>>>()?;
            found.extend(batch.into_iter().filter(|n| keep(n)));
            if found.len() >= query.limit {
                found.truncate(query.limit);
                return Ok((found, None));
            }
            if shards.iter().all(|shard| shard.exhausted && shard.items.is_empty()) {
                return Ok((found, None));
            }
            if taken >= self.list_read_budget {
                return Ok((found, last));
            }
        }
    }

    /// Reads the next `limit` items of one shard, newest first, keeping `query.app`'s
    /// (the shard is its tag's, which another app may share).
    async fn read_shard(
        &self,
        shard: &mut Shard,
        query: &ListQuery<'_>,
        limit: usize,
    ) -> StoreResult<()> {
        let mut e = query.e.clone();
        let partition = format!("{} = {}", e.name(PK), e.value(s(&shard.partition)));
        let condition = match &query.id_condition {
            Some(ids) => format!("{partition} AND {ids}"),
            None => partition,
        };
        let same_app = format!("{} = {}", e.name("app_id"), e.value(s(query.app)));
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(condition)
            .filter_expression(same_app)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(shard.next.take())
            .send()
            .await
            .map_err(sdk_error)?;
        shard.items.extend(output.items.unwrap_or_default());
        shard.next = output.last_evaluated_key;
        shard.exhausted = shard.next.is_none();
        Ok(())
    }
}
