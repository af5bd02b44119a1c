//! The `track` function. Two feeds reach it:
//! - the table's stream: every status change of a notification or delivery bumps a
//!   per-app, per-day counter (`notifications_sent`, `email_delivered`, …);
//! - SES events through SNS: `Delivery` and permanent `Bounce` settle the delivery;
//!   opens, clicks, complaints and the rest go on its timeline;
//!
//! No sweep for stranded notifications: on DynamoDB the api queues the dispatch
//! message before it writes the notification, so none is left without one.

use super::LambdaError;
use crate::dynamo::{DailyCounters, DynamoStore};
use async_trait::async_trait;
use herald_core::channels::email::ses_events;
use herald_core::ports::{Store, StoreResult};
use serde_json::Value;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TrackSummary {
    /// Status changes counted from the stream.
    pub counted: usize,
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
}

pub async fn handle_track(
    tracking: &Tracking<'_>,
    event: Value,
) -> Result<TrackSummary, LambdaError> {
    let mut summary = TrackSummary::default();
    let records = event.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut counters = DailyCounters::new();
    let (mut first, mut last) = (None, None);
    for record in &records {
        if text(record, &["eventSource"]) == Some("aws:dynamodb") {
            first = first.or(text(record, &["eventID"]));
            last = text(record, &["eventID"]).or(last);
            if let Some((app_day, statuses)) = status_changes(record) {
                let day = counters.entry(app_day).or_default();
                for counter in statuses {
                    *day.entry(counter).or_default() += 1;
                    summary.counted += 1;
                }
            }
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
        // A retried stream batch starts and ends at the same records: count it once.
        let batch = format!("{}..{}", first.unwrap_or(""), last.unwrap_or(""));
        tracking.counters.add_daily_counters(&batch, &counters).await?;
    }
    Ok(summary)
}

/// The counters a stream record bumps, and for which (app, day): a notification's or a
/// delivery's status changed. A new item counts every status its timeline holds: a
/// notification planned at intake is written `dispatched` after `accepted`, and a
/// delivery planned at intake is written at its first change, `queued` and then `sent`
/// (or whatever it became) in one put.
fn status_changes(record: &Value) -> Option<((String, String), Vec<String>)> {
    let change = record.get("dynamodb")?;
    let pk = text(change, &["Keys", "PK", "S"])?;
    let sk = text(change, &["Keys", "SK", "S"])?;
    let new_status = text(change, &["NewImage", "status", "S"])?;
    let old_status = text(change, &["OldImage", "status", "S"]);
    if old_status == Some(new_status) {
        return None;
    }
    let day = text(change, &["NewImage", "updated_at", "S"])?.get(..10)?.to_owned();
    let app = text(change, &["NewImage", "app_id", "S"])?.to_owned();
    // A notification is `N#{id}` / `#`; its deliveries share its partition (`D#{id}`).
    let prefix = if !pk.starts_with("N#") {
        return None;
    } else if sk == "#" {
        "notifications"
    } else if sk.starts_with("D#") {
        text(change, &["NewImage", "channel", "S"])?
    } else {
        return None;
    };
    let mut statuses = Vec::new();
    if old_status.is_none() {
        let events = change.pointer("/NewImage/events/L").and_then(Value::as_array);
        for event in events.into_iter().flatten() {
            let name = text(event, &["M", "event", "S"]);
            if let Some(name) = name.filter(|name| *name != new_status) {
                statuses.push(name);
            }
        }
    }
    statuses.push(new_status);
    let counters = statuses.into_iter().map(|status| format!("{prefix}_{status}")).collect();
    Some(((app, day), counters))
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
