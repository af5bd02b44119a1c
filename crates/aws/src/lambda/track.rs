//! The `track` function, fed by the table's stream and by SES events through SNS:
//! - the table's stream: every status change of a notification or delivery bumps a
//!   per-app, per-day counter (`notifications_sent`, `email_delivered`, …);
//! - the same stream, as the outbox of medium- and low-priority notifications: a new
//!   notification's item holds its queue messages, which `track` sends (outbox.rs);
//! - SES events through SNS: `Delivery` and permanent `Bounce` settle the delivery;
//!   opens, clicks, complaints and the rest go on its timeline.
//!
//! No sweep for stranded notifications: on DynamoDB the api queues the dispatch
//! message before it writes the notification, or inside it, so none is left without
//! one.

use super::LambdaError;
use crate::dynamo::{DailyCounters, DynamoStore, RecordKind, jobs_of_stream_record, record_kind};
use async_trait::async_trait;
use herald_core::channels::email::ses_events;
use herald_core::ports::{QueueProducer, Store, StoreResult};
use serde_json::Value;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TrackSummary {
    /// Status changes counted from the stream.
    pub counted: usize,
    /// Queue messages sent for new notifications found on the stream.
    pub forwarded: usize,
    /// SES events applied to a known delivery.
    pub provider_events: usize,
    /// SES events for deliveries Herald does not know (another sender's mail).
    pub unknown: usize,
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str()
}

/// Where the stream's per-day counters go: the table in production.
#[async_trait]
pub trait StreamCounters: Send + Sync {
    /// Adds `counters` once per `batch` (a retried batch adds nothing).
    async fn add_daily_counters(&self, batch: &str, counters: &DailyCounters) -> StoreResult<bool>;
}

#[async_trait]
impl StreamCounters for DynamoStore {
    async fn add_daily_counters(&self, batch: &str, counters: &DailyCounters) -> StoreResult<bool> {
        DynamoStore::add_daily_counters(self, batch, counters).await
    }
}

/// What `track` works with: ports only, so its events also run against SQLite in tests.
pub struct Tracking<'a> {
    pub store: &'a dyn Store,
    pub counters: &'a dyn StreamCounters,
    /// Where the messages of new notifications go.
    pub queue: &'a dyn QueueProducer,
}

pub async fn handle_track(
    tracking: &Tracking<'_>,
    event: Value,
) -> Result<TrackSummary, LambdaError> {
    let mut summary = TrackSummary::default();
    let records = event.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut counters = DailyCounters::new();
    let mut outbox = Vec::new();
    let (mut first, mut last) = (None, None);
    for record in &records {
        if text(record, &["eventSource"]) == Some("aws:dynamodb") {
            first = first.or(text(record, &["eventID"]));
            last = text(record, &["eventID"]).or(last);
            for (app_day, counter) in status_changes(record) {
                *counters.entry(app_day).or_default().entry(counter).or_default() += 1;
                summary.counted += 1;
            }
            outbox.extend(jobs_of_stream_record(record));
        } else if text(record, &["EventSource"]) == Some("aws:sns") {
            let message = text(record, &["Sns", "Message"]).unwrap_or("{}");
            let ses: Value = serde_json::from_str(message)?;
            if apply_ses_event(tracking.store, &ses).await? {
                summary.provider_events += 1;
            } else {
                summary.unknown += 1;
            }
        }
    }
    if !counters.is_empty() {
        // A retried stream batch starts and ends at the same records (the template does
        // not bisect it): count it once.
        let batch = format!("{}..{}", first.unwrap_or(""), last.unwrap_or(""));
        tracking.counters.add_daily_counters(&batch, &counters).await?;
    }
    // Last, so that only a failure to queue them sends them again (send and dispatch
    // take a redelivered message as once).
    summary.forwarded = outbox.len();
    tracking.queue.enqueue(outbox).await?;
    Ok(summary)
}

/// The counters a stream record bumps, each for its (app, day): a notification's or a
/// delivery's status changed. A new item counts every status its timeline holds: a
/// notification planned at intake is written `dispatched` after `accepted`, and a
/// delivery planned at intake is written at its first change, `queued` and then `sent`
/// (or whatever it became) in one put. A notification that keeps its one delivery
/// inside its item (`delivery`) counts that delivery's changes the same way.
fn status_changes(record: &Value) -> Vec<((String, String), String)> {
    let Some(change) = record.get("dynamodb") else { return Vec::new() };
    let (Some(pk), Some(sk)) =
        (text(change, &["Keys", "PK", "S"]), text(change, &["Keys", "SK", "S"]))
    else {
        return Vec::new();
    };
    let Some(app) = text(change, &["NewImage", "app_id", "S"]) else { return Vec::new() };
    let kind = record_kind(pk, sk);
    let mut counted: Vec<(String, String)> = Vec::new();
    if kind == Some(RecordKind::Notification) {
        let image = |name: &str| change.get(name);
        counted.extend(record_changes(image("NewImage"), image("OldImage"), "notifications"));
        let inline = |name: &str| change.get(name).and_then(|image| image.pointer("/delivery/M"));
        if let Some(channel) = text(change, &["NewImage", "delivery", "M", "channel", "S"]) {
            counted.extend(record_changes(inline("NewImage"), inline("OldImage"), channel));
        }
    } else if kind == Some(RecordKind::Delivery)
        && let Some(channel) = text(change, &["NewImage", "channel", "S"])
    {
        counted.extend(record_changes(change.get("NewImage"), change.get("OldImage"), channel));
    }
    counted.into_iter().map(|(day, counter)| ((app.to_owned(), day), counter)).collect()
}

/// The counters (`{prefix}_{status}`, each with its day) for one record's status change
/// from `old` to `new` (images in the stream's attribute-value form). A record new here
/// counts every status in its timeline before its current one: its `events`, or, for a
/// delivery kept inline, the status it was planned in (`first`).
fn record_changes(new: Option<&Value>, old: Option<&Value>, prefix: &str) -> Vec<(String, String)> {
    let Some(new) = new else { return Vec::new() };
    let new_status = text(new, &["status", "S"]);
    let old_status = old.and_then(|old| text(old, &["status", "S"]));
    let (Some(new_status), Some(day)) = (new_status, text(new, &["updated_at", "S"])) else {
        return Vec::new();
    };
    if old_status == Some(new_status) {
        return Vec::new();
    }
    let Some(day) = day.get(..10) else { return Vec::new() };
    let mut statuses = Vec::new();
    if old_status.is_none() {
        if let Some(first) = text(new, &["first", "S"]) {
            statuses.push(first);
        } else {
            let events = new.pointer("/events/L").and_then(Value::as_array);
            for event in events.into_iter().flatten() {
                statuses.extend(text(event, &["M", "event", "S"]));
            }
        }
        statuses.retain(|status| *status != new_status);
    }
    statuses.push(new_status);
    statuses.into_iter().map(|status| (day.to_owned(), format!("{prefix}_{status}"))).collect()
}

/// Applies one SES event (event publishing format) to the delivery named by its tag.
async fn apply_ses_event(
    store: &dyn Store,
    ses: &Value,
) -> Result<bool, herald_core::ports::StoreError> {
    let Some(read) = ses_events::feedback(ses) else {
        return Ok(false);
    };
    herald_core::pipeline::feedback::apply(
        store,
        &read.delivery,
        "ses",
        read.message_id,
        read.feedback,
    )
    .await
}
