//! Time-sortable identifiers with a type prefix (`ntf_…`, `dlv_…`).
//!
//! The body is a ULID, so ids sort by creation time and the prefix tells a reader at a
//! glance what kind of object an id names.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
prefixed_id!(DeliveryId, "dlv");

#[derive(Debug, Clone, thiserror::Error)]
#[error("not a valid {expected}_ id")]
pub struct InvalidId {
    pub expected: &'static str,
}

impl DeliveryId {
    /// The id of the delivery for one (recipient, channel) pair of a notification.
    ///
    /// Derived, not random: dispatch may run twice for the same notification (a crash or
    /// a queue redelivery) and must then produce the same deliveries, never new ones.
    /// It keeps the notification's timestamp so deliveries still sort by time.
    pub fn derive(notification: &NotificationId, recipient_index: usize, channel: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(notification.to_string().as_bytes());
        hasher.update((recipient_index as u64).to_be_bytes());
        hasher.update(channel.as_bytes());
        let digest = hasher.finalize();
        let mut random = [0u8; 16];
        random.copy_from_slice(&digest[..16]);
        let random = u128::from_be_bytes(random) & ((1u128 << 80) - 1);
        Self(Ulid::from_parts(notification.ulid().timestamp_ms(), random))
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
        assert_eq!(a.ulid().timestamp_ms(), n.ulid().timestamp_ms());
    }
}
