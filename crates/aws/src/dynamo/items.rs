//! How each record is laid out as a DynamoDB item (the key design is in infra/README.md).
//!
//! Attribute names are plain words; expressions alias them (see `expr`), so DynamoDB's
//! reserved words never bite.

use super::app_list::notification_partition;
use super::expr::{n, s};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use herald_core::auth::{ApiKeyRecord, Scope};
use herald_core::domain::{
    Delivery, DeliveryId, Notification, NotificationId, NotificationStatus, TimelineEvent,
};
use herald_core::ports::{StoreError, StoreResult};
use herald_core::time::{format_time, parse_time};
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "PK";
pub(super) const SK: &str = "SK";
pub(super) const GSI1PK: &str = "GSI1PK";
pub(super) const GSI1SK: &str = "GSI1SK";
/// Epoch seconds after which DynamoDB's TTL deletes the item.
pub(super) const TTL: &str = "expires_at_epoch";
/// The sort key of items that are alone in their partition.
pub(super) const SINGLE: &str = "#";

/// A notification's item sits in its app's list (app_list.rs), under `N#{id}`.
pub(super) fn notification_key(id: &NotificationId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(notification_partition(id))),
        (SK.to_owned(), s(format!("{NOTIFICATION_SK_PREFIX}{id}"))),
    ])
}

/// The sort key prefix of notification items.
pub(super) const NOTIFICATION_SK_PREFIX: &str = "N#";
/// The partition key prefix of an app's list (app_list.rs).
pub(super) const LIST_PK_PREFIX: &str = "L#";
/// The partition key prefix of a notification's deliveries and counts.
const DELIVERIES_PK_PREFIX: &str = "N#";

/// The partition of a notification's deliveries and counts item, apart from the
/// notification's own item (which is among its app's).
pub(super) fn deliveries_pk(id: &NotificationId) -> String {
    format!("{DELIVERIES_PK_PREFIX}{id}")
}

/// What an item is, told by its key alone (a stream record carries only the keys and
/// images): what `track` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Notification,
    Delivery,
}

pub(crate) fn record_kind(pk: &str, sk: &str) -> Option<RecordKind> {
    if pk.starts_with(LIST_PK_PREFIX) && sk.starts_with(NOTIFICATION_SK_PREFIX) {
        Some(RecordKind::Notification)
    } else if pk.starts_with(DELIVERIES_PK_PREFIX) && sk.starts_with(DELIVERY_SK_PREFIX) {
        Some(RecordKind::Delivery)
    } else {
        None
    }
}

/// A delivery lives in its notification's deliveries partition (its id names the
/// notification): they are one consistent query, with no index to write.
pub(super) fn delivery_key(id: &DeliveryId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(deliveries_pk(&id.notification_id()))),
        (SK.to_owned(), s(delivery_sk(id))),
    ])
}

pub(super) fn delivery_sk(id: &DeliveryId) -> String {
    format!("{DELIVERY_SK_PREFIX}{id}")
}

/// The sort key prefix of the delivery items in a notification's partition.
pub(super) const DELIVERY_SK_PREFIX: &str = "D#";

/// The sort key of a notification's counts item (`pending`, `reached`), kept apart from
/// the notification's own item when that is large and has many deliveries: each
/// delivery's count is an update, billed on the whole size of the item it changes.
pub(super) const COUNTS_SK: &str = "C";
/// Set on a notification's item whose counts live in its counts item.
pub(super) const COUNTS_APART: &str = "counts_apart";

pub(super) fn counts_key(id: &NotificationId) -> Item {
    HashMap::from([(PK.to_owned(), s(deliveries_pk(id))), (SK.to_owned(), s(COUNTS_SK))])
}

/// About an item's size by DynamoDB's rules (names and values in bytes, a number about
/// one byte per two digits, 3 bytes per list or map plus 1 per element): enough to
/// tell how many KB an update of it is billed.
pub(super) fn item_size(item: &Item) -> usize {
    fn value_size(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(text) => text.len(),
            AttributeValue::N(number) => number.len() / 2 + 1,
            AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
            AttributeValue::M(map) => {
                3 + map.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum::<usize>()
            }
            _ => 1,
        }
    }
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

pub(super) fn idempotency_pk(app: &str, key: &str) -> String {
    format!("I#{app}#{key}")
}

pub(super) fn api_key_pk(hash: &str) -> String {
    format!("K#{hash}")
}

pub(super) fn setting_pk(name: &str) -> String {
    format!("S#{name}")
}

