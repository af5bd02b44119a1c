//! The `Store` port on DynamoDB.

/// Items a filtered list reads at most per call, so a filter that matches nothing
/// costs a bounded read; the caller pages on with `next_cursor`.
pub(super) const LIST_READ_BUDGET: usize = 1000;

use super::app_list::ListQuery;
use super::expr::{Expr, n, s};
use super::inline::{INLINE, KEEPS_INLINE, VERSION, keeps_inline, version};
use super::items::*;
use super::outbox;
use super::planned::{MAX_DERIVED_PLAN, PLANNED, planned_item, planned_items, with_planned};
use super::{
    BATCH_GET, DailyCounters, DynamoStore, PARALLEL_BATCHES, UNPROCESSED_ROUNDS, backend, built,
    sdk_error,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use herald_core::auth::ApiKeyRecord;
use herald_core::domain::{
    Delivery, DeliveryId, DeliveryStatus, Notification, NotificationId, NotificationStatus,
    TimelineEvent, app_tag,
};
use herald_core::ports::{
    AcceptOutcome, Acceptance, DeliveryOutcome, Detail, IDEMPOTENCY_WINDOW, IdempotencyClaim, Job,
    KeyStore, NotificationFilter, NotificationList, SettingStore, Store, StoreResult,
};
use herald_core::time::format_time;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// How often a transaction that lost a race (`TransactionConflict`) or whose
/// optimistic read went stale is tried again before giving up.
pub const MAX_TRANSACTION_RETRIES: u32 = 8;
/// Conditional writes in flight at once when a transaction cannot be used.
const PARALLEL_WRITES: usize = 16;

/// How fresh a read must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Consistency {
    Strong,
    /// Eventually consistent: half the read units; may miss a write of the last
    /// second. Only for reads whose staleness the conditional write after them catches,
    /// or of attributes never changed after the item was written.
    Eventual,
}

/// A delivery's item and where it is kept, with its notification's item, as read.
type DeliveryAndNotification = (Option<(Item, Kept)>, Option<Item>);

/// Where a delivery's item is kept.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kept {
    /// An item of its own.
    Item,
    /// Planned at intake and derived from its notification until its first change
    /// (planned.rs).
    Derived,
    /// Its notification's one delivery, its changes kept in the notification's item
    /// (inline.rs).
    Inline,
}

/// Why a transaction did not commit.
pub(super) enum TxError {
    /// One or more conditions failed; `true` marks the items whose condition failed.
    ConditionFailed(Vec<bool>),
    Store(herald_core::ports::StoreError),
}

impl From<herald_core::ports::StoreError> for TxError {
    fn from(e: herald_core::ports::StoreError) -> Self {
        TxError::Store(e)
    }
}

fn tx_store_error(e: TxError) -> herald_core::ports::StoreError {
    match e {
        TxError::Store(e) => e,
        TxError::ConditionFailed(_) => backend("a transaction condition failed unexpectedly"),
    }
}

/// Whether a single conditional write failed its condition (`Ok(true)`) or succeeded.
fn condition_failed<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    is_condition_check: fn(&E) -> bool,
) -> Result<bool, TxError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(false),
        Err(e) if e.as_service_error().is_some_and(is_condition_check) => Ok(true),
        Err(e) => Err(TxError::Store(sdk_error(e))),
    }
}

/// The `SET` clause part that appends one event to an item's own timeline.
fn append_event(
    e: &mut Expr,
    delivery: Option<&DeliveryId>,
    event: &str,
    detail: Option<&str>,
) -> String {
    let events = e.name(EVENTS);
    let value = e.value(AttributeValue::L(vec![event_value(delivery, event, detail)]));
    let empty = e.value(AttributeValue::L(Vec::new()));
    format!("{events} = list_append(if_not_exists({events}, {empty}), {value})")
}

/// `pending = …` and `reached = …` joined by `separator` (`", "` to set them,
/// `" AND "` to require them).
fn counts(e: &mut Expr, pending: i64, reached: i64, separator: &str) -> String {
    format!(
        "{} = {}{separator}{} = {}",
        e.name("pending"),
        e.value(n(pending)),
        e.name("reached"),
        e.value(n(reached))
    )
}

/// A notification's counters for deliveries in `statuses`: how many are pending (not
/// settled) and how many reached their recipient.
fn pending_and_reached<'a>(
    statuses: impl Iterator<Item = &'a DeliveryStatus> + Clone,
) -> (i64, i64) {
    let pending = statuses.clone().filter(|s| !s.is_settled()).count();
    let reached = statuses.filter(|s| s.reached_recipient()).count();
    (pending as i64, reached as i64)
}

/// A settled notification is `sent` if any delivery reached its recipient.
fn final_status(reached: i64) -> (NotificationStatus, Option<&'static str>) {
    if reached > 0 {
        (NotificationStatus::Sent, None)
    } else {
        (NotificationStatus::Failed, Some("no delivery reached its recipient"))
    }
}

/// What a delivery's status change adds to its notification's `pending` and `reached`.
fn count_deltas(from: DeliveryStatus, next: DeliveryStatus) -> (i64, i64) {
    let pending = -i64::from(!from.is_settled() && next.is_settled());
    let reached = i64::from(next.reached_recipient()) - i64::from(from.reached_recipient());
    (pending, reached)
}

/// A delivery's whole `item` after `changes` (`None` removes the attribute) and the
/// timeline `event` they append.
fn changed(
    mut item: Item,
    changes: &[(&str, Option<AttributeValue>)],
    event: AttributeValue,
) -> Item {
    for (name, value) in changes {
        match value {
            Some(value) => item.insert((*name).to_owned(), value.clone()),
            None => item.remove(*name),
        };
    }
    match item.get_mut(EVENTS) {
        Some(AttributeValue::L(events)) => events.push(event),
        _ => {
            item.insert(EVENTS.to_owned(), AttributeValue::L(vec![event]));
        }
    }
    item
}

/// A list's `IN (...)` operand for the given statuses.
fn status_operand<S: std::fmt::Display>(e: &mut Expr, statuses: &[S]) -> String {
    statuses.iter().map(|st| e.value(s(st.to_string()))).collect::<Vec<_>>().join(", ")
}

impl DynamoStore {
    fn expires(&self) -> DateTime<Utc> {
        Utc::now() + self.retention
    }

    /// Whether a notification (its item) with `deliveries` keeps its counts apart: each
    /// delivery's count is an update billed on the whole item, so a large item with
    /// many deliveries pays its size again and again. Apart costs one more put and one
    /// more write at the settle, so it is chosen when that is cheaper.
    fn counts_apart(&self, notification: &Item, deliveries: usize) -> bool {
        if deliveries < 2 {
            return false;
        }
        let units = item_size(notification).div_ceil(1024).max(1);
        self.always_counts_apart || deliveries * units > 1 + deliveries + units
    }

    /// Where the counts of the notification whose item is `item` live.
    fn counts_location(item: &Item, id: &NotificationId) -> Item {
        if item.contains_key(COUNTS_APART) { counts_key(id) } else { notification_key(id) }
    }

    /// The notification's `pending` and `reached` counts, from wherever they live.
    async fn stored_counts(&self, id: &NotificationId, item: &Item) -> StoreResult<(i64, i64)> {
        let counts = if item.contains_key(COUNTS_APART) {
            self.get_key(counts_key(id)).await?.unwrap_or_default()
        } else {
            item.clone()
        };
        Ok((number(&counts, "pending"), number(&counts, "reached")))
    }

    /// Writes a notification's counts item, unless one is there already (a repeated
    /// dispatch keeps the counts of the run that queued the sends).
    async fn put_counts(&self, id: &NotificationId, pending: i64, reached: i64) -> StoreResult<()> {
        let mut item = counts_key(id);
        item.extend([
            ("pending".to_owned(), n(pending)),
            ("reached".to_owned(), n(reached)),
            (TTL.to_owned(), ttl(self.expires())),
        ]);
        let mut e = Expr::default();
        let condition = format!("attribute_not_exists({})", e.name(PK));
        match self.commit(vec![self.put(item, Some((&condition, e)))?]).await {
            Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    pub(super) fn put(
        &self,
        item: Item,
        condition: Option<(&str, Expr)>,
    ) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some((condition, e)) = condition {
            put = put
                .condition_expression(condition)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values());
        }
        Ok(TransactWriteItem::builder().put(built(put.build())?).build())
    }

