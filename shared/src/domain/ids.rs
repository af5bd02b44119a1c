//! Time-sortable identifiers with a type prefix (`ntf_…`, `dlv_…`).
//!
//! The body is a ULID, so ids sort by creation time and the prefix tells a reader at a
//! glance what kind of object an id names.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Mutex;
use ulid::{Generator, Ulid};

/// ULIDs from one process that share a millisecond still sort in creation order, so
/// "newest first" lists are exact.
pub fn monotonic_ulid() -> Ulid {
    static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // On overflow of the random part within one millisecond, fall back to a fresh ULID.
    generator.get_or_insert_with(Generator::new).generate().unwrap_or_else(|_| Ulid::new())
}

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                Self(monotonic_ulid())
            }

            pub fn ulid(&self) -> Ulid {
                self.0
            }

            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                let body = text
                    .strip_prefix(concat!($prefix, "_"))
                    .ok_or(InvalidId { expected: $prefix })?;
                Ulid::from_string(body).map(Self).map_err(|_| InvalidId { expected: $prefix })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

prefixed_id!(NotificationId, "ntf");

/// The top bits of a notification id's random part name its app; the 64 below them
/// stay the monotonic generator's.
const SEQUENCE_BITS: u32 = 64;

impl NotificationId {
    /// A new id for a notification of `app`: its random part starts with the app's tag
    /// (`app_tag`), as Instagram's ids carry their shard. A store that keeps an app's
    /// notifications together (DynamoDB: the app's list is the table's own partitions,
    /// with no index entry to write) finds one from its id alone. Ids of one app still
    /// sort in creation order: the 64 bits below the tag count up within a millisecond
    /// (they would wrap only after 2^64 ids in one).
    pub fn for_app(app: &str) -> Self {
        let ulid = monotonic_ulid();
        let sequence = ulid.random() & ((1u128 << SEQUENCE_BITS) - 1);
        let tag = u128::from(app_tag(app)) << SEQUENCE_BITS;
        Self(Ulid::from_parts(ulid.timestamp_ms(), tag | sequence))
    }

    /// The app tag this id was made with (meaningful for ids made by `for_app`).
    pub fn app_tag(&self) -> u16 {
        (self.0.random() >> SEQUENCE_BITS) as u16
    }
}

/// An app's 16-bit tag: the first two bytes of SHA-256 of its id. Stable for good:
/// stored ids carry it. Two apps may share a tag; a store that groups by tag still
/// tells them apart by the app recorded with each notification.
pub fn app_tag(app: &str) -> u16 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(app.as_bytes());
    u16::from_be_bytes([digest[0], digest[1]])
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("not a valid {expected}_ id")]
pub struct InvalidId {
    pub expected: &'static str,
}

/// A delivery's id: `dlv_{notification ULID}_{recipient index}_{channel}`.
///
/// Derived, not random: dispatch may run twice for the same notification (a crash or
/// a queue redelivery) and must then produce the same deliveries, never new ones. It
/// names its notification, so a store can keep a delivery beside its notification and
/// find it from the id alone (DynamoDB: one partition per notification), and
/// deliveries sort by time, then recipient.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeliveryId {
    notification: Ulid,
    recipient_index: u64,
    channel: String,
}

impl DeliveryId {
    pub const PREFIX: &'static str = "dlv";

    /// The id of the delivery for one (recipient, channel) pair of a notification.
    pub fn derive(notification: &NotificationId, recipient_index: usize, channel: &str) -> Self {
        Self {
            notification: notification.ulid(),
            recipient_index: recipient_index as u64,
            channel: channel.to_owned(),
        }
    }

    /// An id that names no delivery yet (of a new notification).
    pub fn new() -> Self {
        Self::derive(&NotificationId::new(), 0, "email")
    }

    pub fn notification_id(&self) -> NotificationId {
        NotificationId(self.notification)
    }

    /// The notification's ULID: deliveries sort by their notification's time.
    pub fn ulid(&self) -> Ulid {
        self.notification
    }

    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let invalid = InvalidId { expected: Self::PREFIX };
        let body = text.strip_prefix("dlv_").ok_or(invalid.clone())?;
        let mut parts = body.splitn(3, '_');
        let (Some(ulid), Some(index), Some(channel)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid);
        };
        let canonical_index = !index.is_empty() && (index == "0" || !index.starts_with('0'));
        let channel_ok = !channel.is_empty()
            && channel.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !canonical_index || !channel_ok {
            return Err(invalid);
        }
        Ok(Self {
            notification: Ulid::from_string(ulid).map_err(|_| invalid.clone())?,
            recipient_index: index.parse().map_err(|_| invalid)?,
            channel: channel.to_owned(),
        })
    }
}

impl Default for DeliveryId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dlv_{}_{}_{}", self.notification, self.recipient_index, self.channel)
    }
}

impl fmt::Debug for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TryFrom<String> for DeliveryId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DeliveryId> for String {
    fn from(id: DeliveryId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = NotificationId::new();
        let text = id.to_string();
        assert!(text.starts_with("ntf_"));
        assert_eq!(NotificationId::parse(&text).unwrap(), id);
    }

    #[test]
    fn an_apps_ids_carry_its_tag_and_still_sort_in_creation_order() {
        // Pinned: stored ids carry the tag, so it must never change.
        assert_eq!(app_tag("default"), 0x37a8);
        assert_ne!(app_tag("shop"), app_tag("bank"));
        let mut ids = Vec::new();
        for _ in 0..1000 {
            // Another app's ids in between must not disturb this app's order.
            let _ = NotificationId::for_app("bank");
            ids.push(NotificationId::for_app("shop"));
        }
        assert!(ids.iter().all(|id| id.app_tag() == app_tag("shop")));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let text = ids[0].to_string();
        assert_eq!(NotificationId::parse(&text).unwrap().app_tag(), app_tag("shop"));
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<_> = (0..1000).map(|_| NotificationId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn wrong_prefix_is_rejected() {
        let id = NotificationId::new().to_string();
        assert!(DeliveryId::parse(&id).is_err());
        assert!(NotificationId::parse("ntf_not-a-ulid").is_err());
    }

    #[test]
    fn derived_delivery_ids_are_stable_and_distinct() {
        let n = NotificationId::new();
        let a = DeliveryId::derive(&n, 0, "email");
        assert_eq!(a, DeliveryId::derive(&n, 0, "email"));
        assert_ne!(a, DeliveryId::derive(&n, 1, "email"));
        assert_ne!(a, DeliveryId::derive(&n, 0, "webhook"));
        assert_eq!(a.notification_id(), n);
    }

    #[test]
    fn delivery_ids_round_trip_and_name_their_notification() {
        let n = NotificationId::new();
        let id = DeliveryId::derive(&n, 12, "web_push");
        let text = id.to_string();
        assert_eq!(text, format!("dlv_{}_12_web_push", n.ulid()));
        assert_eq!(DeliveryId::parse(&text).unwrap(), id);
        assert_eq!(DeliveryId::parse(&text).unwrap().notification_id(), n);
        for bad in [
            "dlv_",
            "dlv_x_0_email",
            &format!("dlv_{}_01_email", n.ulid()),
            &format!("dlv_{}_0_", n.ulid()),
            &format!("dlv_{}_0_E-mail", n.ulid()),
        ] {
            assert!(DeliveryId::parse(bad).is_err(), "{bad}");
        }
    }
}