/// The key of `item` (its `PK` and `SK`), to write it back.
pub(super) fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(name, _)| *name == PK || *name == SK)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(super) fn key(pk: String) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(SINGLE))])
}

pub(super) fn ttl(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} in DynamoDB"))
}

pub(super) fn text<'a>(item: &'a Item, attribute: &str) -> StoreResult<&'a str> {
    item.get(attribute)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(attribute))
}

pub(super) fn optional_text(item: &Item, attribute: &str) -> Option<String> {
    item.get(attribute).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn number(item: &Item, attribute: &str) -> i64 {
    item.get(attribute).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn time(item: &Item, attribute: &str) -> StoreResult<DateTime<Utc>> {
    parse_time(text(item, attribute)?).ok_or_else(|| corrupt(attribute))
}

/// The keys of a notification's JSON that its item keeps elsewhere (its key, or an
/// attribute of its own), left out of `body` to keep the item small: an update is
/// billed on the item's whole size, by the KB.
const KEPT_APART: [&str; 4] = ["id", "app_id", "status", "updated_at"];

pub(super) fn notification_item(n: &Notification, expires: DateTime<Utc>) -> StoreResult<Item> {
    let mut item = notification_key(&n.id);
    let mut body = serde_json::to_value(n)?;
    if let Some(body) = body.as_object_mut() {
        for name in KEPT_APART {
            body.remove(name);
        }
    }
    // Priority, channels, category and creation time are read from `body` alone.
    item.extend([
        ("body".to_owned(), s(body.to_string())),
        ("status".to_owned(), s(n.status.as_str())),
        ("app_id".to_owned(), s(&n.app_id)),
        ("updated_at".to_owned(), s(format_time(n.updated_at))),
        (TTL.to_owned(), ttl(expires)),
    ]);
    // Planned at intake, it is stored `dispatched`: both steps are in its timeline.
    let mut events = vec![event_value(None, NotificationStatus::Accepted.as_str(), None)];
    if n.status != NotificationStatus::Accepted {
        events.push(event_value(None, n.status.as_str(), None));
    }
    item.insert(EVENTS.to_owned(), AttributeValue::L(events));
    Ok(item)
}

pub(super) fn decode_notification(item: &Item) -> StoreResult<Notification> {
    let mut body: serde_json::Value = serde_json::from_str(text(item, "body")?)?;
    let body_map = body.as_object_mut().ok_or_else(|| corrupt("notification body"))?;
    let id = text(item, SK)?.trim_start_matches(NOTIFICATION_SK_PREFIX);
    for (name, value) in [
        ("id", id),
        ("app_id", text(item, "app_id")?),
        ("status", text(item, "status")?),
        ("updated_at", text(item, "updated_at")?),
    ] {
        // An item written before these left `body` has them there too.
        body_map.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
    }
    Ok(serde_json::from_value(body)?)
}

/// A delivery carries its notification's app, so the stream can count it per app.
pub(super) fn delivery_item(d: &Delivery, app: &str, expires: DateTime<Utc>) -> StoreResult<Item> {
    let mut item = delivery_key(&d.id);
    item.extend([
        ("notification_id".to_owned(), s(d.notification_id.to_string())),
        ("app_id".to_owned(), s(app)),
        ("recipient_index".to_owned(), n(d.recipient_index as i64)),
        ("channel".to_owned(), s(d.channel.as_str())),
        ("address".to_owned(), s(serde_json::to_string(&d.address)?)),
        ("status".to_owned(), s(d.status.as_str())),
        ("attempts".to_owned(), n(d.attempts as i64)),
        ("created_at".to_owned(), s(format_time(d.created_at))),
        ("updated_at".to_owned(), s(format_time(d.updated_at))),
        (TTL.to_owned(), ttl(expires)),
        (
            EVENTS.to_owned(),
            AttributeValue::L(vec![event_value(
                Some(&d.id),
                d.status.as_str(),
                d.planned_detail().as_deref(),
            )]),
        ),
    ]);
    for (name, value) in [
        ("provider", &d.provider),
        ("provider_message_id", &d.provider_message_id),
        ("reason", &d.reason),
        ("integration", &d.integration),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(user) = &d.user {
        item.insert("user".to_owned(), s(serde_json::to_string(user)?));
    }
    if let Some(at) = d.deliver_after {
        item.insert("deliver_after".to_owned(), s(format_time(at)));
    }
    Ok(item)
}

pub(super) fn decode_delivery(item: &Item) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: DeliveryId::parse(text(item, SK)?.trim_start_matches(DELIVERY_SK_PREFIX))
            .map_err(|_| corrupt("delivery id"))?,
        notification_id: NotificationId::parse(text(item, "notification_id")?)
            .map_err(|_| corrupt("notification id"))?,
        recipient_index: number(item, "recipient_index") as usize,
        channel: text(item, "channel")?.parse().map_err(|_| corrupt("channel"))?,
        address: serde_json::from_str(text(item, "address")?)?,
        status: text(item, "status")?.parse().map_err(|_| corrupt("status"))?,
        attempts: number(item, "attempts") as u32,
        provider: optional_text(item, "provider"),
        provider_message_id: optional_text(item, "provider_message_id"),
        integration: optional_text(item, "integration"),
        reason: optional_text(item, "reason"),
        user: optional_text(item, "user").map(|u| serde_json::from_str(&u)).transpose()?,
        deliver_after: optional_text(item, "deliver_after")
            .map(|at| parse_time(&at).ok_or_else(|| corrupt("deliver_after")))
            .transpose()?,
        created_at: time(item, "created_at")?,
        updated_at: time(item, "updated_at")?,
    })
}