    pub(super) fn update(
        &self,
        pk: String,
        update: &str,
        condition: Option<&str>,
        e: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        self.update_key(key(pk), update, condition, e)
    }

    pub(super) fn update_key(
        &self,
        key: Item,
        update: &str,
        condition: Option<&str>,
        e: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }

    /// Runs a transaction, retrying the races DynamoDB reports as conflicts.
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), TxError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
                error.as_service_error()
            {
                let codes: Vec<&str> = canceled
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or(""))
                    .collect();
                if codes.contains(&"ConditionalCheckFailed") {
                    return Err(TxError::ConditionFailed(
                        codes.iter().map(|c| *c == "ConditionalCheckFailed").collect(),
                    ));
                }
                if codes.iter().any(|c| *c == "TransactionConflict" || *c == "ThrottlingError")
                    && attempt < MAX_TRANSACTION_RETRIES
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 << attempt.min(6))).await;
                    continue;
                }
            }
            return Err(TxError::Store(sdk_error(error)));
        }
    }

    /// Writes `writes` atomically: a transaction for several items; for one item the
    /// plain conditional write, which costs half as much.
    pub(super) async fn commit(&self, mut writes: Vec<TransactWriteItem>) -> Result<(), TxError> {
        if writes.len() != 1 {
            return self.transact(writes).await;
        }
        let write = writes.pop().expect("one write");
        let failed = if let Some(put) = write.put {
            let result = self
                .client
                .put_item()
                .table_name(put.table_name)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send()
                .await;
            condition_failed(result, PutItemError::is_conditional_check_failed_exception)?
        } else if let Some(update) = write.update {
            let result = self
                .client
                .update_item()
                .table_name(update.table_name)
                .set_key(Some(update.key))
                .update_expression(update.update_expression)
                .set_condition_expression(update.condition_expression)
                .set_expression_attribute_names(update.expression_attribute_names)
                .set_expression_attribute_values(update.expression_attribute_values)
                .send()
                .await;
            condition_failed(result, UpdateItemError::is_conditional_check_failed_exception)?
        } else {
            return self.transact(vec![write]).await;
        };
        if failed { Err(TxError::ConditionFailed(vec![true])) } else { Ok(()) }
    }

    pub(super) async fn get(&self, pk: String) -> StoreResult<Option<Item>> {
        self.get_key(key(pk)).await
    }

    pub(super) async fn get_key(&self, key: Item) -> StoreResult<Option<Item>> {
        self.read_key(key, Consistency::Strong).await
    }

    /// `get_key`, eventually consistent where `consistency` allows it: half the read
    /// units, for reads whose staleness a condition on the write that follows catches.
    async fn read_key(&self, key: Item, consistency: Consistency) -> StoreResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(consistency == Consistency::Strong)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.item)
    }

    /// The items under `keys` that exist (in no particular order), with consistent
    /// reads, 100 keys a request and a few requests in flight.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let chunks: Vec<Vec<Item>> = keys.chunks(BATCH_GET).map(<[Item]>::to_vec).collect();
        let found: Vec<Vec<Item>> = futures::stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(chunk))
            .buffered(PARALLEL_BATCHES)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(&self, mut keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut items = Vec::with_capacity(keys.len());
        for round in 0..UNPROCESSED_ROUNDS {
            if keys.is_empty() {
                return Ok(items);
            }
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(25 << round)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(backend)?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(sdk_error)?;
            items.extend(
                output.responses.unwrap_or_default().remove(&self.table).unwrap_or_default(),
            );
            keys = output
                .unprocessed_keys
                .unwrap_or_default()
                .remove(&self.table)
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if keys.is_empty() {
            Ok(items)
        } else {
            Err(backend(format!("{} reads stayed unprocessed", keys.len())))
        }
    }

    /// Queries a partition (of the table, or of an index) page by page until `limit`
    /// items pass the filter or the partition is exhausted.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn query(
        &self,
        index: Option<&str>,
        key_condition: &str,
        filter: Option<&str>,
        e: &Expr,
        forward: bool,
        limit: Option<usize>,
    ) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = limit.map(|l| (l - found.len()).clamp(1, 1000) as i32);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(key_condition)
                .set_filter_expression(filter.map(str::to_owned))
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .scan_index_forward(forward)
                // Index reads are eventually consistent; table reads need not be.
                .consistent_read(index.is_none())
                .set_limit(if filter.is_some() { None } else { page })
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            found.extend(output.items.unwrap_or_default());
            if let Some(limit) = limit
                && found.len() >= limit
            {
                found.truncate(limit);
                return Ok(found);
            }
            match output.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(found),
            }
        }
    }

    /// Creates or updates the single item `pk`: sets `attributes`, keeps `created_at`
    /// if the item exists; true if it was created (there was no old image).
    pub(super) async fn upsert_record(
        &self,
        pk: String,
        attributes: Vec<(&str, AttributeValue)>,
        created_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let mut sets: Vec<String> = attributes
            .into_iter()
            .map(|(name, value)| format!("{} = {}", e.name(name), e.value(value)))
            .collect();
        let created = e.name("created_at");
        sets.push(format!(
            "{created} = if_not_exists({created}, {})",
            e.value(s(format_time(created_at)))
        ));
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .update_expression(format!("SET {}", sets.join(", ")))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.attributes.is_none_or(|old| old.is_empty()))
    }

    /// Deletes every item of partition `pk` (a record and what belongs to it); true if
    /// its `#` item existed.
    pub(super) async fn delete_partition(&self, pk: String) -> StoreResult<bool> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        let mut e = Expr::default();
        let condition = format!("{} = {}", e.name(PK), e.value(s(pk)));
        let items = self.query(None, &condition, None, &e, true, None).await?;
        let existed = items
            .iter()
            .any(|item| item.get(SK).and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == SINGLE));
        for chunk in items.chunks(25) {
            let requests = chunk
                .iter()
                .map(|item| {
                    let key: Item = item
                        .iter()
                        .filter(|(name, _)| *name == PK || *name == SK)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let delete = built(DeleteRequest::builder().set_key(Some(key)).build())?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut pending = std::collections::HashMap::from([(self.table.clone(), requests)]);
            // Unprocessed items are retried a bounded number of times.
            for _ in 0..5 {
                let output = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(sdk_error)?;
                pending = output.unprocessed_items.unwrap_or_default();
                if pending.values().all(Vec::is_empty) {
                    break;
                }
            }
        }
        Ok(existed)
    }

    async fn notification_item(&self, id: &NotificationId) -> StoreResult<Option<Item>> {
        self.get_key(notification_key(id)).await
    }

    /// A delivery's row plus its timeline event, both only if the delivery is new;
    /// with `count_pending`, the notification's pending/reached counters too.
    fn delivery_writes(
        &self,
        d: &Delivery,
        app: &str,
        count_on: Option<&Item>,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let mut not_exists = Expr::default();
        let condition = format!("attribute_not_exists({})", not_exists.name(PK));
        let mut writes =
            vec![self.put(delivery_item(d, app, self.expires())?, Some((&condition, not_exists)))?];
        if let Some(counts) = count_on {
            let mut e = Expr::default();
            let update = format!(
                "ADD {} {}, {} {}",
                e.name("pending"),
                e.value(n(i64::from(!d.status.is_settled()))),
                e.name("reached"),
                e.value(n(i64::from(d.status.reached_recipient())))
            );
            let condition = format!("attribute_exists({})", e.name(PK));
            writes.push(self.update_key(counts.clone(), &update, Some(&condition), &e)?);
        }
        Ok(writes)
    }

    /// Inserts the deliveries that do not exist yet, each with one conditional write
    /// (with `count_pending`, a two-item transaction that also counts it on its
    /// notification), several in flight at once. Plain conditional writes cost half a
    /// transaction's units, and a repeat (a redelivered dispatch) just skips the
    /// deliveries already there.
    /// Writes the deliveries that do not exist yet; returns the ids of those that did
    /// (written by an earlier, interrupted run).
    async fn insert_new_deliveries(
        &self,
        deliveries: &[Delivery],
        app: &str,
        count_on: Option<&Item>,
    ) -> StoreResult<Vec<DeliveryId>> {
        // Owned writes per delivery: the futures borrow nothing but `self`.
        let writes = deliveries
            .iter()
            .map(|d| Ok((d.id.clone(), self.delivery_writes(d, app, count_on)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let existed = futures::stream::iter(writes)
            .map(|(id, writes)| async move {
                match self.commit(writes).await {
                    Ok(()) => Ok(None),
                    Err(TxError::ConditionFailed(_)) => Ok(Some(id)),
                    Err(TxError::Store(e)) => Err(e),
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect::<Vec<Option<DeliveryId>>>()
            .await?;
        Ok(existed.into_iter().flatten().collect())
    }

    /// The plan as stored: a delivery an earlier, interrupted run wrote keeps what that
    /// run decided (its row was not replaced), so its status counts and its send goes
    /// out only if it is queued, whatever this run's plan says (the user's preferences
    /// may have changed in between). Only rows that existed are read, in parallel.
    async fn reconcile_with_stored(
        &self,
        deliveries: &[Delivery],
        existed: &[DeliveryId],
        priority: herald_core::domain::Priority,
        outbox: &mut Vec<Job>,
    ) -> StoreResult<Vec<DeliveryStatus>> {
        let mut statuses: HashMap<String, DeliveryStatus> =
            deliveries.iter().map(|d| (d.id.to_string(), d.status)).collect();
        if existed.is_empty() {
            return Ok(statuses.into_values().collect());
        }
        // Owned ids: a closure returning a future that borrows its argument is not Send.
        let stored: Vec<Option<Delivery>> = futures::stream::iter(existed.to_vec())
            .map(|id| async move { self.delivery(&id).await })
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect()
            .await?;
        let mut queued: HashSet<String> = outbox.iter().map(|job| job.payload.clone()).collect();
        for stored in stored.into_iter().flatten() {
            let id = stored.id.to_string();
            if stored.status == DeliveryStatus::Queued {
                if queued.insert(id.clone()) {
                    outbox.push(herald_core::pipeline::delivery_job(&stored, priority, Utc::now()));
                }
            } else if queued.remove(&id) {
                outbox.retain(|job| job.payload != id);
            }
            statuses.insert(id, stored.status);
        }
        Ok(statuses.into_values().collect())
    }

    /// Moves a notification from one of `next`'s predecessors to `next`, with its
    /// timeline event, in one transaction. `extra` adds to the update (counters).
    async fn move_notification(
        &self,
        id: &NotificationId,
        next: NotificationStatus,
        detail: Option<&str>,
        require: Option<&str>,
        mut e: Expr,
        extra_set: &str,
    ) -> StoreResult<bool> {
        let status = e.name("status");
        let predecessors = status_operand(&mut e, &NotificationStatus::predecessors(next));
        let mut update = format!(
            "SET {status} = {}, {} = {}{extra_set}",
            e.value(s(next.as_str())),
            e.name("updated_at"),
            e.value(s(format_time(Utc::now())))
        );
        update.push_str(", ");
        update.push_str(&append_event(&mut e, None, next.as_str(), detail));
        let mut condition = format!("{status} IN ({predecessors})");
        if let Some(require) = require {
            condition.push_str(" AND ");
            condition.push_str(require);
        }
        let writes = vec![self.update_key(notification_key(id), &update, Some(&condition), &e)?];
        match self.commit(writes).await {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    /// Once a dispatched notification has no pending delivery, it is `sent` if any
    /// delivery reached its recipient and `failed` otherwise.
    async fn settle(&self, id: &NotificationId) -> StoreResult<bool> {
        let Some(item) = self.notification_item(id).await? else {
            return Ok(false);
        };
        if text(&item, "status")? != NotificationStatus::Dispatched.as_str() {
            return Ok(false);
        }
        let (pending, reached) = self.stored_counts(id, &item).await?;
        if pending > 0 {
            return Ok(false);
        }
        let (next, detail) = final_status(reached);
        let mut e = Expr::default();
        if item.contains_key(COUNTS_APART) {
            // Counted apart: the counts just read are the condition (no count moves
            // once nothing is pending), and the status's own condition stops a twin.
            return self.move_notification(id, next, detail, None, e, "").await;
        }
        let require = format!("{} <= {}", e.name("pending"), e.value(n(0)));
        self.move_notification(id, next, detail, Some(&require), e, "").await
    }

    /// Counts a delivery's change on its notification (`pending` and `reached`
    /// deltas) and settles the notification when no delivery is left pending: one
    /// write on the common paths, whether it was the last delivery or not. `read`: the
    /// notification's item if the caller has read it (eventually consistent is enough).
    async fn count_on_notification(
        &self,
        id: &NotificationId,
        pending: i64,
        reached: i64,
        read: Option<Item>,
    ) -> StoreResult<()> {
        if pending == 0 && reached == 0 {
            return Ok(());
        }
        // The counts read only choose the write: the settle below is conditional on
        // them, so a stale read costs a second write, never a wrong count. A miss is
        // read again strongly (a notification written within the last second).
        let notification = notification_key(id);
        // So is one still `accepted`: it may predate dispatch's move, which says where
        // the counts live.
        let accepted = |item: &Item| {
            text(item, "status").is_ok_and(|st| st == NotificationStatus::Accepted.as_str())
        };
        let read = match read {
            Some(item) => Some(item),
            None => self.read_key(notification.clone(), Consistency::Eventual).await?,
        };
        let item = match read {
            Some(item) if !accepted(&item) => item,
            _ => match self.get_key(notification).await? {
                Some(item) => item,
                None => return Ok(()),
            },
        };
        if accepted(&item) {
            // Its dispatch queued the sends and has not yet marked it `dispatched` with
            // its counts, which would overwrite this one. The send message comes back
            // and recounts from the deliveries (`recount_pending`) once it has.
            return Err(herald_core::ports::StoreError::Conflict(
                "the notification's dispatch has not finished; counted when the send comes back"
                    .into(),
            ));
        }
        let dispatched = text(&item, "status")? == NotificationStatus::Dispatched.as_str();
        if item.contains_key(COUNTS_APART) {
            return self.count_apart(id, pending, reached, dispatched).await;
        }
        let (stored_pending, stored_reached) = (number(&item, "pending"), number(&item, "reached"));
        if dispatched && pending < 0 && stored_pending + pending == 0 {
            // The last pending delivery: its counts and the final status in one write,
            // conditional on the counts read (else it raced, and adds below).
            let total = stored_reached + reached;
            let (next, detail) = final_status(total);
            let mut e = Expr::default();
            let require = counts(&mut e, stored_pending, stored_reached, " AND ");
            let counters = format!(", {}", counts(&mut e, 0, total, ", "));
            if self.move_notification(id, next, detail, Some(&require), e, &counters).await? {
                return Ok(());
            }
        }
        let Some(updated) = self.add_counts(notification_key(id), pending, reached).await? else {
            return Ok(());
        };
        let still_dispatched =
            text(&updated, "status").is_ok_and(|st| st == NotificationStatus::Dispatched.as_str());
        if still_dispatched && number(&updated, "pending") <= 0 {
            self.settle(id).await?;
        }
        Ok(())
    }

    /// `count_on_notification` for counts kept apart: one small update, and the settle
    /// of the notification's own item once nothing is left pending.
    async fn count_apart(
        &self,
        id: &NotificationId,
        pending: i64,
        reached: i64,
        dispatched: bool,
    ) -> StoreResult<()> {
        let Some(updated) = self.add_counts(counts_key(id), pending, reached).await? else {
            return Ok(());
        };
        if dispatched && number(&updated, "pending") <= 0 {
            self.settle(id).await?;
        }
        Ok(())
    }

    /// Adds to the counts of the item under `key`, if it exists; the item as updated.
    async fn add_counts(&self, key: Item, pending: i64, reached: i64) -> StoreResult<Option<Item>> {
        let mut e = Expr::default();
        let update = format!(
            "ADD {} {}, {} {}",
            e.name("pending"),
            e.value(n(pending)),
            e.name("reached"),
            e.value(n(reached))
        );
        let condition = format!("attribute_exists({})", e.name(PK));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// What an idempotency key already in its window says about a request with it.
    async fn earlier_claim(
        &self,
        app: &str,
        claim: &IdempotencyClaim,
    ) -> StoreResult<Option<AcceptOutcome>> {
        let Some(earlier) = self.get(idempotency_pk(app, &claim.key)).await? else {
            return Ok(None);
        };
        if text(&earlier, "created_at")? < format_time(Utc::now() - IDEMPOTENCY_WINDOW).as_str() {
            return Ok(None);
        }
        if text(&earlier, "body_hash")? != claim.body_hash {
            return Ok(Some(AcceptOutcome::KeyReused));
        }
        let id = NotificationId::parse(text(&earlier, "notification_id")?)
            .map_err(|_| herald_core::ports::StoreError::Corrupt("idempotency record".into()))?;
        Ok(Some(AcceptOutcome::Replayed(id)))
    }

    /// The notification's deliveries, those planned at intake and not written yet
    /// included (planned.rs).
    async fn delivery_items(&self, notification: &NotificationId) -> StoreResult<Vec<Item>> {
        Ok(self.partition(notification).await?.1)
    }

    /// A notification's item and its deliveries' (planned ones derived): the item and
    /// its deliveries' partition, read together, both strongly consistent.
    async fn partition(&self, id: &NotificationId) -> StoreResult<(Option<Item>, Vec<Item>)> {
        let mut e = Expr::default();
        let condition = format!("{} = {}", e.name(PK), e.value(s(deliveries_pk(id))));
        let (notification, partition) = futures::try_join!(
            self.get_key(notification_key(id)),
            self.query(None, &condition, None, &e, true, None)
        )?;
        let is_delivery = |item: &Item| {
            item.get(SK)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with(DELIVERY_SK_PREFIX))
        };
        let deliveries = partition.into_iter().filter(is_delivery).collect();
        let deliveries = with_planned(notification.as_ref(), deliveries)?;
        Ok((notification, deliveries))
    }

    /// Marks `record` (a new notification's item) as carrying its plan, when the plan
    /// is short and derives again to exactly `deliveries`; false if they must be
    /// written as items instead.
    fn derive_plan(&self, record: &mut Item, deliveries: &[Delivery]) -> StoreResult<bool> {
        if deliveries.len() > MAX_DERIVED_PLAN {
            return Ok(false);
        }
        record.insert(PLANNED.to_owned(), n(deliveries.len() as i64));
        let derived = planned_items(record)?;
        let same = derived.len() == deliveries.len()
            && derived.iter().zip(deliveries).all(|(item, d)| {
                item.get(SK).and_then(|v| v.as_s().ok()) == Some(&delivery_sk(&d.id))
                    && item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str)
                        == Some(d.status.as_str())
            });
        if !same {
            record.remove(PLANNED);
        } else if deliveries.len() == 1 {
            // Its one delivery's changes go inside it (inline.rs).
            record.insert(KEEPS_INLINE.to_owned(), AttributeValue::Bool(true));
        }
        Ok(same)
    }

    /// A delivery's item, and where it is kept.
    async fn delivery_record(
        &self,
        id: &DeliveryId,
        consistency: Consistency,
    ) -> StoreResult<Option<(Item, Kept)>> {
        Ok(self.delivery_and_notification(id, consistency).await?.0)
    }

    /// A delivery's item (and where it is kept), with its notification's item. The
    /// notification is read first: when it keeps its one delivery inside (inline.rs),
    /// that is the only read. What an eventually consistent read misses (written within
    /// the last second) is read again strongly.
    async fn delivery_and_notification(
        &self,
        id: &DeliveryId,
        consistency: Consistency,
    ) -> StoreResult<DeliveryAndNotification> {
        let read = self.read_delivery_and_notification(id, consistency).await?;
        // A notification missed is read again strongly below; a delivery item missed
        // beside a notification found, here.
        if read.0.is_none() && read.1.is_some() && consistency == Consistency::Eventual {
            return self.read_delivery_and_notification(id, Consistency::Strong).await;
        }
        Ok(read)
    }

    async fn read_delivery_and_notification(
        &self,
        id: &DeliveryId,
        consistency: Consistency,
    ) -> StoreResult<DeliveryAndNotification> {
        let notification_key = notification_key(&id.notification_id());
        let mut notification = self.read_key(notification_key.clone(), consistency).await?;
        if notification.is_none() && consistency == Consistency::Eventual {
            notification = self.read_key(notification_key, Consistency::Strong).await?;
        }
        let sk = delivery_sk(id);
        if let Some(item) = notification.as_ref().filter(|item| keeps_inline(item))
            && let Some(inline) = planned_item(item, &sk)?
        {
            return Ok((Some((inline, Kept::Inline)), notification));
        }
        if let Some(item) = self.read_key(delivery_key(id), consistency).await? {
            return Ok((Some((item, Kept::Item)), notification));
        }
        let Some(item) = notification.as_ref() else { return Ok((None, None)) };
        let planned = planned_item(item, &sk)?.map(|item| (item, Kept::Derived));
        Ok((planned, notification))
    }

    /// The delivery and its notification as send read them before sending, if it held
    /// that read (send_reads.rs): what its outcome's write may go on instead of a read.
    fn held_send_read(&self, id: &DeliveryId) -> StoreResult<Option<DeliveryAndNotification>> {
        let Some(notification) = self.send_reads.take(id) else { return Ok(None) };
        let Some(item) = planned_item(&notification, &delivery_sk(id))? else { return Ok(None) };
        Ok(Some((Some((item, Kept::Inline)), Some(notification))))
    }

    /// The update that keeps `changed` (a notification's one delivery after a change)
    /// inside `notification` (its item as read): conditional on the inline map's
    /// version and the notification's status as read, so a stale read fails it.
    /// `counted`: the delivery's status change, counted in the same write, which also
    /// settles the notification when that leaves nothing pending.
    fn inline_write(
        &self,
        notification: &Item,
        changed: &Item,
        counted: Option<(DeliveryStatus, DeliveryStatus)>,
    ) -> StoreResult<TransactWriteItem> {
        let read_version = version(notification);
        let read_status = text(notification, "status")?;
        let mut e = Expr::default();
        let inline = e.name(INLINE);
        let state = e.value(super::inline::state(changed, read_version + 1));
        let mut sets = vec![format!("{inline} = {state}")];
        let status = e.name("status");
        let mut condition = if read_version == 0 {
            format!("attribute_not_exists({inline})")
        } else {
            format!("{inline}.{} = {}", e.name(VERSION), e.value(n(read_version)))
        };
        condition.push_str(&format!(" AND {status} = {}", e.value(s(read_status))));
        if let Some((from, next)) = counted {
            // On the counts read too: a fallback delivery, written apart, counts there.
            let (read_pending, read_reached) =
                (number(notification, "pending"), number(notification, "reached"));
            condition.push_str(" AND ");
            condition.push_str(&counts(&mut e, read_pending, read_reached, " AND "));
            let (pending, reached) = count_deltas(from, next);
            let (pending, reached) = (read_pending + pending, read_reached + reached);
            sets.push(counts(&mut e, pending, reached, ", "));
            if read_status == NotificationStatus::Dispatched.as_str() && pending <= 0 {
                let (settled, detail) = final_status(reached);
                sets.push(format!("{status} = {}", e.value(s(settled.as_str()))));
                let now = e.value(s(format_time(Utc::now())));
                sets.push(format!("{} = {now}", e.name("updated_at")));
                sets.push(append_event(&mut e, None, settled.as_str(), detail));
            }
        }
        let mut update = format!("SET {}", sets.join(", "));
        if notification.contains_key(outbox::OUTBOX) {
            // The stream carried them with the item's INSERT, long before its delivery
            // could change; out, so that no later update is billed for them.
            update.push_str(&format!(" REMOVE {}", e.name(outbox::OUTBOX)));
        }
        self.update_key(key_of(notification), &update, Some(&condition), &e)
    }

    /// A change to a delivery whose notification keeps it inside its item (a failed
    /// attempt, a failover, a provider's event), if `allowed` by the delivery as read.
    /// `None` if the delivery is not kept inline (the caller writes its item), else
    /// whether the change was made.
    async fn change_inline(
        &self,
        id: &DeliveryId,
        allowed: impl Fn(&Delivery) -> bool,
        changes: &[(&str, Option<AttributeValue>)],
        event: &str,
        detail: Option<&str>,
    ) -> StoreResult<Option<bool>> {
        for attempt in 0..=MAX_TRANSACTION_RETRIES {
            let fresh = if attempt == 0 { Consistency::Eventual } else { Consistency::Strong };
            let notification_key = notification_key(&id.notification_id());
            let Some(notification) = self.read_key(notification_key, fresh).await? else {
                if fresh == Consistency::Eventual {
                    continue;
                }
                return Ok(None);
            };
            if !keeps_inline(&notification) {
                return Ok(None);
            }
            let Some(item) = planned_item(&notification, &delivery_sk(id))? else {
                return Ok(None); // Another delivery of it (a fallback): an item of its own.
            };
            if !allowed(&decode_delivery(&item)?) {
                if fresh == Consistency::Eventual {
                    continue; // Perhaps stale: ask again, strongly.
                }
                return Ok(Some(false));
            }
            let changed = changed(item, changes, event_value(Some(id), event, detail));
            match self.commit(vec![self.inline_write(&notification, &changed, None)?]).await {
                Ok(()) => return Ok(Some(true)),
                Err(TxError::ConditionFailed(_)) => {}
                Err(TxError::Store(e)) => return Err(e),
            }
        }
        Err(herald_core::ports::StoreError::Conflict("the delivery kept changing".into()))
    }

    /// Writes a planned delivery's item as derived, if it is planned and not written;
    /// true if its item exists now.
    async fn write_planned(&self, id: &DeliveryId) -> StoreResult<bool> {
        let Some((item, kept)) = self.delivery_record(id, Consistency::Strong).await? else {
            return Ok(false);
        };
        match kept {
            Kept::Item => return Ok(true),
            Kept::Inline => return Ok(false), // Changed by `change_inline` only.
            Kept::Derived => {}
        }
        let mut e = Expr::default();
        let condition = format!("attribute_not_exists({})", e.name(PK));
        match self.commit(vec![self.put(item, Some((&condition, e)))?]).await {
            Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(true),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    /// One conditional write to a delivery's item; a planned delivery not written yet
    /// is written first (the rare changes: a failed attempt, a failover, a provider's
    /// event). True if the condition held.
    async fn update_delivery(
        &self,
        id: &DeliveryId,
        write: TransactWriteItem,
    ) -> StoreResult<bool> {
        match self.commit(vec![write.clone()]).await {
            Ok(()) => return Ok(true),
            Err(TxError::ConditionFailed(_)) => {}
            Err(TxError::Store(e)) => return Err(e),
        }
        if !self.write_planned(id).await? {
            return Ok(false);
        }
        match self.commit(vec![write]).await {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(TxError::Store(e)) => Err(e),
        }
    }
}

impl DynamoStore {
    /// Writes a new notification, its idempotency key and the deliveries planned at
    /// intake, with its messages (`outbox`): inside the notification's item, for the
    /// stream to send, where that costs nothing (outbox.rs); else to SQS before any write.
    async fn write_accepted(
        &self,
        acceptance: &Acceptance,
        outbox: Vec<Job>,
    ) -> StoreResult<AcceptOutcome> {
        let Acceptance { notification, claim, deliveries, .. } = acceptance;
        let claim = claim.as_ref();
        if notification.id.app_tag() != app_tag(&notification.app_id) {
            // Its item would sit outside its app's list: a caller's bug, never stored.
            return Err(herald_core::ports::StoreError::Corrupt(format!(
                "notification {} was not made for app {} (NotificationId::for_app)",
                notification.id, notification.app_id
            )));
        }
        // Planned deliveries go in before their notification (plain conditional puts;
        // the notification's counters are set with it, so no transaction). A crash in
        // between leaves deliveries of a notification never written (their sends let
        // go, TTL removes them; the caller got no 202), never a `dispatched`
        // notification whose deliveries are missing. So does losing a race for the
        // idempotency key.
        // Built first, so its timeline events come before the deliveries'.
        let mut notification_record = notification_item(notification, self.expires())?;
        let (mut counts_apart, mut write_deliveries) = (None, false);
        if !deliveries.is_empty() {
            let (pending, reached) = pending_and_reached(deliveries.iter().map(|d| &d.status));
            if self.counts_apart(&notification_record, deliveries.len()) {
                counts_apart = Some((pending, reached));
                notification_record.insert(COUNTS_APART.to_owned(), AttributeValue::Bool(true));
            } else {
                notification_record.extend([
                    ("pending".to_owned(), n(pending)),
                    ("reached".to_owned(), n(reached)),
                ]);
            }
            write_deliveries = !self.derive_plan(&mut notification_record, deliveries)?;
        }
        let outbox = outbox::stash(&mut notification_record, outbox, &self.via_stream);
        self.queue.enqueue(outbox).await?;
        if let Some((pending, reached)) = counts_apart {
            // Before the notification: no send can count before it is written.
            self.put_counts(&notification.id, pending, reached).await?;
        }
        if write_deliveries {
            self.insert_new_deliveries(deliveries, &notification.app_id, None).await?;
        }
        let mut attempt = 0;
        loop {
            let mut writes = Vec::new();
            if let Some(claim) = claim {
                let mut e = Expr::default();
                // A key past its window is free again even before TTL deletes it.
                let condition = format!(
                    "attribute_not_exists({}) OR {} < {}",
                    e.name(PK),
                    e.name("created_at"),
                    e.value(s(format_time(Utc::now() - IDEMPOTENCY_WINDOW)))
                );
                let mut item = key(idempotency_pk(&notification.app_id, &claim.key));
                item.extend([
                    ("body_hash".to_owned(), s(&claim.body_hash)),
                    ("notification_id".to_owned(), s(notification.id.to_string())),
                    ("created_at".to_owned(), s(format_time(notification.created_at))),
                    (TTL.to_owned(), ttl(notification.created_at + IDEMPOTENCY_WINDOW)),
                ]);
                writes.push(self.put(item, Some((&condition, e)))?);
            }
            let mut e = Expr::default();
            let condition = format!("attribute_not_exists({})", e.name(PK));
            let item = notification_record.clone();
            writes.push(self.put(item, Some((&condition, e)))?);
            match self.commit(writes).await {
                Ok(()) => break,
                // Lost a race for the key: the winner's message is the one that counts
                // (this request's goes unanswered, see above).
                Err(TxError::ConditionFailed(failed)) if claim.is_some() && failed[0] => {
                    let claim = claim.expect("checked above");
                    match self.earlier_claim(&notification.app_id, claim).await? {
                        Some(earlier) => return Ok(earlier),
                        // Purged in between: try again.
                        None if attempt < MAX_TRANSACTION_RETRIES => attempt += 1,
                        None => {
                            return Err(herald_core::ports::StoreError::Conflict(
                                "idempotency key kept changing".into(),
                            ));
                        }
                    }
                }
                Err(e) => return Err(tx_store_error(e)),
            }
        }
        if !deliveries.is_empty() && deliveries.iter().all(|d| d.status.is_settled()) {
            // Every planned delivery was settled at creation (no address, say).
            self.settle(&notification.id).await?;
        }
        Ok(AcceptOutcome::Created)
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn accept(&self, mut acceptance: Acceptance) -> StoreResult<AcceptOutcome> {
        // A repeat of an earlier request is answered before anything is queued.
        if let Some(claim) = &acceptance.claim
            && let Some(earlier) =
                self.earlier_claim(&acceptance.notification.app_id, claim).await?
        {
            return Ok(earlier);
        }
        // The messages (dispatch, or the sends of deliveries planned at intake) go
        // to SQS before the notification is written, or inside its item: a crash in
        // between leaves messages for a notification that was never written (dispatch
        // and send let them go after a few tries, and the caller got no 202), never a
        // notification without its messages. So no sweep and no index of accepted
        // notifications is needed.
        let outbox = std::mem::take(&mut acceptance.outbox);
        self.write_accepted(&acceptance, outbox).await
    }

    async fn accept_many(
        &self,
        mut items: Vec<Acceptance>,
        in_flight: usize,
    ) -> Vec<StoreResult<AcceptOutcome>> {
        let in_flight = in_flight.max(1);
        // As `accept`, item by item, except that the messages of every new notification
        // go out together first: SendMessageBatch takes ten, so a batch of 100 costs
        // 10 SQS calls, not 100.
        let earlier: Vec<StoreResult<Option<AcceptOutcome>>> =
            futures::stream::iter(0..items.len())
                .map(|i| {
                    let a = &items[i];
                    async move {
                        match &a.claim {
                            Some(claim) => self.earlier_claim(&a.notification.app_id, claim).await,
                            None => Ok(None),
                        }
                    }
                })
                .buffered(in_flight)
                .collect()
                .await;
        let mut results: Vec<Option<StoreResult<AcceptOutcome>>> =
            earlier.into_iter().map(|e| e.transpose()).collect();
        let fresh: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        let outbox: Vec<Job> =
            fresh.iter().flat_map(|&i| std::mem::take(&mut items[i].outbox)).collect();
        match self.queue.enqueue(outbox).await {
            Err(e) => fresh.iter().for_each(|&i| results[i] = Some(Err(e.clone()))),
            Ok(()) => {
                let written: Vec<(usize, StoreResult<AcceptOutcome>)> =
                    futures::stream::iter(fresh.clone())
                        .map(|i| {
                            let a = &items[i];
                            async move { (i, self.write_accepted(a, Vec::new()).await) }
                        })
                        .buffered(in_flight)
                        .collect()
                        .await;
                written.into_iter().for_each(|(i, r)| results[i] = Some(r));
            }
        }
        results.into_iter().map(|r| r.expect("every item has its result")).collect()
    }

    async fn notification(&self, id: &NotificationId) -> StoreResult<Option<Notification>> {
        self.notification_item(id).await?.as_ref().map(decode_notification).transpose()
    }

    async fn list_notifications(
        &self,
        app_id: &str,
        filter: &NotificationFilter,
    ) -> StoreResult<NotificationList> {
        let mut e = Expr::default();
        // Ids sort by time: the time window and the cursor are a key range.
        let (lowest, highest) = filter.id_range();
        // Named only when used: DynamoDB refuses an unused attribute name.
        let sk = if lowest.is_some() || highest.is_some() { e.name(SK) } else { String::new() };
        let mut bound = |id: &String| e.value(s(format!("{NOTIFICATION_SK_PREFIX}{id}")));
        let id_condition = match (&lowest, &highest) {
            (Some(lo), Some(hi)) => Some(format!("{sk} BETWEEN {} AND {}", bound(lo), bound(hi))),
            (Some(lo), None) => Some(format!("{sk} >= {}", bound(lo))),
            (None, Some(hi)) => Some(format!("{sk} < {}", bound(hi))),
            (None, None) => None,
        };
        let filtered = filter.status.is_some()
            || filter.priority.is_some()
            || filter.channel.is_some()
            || filter.category.is_some()
            || filter.created_after.is_some()
            || filter.created_before.is_some();
        // BETWEEN includes its upper end, which the range excludes.
        let keep = |n: &Notification| {
            (lowest.is_none() || Some(n.id.to_string()) != highest)
                && filter.status.is_none_or(|st| n.status == st)
                && filter.priority.is_none_or(|p| n.priority == p)
                && filter.channel.is_none_or(|c| n.channels.contains(&c))
                && filter.category.as_ref().is_none_or(|c| n.category.as_ref() == Some(c))
                && filter.created_after.is_none_or(|t| n.created_at >= t)
                && filter.created_before.is_none_or(|t| n.created_at < t)
        };
        let query = ListQuery { app: app_id, id_condition, e, limit: filter.limit, filtered };
        let (items, stopped_at) = self.list_app(query, keep).await?;
        let resume_before = stopped_at
            .filter(|_| items.len() < filter.limit)
            .and_then(|id| NotificationId::parse(&id).ok());
        Ok(NotificationList { items, resume_before })
    }

    /// None: the dispatch message is queued before the notification is written.
    async fn stranded_notifications(
        &self,
        _before: DateTime<Utc>,
        _after: Option<&NotificationId>,
        _limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        Ok(Vec::new())
    }

    async fn transition_notification(
        &self,
        id: &NotificationId,
        next: NotificationStatus,
        detail: Option<String>,
    ) -> StoreResult<bool> {
        let moved =
            self.move_notification(id, next, detail.as_deref(), None, Expr::default(), "").await?;
        if moved && matches!(next, NotificationStatus::Canceled | NotificationStatus::Expired) {
            let delivery_status = if next == NotificationStatus::Canceled {
                DeliveryStatus::Canceled
            } else {
                DeliveryStatus::Expired
            };
            // A delivery written after this read (a fallback) is canceled by send,
            // which checks the notification's status first.
            for item in self.delivery_items(id).await? {
                let delivery = decode_delivery(&item)?;
                if delivery.status == DeliveryStatus::Queued {
                    self.transition_delivery(&delivery.id, delivery_status, Default::default())
                        .await?;
                }
            }
        }
        Ok(moved)
    }

    async fn insert_deliveries(
        &self,
        deliveries: &[Delivery],
        outbox: Vec<Job>,
    ) -> StoreResult<()> {
        let Some(first) = deliveries.first() else {
            return self.queue.enqueue(outbox).await;
        };
        // Fallback deliveries are rare: one read for their app is cheap.
        let Some(item) = self.notification_item(&first.notification_id).await? else {
            return Ok(());
        };
        let counts = Self::counts_location(&item, &first.notification_id);
        self.insert_new_deliveries(deliveries, text(&item, "app_id")?, Some(&counts)).await?;
        // Always sent: after a crash between the insert and here, the repeat of the
        // caller's step must still queue the job. Duplicates are harmless (send skips
        // a settled delivery).
        self.queue.enqueue(outbox).await
    }

    /// Writes the deliveries, queues their sends, then marks the notification
    /// `dispatched`. A crash before the mark leaves it `accepted`, so the redelivered
    /// dispatch message runs this again: the rows already written stand and their
    /// sends are queued again (send is idempotent per delivery). Once marked, the
    /// sends are on the queue: the mark is the outbox's receipt, with no write of its own.
    async fn record_dispatch(
        &self,
        id: &NotificationId,
        deliveries: &[Delivery],
        outbox: Vec<Job>,
    ) -> StoreResult<bool> {
        let Some(item) = self.notification_item(id).await? else {
            return Ok(false);
        };
        if text(&item, "status")? != NotificationStatus::Accepted.as_str() {
            return Ok(false);
        }
        let mut outbox = outbox;
        let existed = self.insert_new_deliveries(deliveries, text(&item, "app_id")?, None).await?;
        let priority = decode_notification(&item)?.priority;
        let statuses =
            self.reconcile_with_stored(deliveries, &existed, priority, &mut outbox).await?;
        let (pending, reached) = pending_and_reached(statuses.iter());
        let mut e = Expr::default();
        let counters = if self.counts_apart(&item, deliveries.len()) {
            // Before the sends are queued, so none can count before it.
            self.put_counts(id, pending, reached).await?;
            format!(", {} = {}", e.name(COUNTS_APART), e.value(AttributeValue::Bool(true)))
        } else {
            format!(", {}", counts(&mut e, pending, reached, ", "))
        };
        self.queue.enqueue(outbox).await?;
        let moved = self
            .move_notification(id, NotificationStatus::Dispatched, None, None, e, &counters)
            .await?;
        if moved && pending == 0 {
            // Every delivery was settled at creation (all suppressed, say).
            self.settle(id).await?;
        }
        Ok(moved)
    }

    async fn delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        let record = self.delivery_record(id, Consistency::Strong).await?;
        record.map(|(item, _)| decode_delivery(&item)).transpose()
    }

    /// The notification read once whether the delivery is stored or derived from it,
    /// eventually consistent: a stale read can only miss a change of the last second,
    /// which the outcome's conditional write catches (the send itself can then be one
    /// that a cancel of the same moment would have missed anyway). A send message comes
    /// back only after its visibility timeout, long after its first send's write.
    /// A read of a delivery kept inside its notification is held for that write
    /// (send_reads.rs).
    async fn delivery_to_send(
        &self,
        id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Option<Notification>)>> {
        let (record, notification) =
            self.delivery_and_notification(id, Consistency::Eventual).await?;
        let Some((item, kept)) = record else { return Ok(None) };
        if kept == Kept::Inline
            && let Some(read) = &notification
        {
            self.send_reads.hold(id, read);
        }
        let delivery = decode_delivery(&item)?;
        let notification = notification.as_ref().map(decode_notification).transpose()?;
        Ok(Some((delivery, notification)))
    }

    async fn deliveries(&self, notification: &NotificationId) -> StoreResult<Vec<Delivery>> {
        decode_deliveries(&self.delivery_items(notification).await?)
    }

    async fn transition_delivery(
        &self,
        id: &DeliveryId,
        next: DeliveryStatus,
        outcome: DeliveryOutcome,
    ) -> StoreResult<bool> {
        let mut attempt = 0;
        let (current, notification) = loop {
            // The first reads may be stale: the conditional write below catches it, and
            // a retry reads strongly.
            let fresh = if attempt == 0 { Consistency::Eventual } else { Consistency::Strong };
            let held = if attempt == 0 { self.held_send_read(id)? } else { None };
            let (record, notification) = match held {
                Some(read) => read,
                None => self.delivery_and_notification(id, fresh).await?,
            };
            let current = record.as_ref().map(|(item, _)| decode_delivery(item)).transpose()?;
            let Some((item, kept)) = record.filter(|_| {
                current.as_ref().is_some_and(|current| current.status.can_become(next))
            }) else {
                if fresh == Consistency::Eventual {
                    // A stale read must not refuse: ask again, strongly.
                    attempt += 1;
                    continue;
                }
                return Ok(false);
            };
            let current = current.expect("checked with the record");
            let mut changes = vec![
                ("status", Some(s(next.as_str()))),
                ("attempts", Some(n(current.attempts.max(outcome.attempts) as i64))),
                ("updated_at", Some(s(format_time(Utc::now())))),
                ("reason", outcome.reason.as_ref().map(s)),
            ];
            for (name, value) in [
                ("provider", &outcome.provider),
                ("provider_message_id", &outcome.provider_message_id),
            ] {
                if let Some(value) = value {
                    changes.push((name, Some(s(value))));
                }
            }
            let detail = outcome.timeline_detail();
            let event = event_value(Some(id), next.as_str(), detail.as_deref());
            let write = match kept {
                Kept::Item => {
                    // Optimistic: the update only applies if the status is still the
                    // one read, so the counter deltas computed from it are right.
                    let mut e = Expr::default();
                    let mut sets = Vec::new();
                    let mut removes = Vec::new();
                    for (name, value) in changes {
                        match value {
                            Some(value) => {
                                sets.push(format!("{} = {}", e.name(name), e.value(value)))
                            }
                            None => removes.push(e.name(name)),
                        }
                    }
                    let events = e.name(EVENTS);
                    let appended = e.value(AttributeValue::L(vec![event]));
                    let empty = e.value(AttributeValue::L(Vec::new()));
                    sets.push(format!(
                        "{events} = list_append(if_not_exists({events}, {empty}), {appended})"
                    ));
                    let mut update = format!("SET {}", sets.join(", "));
                    if !removes.is_empty() {
                        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
                    }
                    let status = e.name("status");
                    let condition = format!("{status} = {}", e.value(s(current.status.as_str())));
                    self.update_key(delivery_key(id), &update, Some(&condition), &e)?
                }
                Kept::Derived => {
                    // Planned at intake and never written: written whole now, once.
                    let written = changed(item, &changes, event);
                    let mut e = Expr::default();
                    let condition = format!("attribute_not_exists({})", e.name(PK));
                    self.put(written, Some((&condition, e)))?
                }
                Kept::Inline => {
                    // The count, and the notification's settle, in the same write.
                    let notification = notification.as_ref().expect("an inline one has it");
                    let counted = Some((current.status, next));
                    let changed = changed(item, &changes, event);
                    self.inline_write(notification, &changed, counted)?
                }
            };
            match self.commit(vec![write]).await {
                Ok(()) if kept == Kept::Inline => return Ok(true),
                Ok(()) => break (current, notification),
                Err(TxError::ConditionFailed(_)) if attempt < MAX_TRANSACTION_RETRIES => {
                    attempt += 1
                }
                Err(e) => return Err(tx_store_error(e)),
            }
        };
        // Counted in a write of its own, not a transaction (which costs each item
        // twice): a crash in between is repaired by `recount_pending` when the send
        // message comes back.
        let (pending, reached) = count_deltas(current.status, next);
        self.count_on_notification(&current.notification_id, pending, reached, notification)
            .await?;
        Ok(true)
    }

    async fn recount_pending(&self, id: &NotificationId) -> StoreResult<()> {
        for _ in 0..MAX_TRANSACTION_RETRIES {
            let Some(item) = self.notification_item(id).await? else { return Ok(()) };
            if text(&item, "status")? != NotificationStatus::Dispatched.as_str() {
                return Ok(());
            }
            let statuses: Vec<DeliveryStatus> = self
                .delivery_items(id)
                .await?
                .iter()
                .map(|item| decode_delivery(item).map(|d| d.status))
                .collect::<StoreResult<_>>()?;
            let (pending, reached) = pending_and_reached(statuses.iter());
            let (stored_pending, stored_reached) = self.stored_counts(id, &item).await?;
            if (pending, reached) != (stored_pending, stored_reached) {
                // Conditional on the counts read, so a concurrent count is not lost.
                let mut e = Expr::default();
                let update = format!("SET {}", counts(&mut e, pending, reached, ", "));
                let condition = counts(&mut e, stored_pending, stored_reached, " AND ");
                let location = Self::counts_location(&item, id);
                match self
                    .commit(vec![self.update_key(location, &update, Some(&condition), &e)?])
                    .await
                {
                    Ok(()) => {}
                    Err(TxError::ConditionFailed(_)) => continue,
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
            if pending == 0 {
                self.settle(id).await?;
            }
            return Ok(());
        }
        Err(herald_core::ports::StoreError::Conflict("the counts kept changing".into()))
    }

    async fn record_attempt(&self, id: &DeliveryId, attempts: u32, error: &str) -> StoreResult<()> {
        let changes = [
            ("attempts", Some(n(attempts as i64))),
            ("reason", Some(s(error))),
            ("updated_at", Some(s(format_time(Utc::now())))),
        ];
        let event = "attempt_failed";
        if self.change_inline(id, |_| true, &changes, event, Some(error)).await?.is_some() {
            return Ok(());
        }
        let mut e = Expr::default();
        let update = format!(
            "SET {} = {}, {} = {}, {} = {}, {}",
            e.name("attempts"),
            e.value(n(attempts as i64)),
            e.name("reason"),
            e.value(s(error)),
            e.name("updated_at"),
            e.value(s(format_time(Utc::now()))),
            append_event(&mut e, Some(id), "attempt_failed", Some(error))
        );
        let condition = format!("attribute_exists({})", e.name(PK));
        let write = self.update_key(delivery_key(id), &update, Some(&condition), &e)?;
        self.update_delivery(id, write).await.map(|_| ())
    }

    async fn switch_integration(
        &self,
        id: &DeliveryId,
        integration: &str,
        detail: &str,
    ) -> StoreResult<bool> {
        let changes = [
            ("integration", Some(s(integration))),
            ("updated_at", Some(s(format_time(Utc::now())))),
        ];
        let queued = |d: &Delivery| d.status == DeliveryStatus::Queued;
        if let Some(done) =
            self.change_inline(id, queued, &changes, "failover", Some(detail)).await?
        {
            return Ok(done);
        }
        let mut e = Expr::default();
        let update = format!(
            "SET {} = {}, {} = {}, {}",
            e.name("integration"),
            e.value(s(integration)),
            e.name("updated_at"),
            e.value(s(format_time(Utc::now()))),
            append_event(&mut e, Some(id), "failover", Some(detail))
        );
        let condition =
            format!("{} = {}", e.name("status"), e.value(s(DeliveryStatus::Queued.as_str())));
        let write = self.update_key(delivery_key(id), &update, Some(&condition), &e)?;
        self.update_delivery(id, write).await
    }

    async fn record_delivery_event(
        &self,
        id: &DeliveryId,
        event: &str,
        detail: Option<&str>,
    ) -> StoreResult<bool> {
        if let Some(done) = self.change_inline(id, |_| true, &[], event, detail).await? {
            return Ok(done);
        }
        let mut e = Expr::default();
        let update = format!("SET {}", append_event(&mut e, Some(id), event, detail));
        let condition = format!("attribute_exists({})", e.name(PK));
        let write = self.update_key(delivery_key(id), &update, Some(&condition), &e)?;
        self.update_delivery(id, write).await
    }

    /// The notification's own events and its deliveries' merged in the order they
    /// happened (each event's `seq` is a monotonic ULID).
    async fn timeline(&self, id: &NotificationId) -> StoreResult<Vec<TimelineEvent>> {
        let (Some(notification), deliveries) = self.partition(id).await? else {
            return Ok(Vec::new());
        };
        timeline_of(&notification, &deliveries)
    }

    /// One read of the item and its deliveries' partition, where the three parts read
    /// apart would take three. A notification's one delivery lives inside its item, so
    /// its status and that delivery's are then read at one point in time.
    async fn notification_detail(&self, id: &NotificationId) -> StoreResult<Option<Detail>> {
        let (Some(item), delivery_items) = self.partition(id).await? else { return Ok(None) };
        Ok(Some(Detail {
            notification: decode_notification(&item)?,
            deliveries: decode_deliveries(&delivery_items)?,
            timeline: timeline_of(&item, &delivery_items)?,
        }))
    }

    /// In AWS, TTL removes expired keys (and `accept` ignores any past the window
    /// meanwhile); this scan is for operators and tests, not a scheduled job.
    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut e = Expr::default();
        let filter = format!(
            "begins_with({}, {}) AND {} < {}",
            e.name(PK),
            e.value(s("I#")),
            e.name("created_at"),
            e.value(s(format_time(before)))
        );
        let mut purged = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            for item in page.items.unwrap_or_default() {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(item.into_iter().filter(|(k, _)| k == PK || k == SK).collect()))
                    .send()
                    .await
                    .map_err(sdk_error)?;
                purged += 1;
            }
            match page.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(purged),
            }
        }
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let mut e = Expr::default();
        let update = format!("ADD {} {}", e.name("count"), e.value(n(1)));
        let writes = vec![
            self.put(api_key_item(key), None)?,
            self.update("META#api_keys".to_owned(), &update, None, &e)?,
        ];
        self.transact(writes).await.map_err(tx_store_error)
    }

    async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.get(api_key_pk(hash)).await?.as_ref().map(decode_api_key).transpose()
    }

    async fn count_api_keys(&self) -> StoreResult<u64> {
        Ok(self.get("META#api_keys".to_owned()).await?.map_or(0, |item| number(&item, "count"))
            as u64)
    }
}

#[async_trait]
impl SettingStore for DynamoStore {
    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.get(setting_pk(name)).await?.and_then(|item| optional_text(&item, "value")))
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        let mut item = key(setting_pk(name));
        item.insert("value".to_owned(), s(value));
        let mut e = Expr::default();
        let condition = format!("attribute_not_exists({})", e.name(PK));
        match self.commit(vec![self.put(item, Some((&condition, e)))?]).await {
            Ok(()) => Ok(value.to_owned()),
            Err(TxError::ConditionFailed(_)) => {
                self.setting(name).await?.ok_or_else(|| backend("setting vanished"))
            }
            Err(TxError::Store(e)) => Err(e),
        }
    }
}

/// `RECEIPT#{provider}#{message id}` -> the delivery, expiring with the deliveries.
#[async_trait]
impl herald_core::ports::ReceiptStore for DynamoStore {
    async fn remember_receipt(
        &self,
        provider: &str,
        message_id: &str,
        delivery: &DeliveryId,
    ) -> StoreResult<()> {
        let mut item = key(format!("RECEIPT#{provider}#{message_id}"));
        item.insert("delivery_id".to_owned(), s(delivery.to_string()));
        item.insert(TTL.to_owned(), ttl(self.expires()));
        match self.commit(vec![self.put(item, None)?]).await {
            Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    async fn receipt_delivery(
        &self,
        provider: &str,
        message_id: &str,
    ) -> StoreResult<Option<DeliveryId>> {
        let item = self.get(format!("RECEIPT#{provider}#{message_id}")).await?;
        Ok(item
            .and_then(|item| optional_text(&item, "delivery_id"))
            .and_then(|id| DeliveryId::parse(&id).ok()))
    }
}

pub(super) async fn add_daily_counters(
    store: &DynamoStore,
    batch: &str,
    counters: &DailyCounters,
) -> StoreResult<bool> {
    let mut marker = key(format!("TRACKED#{batch}"));
    marker.insert(TTL.to_owned(), ttl(Utc::now() + chrono::Duration::days(2)));
    let mut e = Expr::default();
    let condition = format!("attribute_not_exists({})", e.name(PK));
    let mut writes = vec![store.put(marker, Some((&condition, e)))?];
    for ((app, day), counts) in counters {
        let mut e = Expr::default();
        let adds: Vec<String> = counts
            .iter()
            .map(|(name, by)| format!("{} {}", e.name(name), e.value(n(*by))))
            .collect();
        writes.push(store.update(
            format!("STATS#{app}#{day}"),
            &format!("ADD {}", adds.join(", ")),
            None,
            &e,
        )?);
    }
    match store.transact(writes).await {
        Ok(()) => Ok(true),
        Err(TxError::ConditionFailed(_)) => Ok(false),
        Err(TxError::Store(e)) => Err(e),
    }
}

pub(super) async fn daily_counters(
    store: &DynamoStore,
    app: &str,
    day: &str,
) -> StoreResult<std::collections::BTreeMap<String, i64>> {
    let Some(item) = store.get(format!("STATS#{app}#{day}")).await? else {
        return Ok(Default::default());
    };
    Ok(item
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_n().ok()?.parse().ok()?)))
        .collect())
}

/// Deliveries in the order `GET` lists them: by recipient, then as created.
fn decode_deliveries(items: &[Item]) -> StoreResult<Vec<Delivery>> {
    let mut deliveries: Vec<Delivery> =
        items.iter().map(decode_delivery).collect::<StoreResult<_>>()?;
    deliveries.sort_by(|a, b| {
        (a.recipient_index, a.created_at, &a.id).cmp(&(b.recipient_index, b.created_at, &b.id))
    });
    Ok(deliveries)
}

/// The notification's events and its deliveries', in the order they happened.
fn timeline_of(notification: &Item, deliveries: &[Item]) -> StoreResult<Vec<TimelineEvent>> {
    let mut events = decode_events(notification)?;
    for delivery in deliveries {
        events.extend(decode_events(delivery)?);
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(events.into_iter().map(|(_, event)| event).collect())
}
