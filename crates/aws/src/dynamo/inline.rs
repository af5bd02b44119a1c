//! A notification's one planned delivery, kept inside the notification's own item.
//!
//! Most notifications go to one address: one delivery, planned at intake and derived
//! from the notification (planned.rs). Written as an item of its own at its `sent`, it
//! cost a put, and the notification's settle a second write, and send read both items.
//! Kept inside the notification's item instead (`delivery`, a map of what changed since
//! the plan), its `sent` and the notification's settle are one conditional update, and
//! send reads one item. The map holds only the delivery's changed attributes and its
//! events after the planned one, because an update is billed on the item's larger size,
//! before or after it.
//!
//! Each change adds one to the map's version (`v`), and is conditional on the version
//! read: the map is only ever changed whole, by a writer that saw the one before it.

use super::expr::{n, s};
use super::items::*;
use super::planned::PLANNED;
use aws_sdk_dynamodb::types::AttributeValue;

/// The notification item's attribute that holds its one delivery's changes.
pub(super) const INLINE: &str = "delivery";
/// The inline map's version: 1 at the first change, one more at each.
pub(super) const VERSION: &str = "v";
/// The status the delivery was planned in: where a count of its changes starts
/// (`track`), as a new delivery item's timeline does.
pub(super) const FIRST: &str = "first";
/// The delivery's attributes a change may set; the rest derive from the notification.
const CHANGEABLE: [&str; 7] = [
    "status",
    "attempts",
    "updated_at",
    "provider",
    "provider_message_id",
    "reason",
    "integration",
];

/// Set on the item of a notification written to keep its one planned delivery inside.
/// One written before (still in flight across the upgrade that brought this) may have
/// written that delivery as an item of its own, so it goes on doing so.
pub(super) const KEEPS_INLINE: &str = "inline";

/// Whether the notification (its item) keeps its planned delivery inside it: it
/// planned exactly one at intake, was written to (`KEEPS_INLINE`), and its counts live
/// in its own item. A fallback delivery, added later, is an item of its own.
pub(super) fn keeps_inline(notification: &Item) -> bool {
    number(notification, PLANNED) == 1
        && notification.contains_key(KEEPS_INLINE)
        && !notification.contains_key(COUNTS_APART)
}

/// Applies the changes the notification keeps to `derived`, its delivery as planned.
pub(super) fn overlay(notification: &Item, derived: &mut Item) {
    let Some(AttributeValue::M(state)) = notification.get(INLINE) else { return };
    for name in CHANGEABLE {
        derived.remove(name);
        if let Some(value) = state.get(name) {
            derived.insert(name.to_owned(), value.clone());
        }
    }
    // Each event names its delivery, which the map leaves out: it has one.
    let delivery_id = derived
        .get(SK)
        .and_then(|sk| sk.as_s().ok())
        .map(|sk| sk.trim_start_matches(DELIVERY_SK_PREFIX).to_owned());
    if let (Some(AttributeValue::L(events)), Some(AttributeValue::L(later)), Some(id)) =
        (derived.get_mut(EVENTS), state.get(EVENTS), delivery_id)
    {
        events.extend(later.iter().map(|event| match event {
            AttributeValue::M(event) => {
                let mut event = event.clone();
                event.insert(DELIVERY_ID.to_owned(), s(&id));
                AttributeValue::M(event)
            }
            other => other.clone(),
        }));
    }
}

/// The attribute of a timeline event that names its delivery.
const DELIVERY_ID: &str = "delivery_id";

/// The inline map's version in the notification's item; 0 before the first change.
pub(super) fn version(notification: &Item) -> i64 {
    match notification.get(INLINE) {
        Some(AttributeValue::M(state)) => number(state, VERSION),
        _ => 0,
    }
}

/// The map to keep for `changed` (the delivery's whole item after a change), as the
/// `version`-th change.
pub(super) fn state(changed: &Item, version: i64) -> AttributeValue {
    let mut state: Item = CHANGEABLE
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), changed.get(*name)?.clone())))
        .collect();
    let events = match changed.get(EVENTS) {
        Some(AttributeValue::L(events)) => events.as_slice(),
        _ => &[],
    };
    // The first event is the plan's, derived again on every read.
    let planned_status = events.first().and_then(|event| {
        let event = event.as_m().ok()?;
        event.get("event").cloned()
    });
    let later = events.iter().skip(1).map(|event| match event {
        AttributeValue::M(event) => {
            let mut event = event.clone();
            event.remove(DELIVERY_ID);
            AttributeValue::M(event)
        }
        other => other.clone(),
    });
    state.insert(EVENTS.to_owned(), AttributeValue::L(later.collect()));
    if let Some(first) = planned_status {
        state.insert(FIRST.to_owned(), first);
    }
    if let Some(channel) = changed.get("channel") {
        state.insert("channel".to_owned(), channel.clone());
    }
    state.insert(VERSION.to_owned(), n(version));
    AttributeValue::M(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> AttributeValue {
        AttributeValue::M(Item::from([
            ("event".to_owned(), s(name)),
            ("seq".to_owned(), s(format!("seq-{name}"))),
            (DELIVERY_ID.to_owned(), s("dlv_1")),
        ]))
    }

    #[test]
    fn a_kept_change_overlays_the_planned_item_exactly() {
        let planned: Item = Item::from([
            (SK.to_owned(), s("D#dlv_1")),
            ("status".to_owned(), s("queued")),
            ("attempts".to_owned(), n(0)),
            ("updated_at".to_owned(), s("t0")),
            ("channel".to_owned(), s("email")),
            ("address".to_owned(), s("\"a@example.com\"")),
            (EVENTS.to_owned(), AttributeValue::L(vec![event("queued")])),
        ]);
        let mut changed = planned.clone();
        changed.extend([
            ("status".to_owned(), s("sent")),
            ("attempts".to_owned(), n(1)),
            ("updated_at".to_owned(), s("t1")),
            ("provider".to_owned(), s("ses")),
        ]);
        if let Some(AttributeValue::L(events)) = changed.get_mut(EVENTS) {
            events.push(event("sent"));
        }
        let kept = state(&changed, 1);
        let kept_map = kept.as_m().unwrap();
        assert!(!kept_map.contains_key("address"), "only what changes is kept");
        assert_eq!(kept_map.get(FIRST), Some(&s("queued")));
        let Some(AttributeValue::L(events)) = kept_map.get(EVENTS) else { panic!("events") };
        let kept_event = events[0].as_m().unwrap();
        assert_eq!(kept_event.get("event"), Some(&s("sent")));
        assert!(!kept_event.contains_key(DELIVERY_ID), "it has one delivery");

        let notification = Item::from([(INLINE.to_owned(), kept)]);
        let mut read = planned;
        overlay(&notification, &mut read);
        assert_eq!(read, changed);
        assert_eq!(version(&notification), 1);
    }
}
