//! Deliveries planned at intake, kept out of the table until they first change.
//!
//! A notification to addresses has its deliveries planned when it is accepted
//! (`herald_core::pipeline::intake::acceptance`). Writing each of them as an item, only
//! for the send to rewrite it moments later, cost a write unit per delivery. Instead the
//! notification's item records how many there are (`planned`), and their items are
//! derived from the notification whenever they are read: the plan is a pure function of
//! the notification (delivery ids are derived from notification, recipient and channel;
//! dispatch already relies on that to make a redelivered plan write nothing twice). A
//! planned delivery is written whole, as a conditional put, at its first change.
//!
//! A derived item is exactly the item the delivery would have had if written at intake,
//! timeline event included, so every reader decodes both alike. Its `queued` event
//! takes its place in the timeline from the notification's `dispatched` event: the same
//! time, and a sequence key just after it (`{seq}.{index}`), which sorts before any
//! event that happened later.

use super::inline::overlay;
use super::items::*;
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::pipeline::plan::plan_deliveries;
use herald_core::ports::{StoreError, StoreResult};

/// The notification item's count of deliveries planned at intake and not written as
/// items of their own (absent when dispatch wrote them).
pub(super) const PLANNED: &str = "planned";

/// Plans with more deliveries than this are written as items at intake, as before:
/// deriving a long plan on every read of one delivery would cost more than it saves.
pub(super) const MAX_DERIVED_PLAN: usize = 16;

/// The items of the deliveries `notification` (its item) had planned at intake, as
/// they would be if written then; empty if it has none.
pub(super) fn planned_items(notification: &Item) -> StoreResult<Vec<Item>> {
    let count = number(notification, PLANNED);
    if count <= 0 {
        return Ok(Vec::new());
    }
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} in DynamoDB"));
    let decoded = decode_notification(notification)?;
    let app = text(notification, "app_id")?;
    let planned = plan_deliveries(&decoded, decoded.created_at);
    if planned.len() as i64 != count {
        return Err(corrupt("planned deliveries"));
    }
    // The notification's own events: the plan's come right after `dispatched`.
    let (dispatched_seq, dispatched_at) = decode_events(notification)?
        .into_iter()
        .find(|(_, event)| {
            event.event == herald_core::domain::NotificationStatus::Dispatched.as_str()
        })
        .map(|(seq, event)| (seq, event.at))
        .ok_or_else(|| corrupt("planned notification's dispatched event"))?;
    let expires = notification.get(TTL).cloned().ok_or_else(|| corrupt(TTL))?;
    planned
        .into_iter()
        .enumerate()
        .map(|(index, mut delivery)| {
            delivery.created_at = dispatched_at;
            delivery.updated_at = dispatched_at;
            let mut item = delivery_item(&delivery, app, dispatched_at)?;
            item.insert(TTL.to_owned(), expires.clone());
            let event = event_value_at(
                Some(&delivery.id),
                delivery.status.as_str(),
                delivery.planned_detail().as_deref(),
                format!("{dispatched_seq}.{index:04}"),
                dispatched_at,
            );
            item.insert(EVENTS.to_owned(), AttributeValue::L(vec![event]));
            overlay(notification, &mut item); // A single delivery's changes (inline.rs).
            Ok(item)
        })
        .collect()
}

/// The derived item of the planned delivery with sort key `sk`, if there is one.
pub(super) fn planned_item(notification: &Item, sk: &str) -> StoreResult<Option<Item>> {
    Ok(planned_items(notification)?
        .into_iter()
        .find(|item| item.get(SK).and_then(|v| v.as_s().ok()).is_some_and(|v| v == sk)))
}

/// `items` (a notification's stored deliveries) with the planned ones not written yet.
pub(super) fn with_planned(
    notification: Option<&Item>,
    mut items: Vec<Item>,
) -> StoreResult<Vec<Item>> {
    let Some(notification) = notification else { return Ok(items) };
    let stored: std::collections::HashSet<String> =
        items.iter().filter_map(|item| item.get(SK).and_then(|v| v.as_s().ok()).cloned()).collect();
    for item in planned_items(notification)? {
        let sk = item.get(SK).and_then(|v| v.as_s().ok());
        if !sk.is_some_and(|sk| stored.contains(sk)) {
            items.push(item);
        }
    }
    Ok(items)
}