/// The attribute that holds an item's own timeline events, oldest first: a
/// notification's own, or one delivery's. Keeping them inside the record they describe
/// makes every status change one write instead of two.
pub(super) const EVENTS: &str = "events";

/// One timeline event as a list element. `seq` is a monotonic ULID, so the events of a
/// notification and of its deliveries merge back into the order they happened in.
pub(super) fn event_value(
    delivery: Option<&DeliveryId>,
    event: &str,
    detail: Option<&str>,
) -> AttributeValue {
    let seq = herald_core::domain::ids::monotonic_ulid().to_string();
    event_value_at(delivery, event, detail, seq, Utc::now())
}

/// `event_value` with its sequence key and time given (a planned delivery's event,
/// derived again on every read, must come out the same each time).
pub(super) fn event_value_at(
    delivery: Option<&DeliveryId>,
    event: &str,
    detail: Option<&str>,
    seq: String,
    at: DateTime<Utc>,
) -> AttributeValue {
    let mut map = HashMap::from([
        ("seq".to_owned(), s(seq)),
        ("event".to_owned(), s(event)),
        ("at".to_owned(), s(format_time(at))),
    ]);
    if let Some(delivery) = delivery {
        map.insert("delivery_id".to_owned(), s(delivery.to_string()));
    }
    if let Some(detail) = detail {
        map.insert("detail".to_owned(), s(detail));
    }
    AttributeValue::M(map)
}

/// An item's events with their sequence keys.
pub(super) fn decode_events(item: &Item) -> StoreResult<Vec<(String, TimelineEvent)>> {
    let Some(AttributeValue::L(list)) = item.get(EVENTS) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|value| {
            let event = value.as_m().map_err(|_| corrupt("timeline event"))?;
            Ok((
                text(event, "seq")?.to_owned(),
                TimelineEvent {
                    at: time(event, "at")?,
                    event: text(event, "event")?.to_owned(),
                    delivery_id: optional_text(event, "delivery_id")
                        .and_then(|d| DeliveryId::parse(&d).ok()),
                    detail: optional_text(event, "detail"),
                },
            ))
        })
        .collect()
}

pub(super) fn api_key_item(key: &ApiKeyRecord) -> Item {
    let mut item = self::key(api_key_pk(&key.hash));
    let scopes = key.scopes.iter().map(|scope| s(scope.as_str())).collect();
    item.extend([
        ("key_id".to_owned(), s(&key.id)),
        ("app_id".to_owned(), s(&key.app_id)),
        ("name".to_owned(), s(&key.name)),
        ("hash".to_owned(), s(&key.hash)),
        ("scopes".to_owned(), AttributeValue::L(scopes)),
        ("created_at".to_owned(), s(format_time(key.created_at))),
    ]);
    item
}

pub(super) fn decode_api_key(item: &Item) -> StoreResult<ApiKeyRecord> {
    let scopes = match item.get("scopes") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| {
                v.as_s().ok().and_then(|s| s.parse::<Scope>().ok()).ok_or_else(|| corrupt("scope"))
            })
            .collect::<StoreResult<_>>()?,
        _ => Vec::new(),
    };
    Ok(ApiKeyRecord {
        id: text(item, "key_id")?.to_owned(),
        app_id: text(item, "app_id")?.to_owned(),
        name: text(item, "name")?.to_owned(),
        hash: text(item, "hash")?.to_owned(),
        scopes,
        created_at: time(item, "created_at")?,
    })
}
