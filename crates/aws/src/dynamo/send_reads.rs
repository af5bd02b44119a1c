//! The notification items send read, held until it writes their delivery's outcome.
//!
//! Send reads a notification that keeps its one delivery inside its item (inline.rs)
//! before it sends, and writes the outcome after. That write is conditional on the item
//! as read (the delivery's version, the status, the counts), so it may use the read
//! made before the send instead of reading again: a read gone stale meanwhile fails the
//! condition, and the write reads again, strongly. Half a read unit saved per email.

use super::items::Item;
use herald_core::domain::DeliveryId;
use std::collections::HashMap;
use std::sync::Mutex;

/// Reads held at most: a send that never writes its outcome (its process stopped, or
/// its attempt failed and comes back later) leaves its read here until the next clear.
const HELD: usize = 4096;

#[derive(Default)]
pub(super) struct SendReads {
    items: Mutex<HashMap<DeliveryId, Item>>,
}

impl SendReads {
    /// Holds `notification` as read for sending delivery `id`.
    pub(super) fn hold(&self, id: &DeliveryId, notification: &Item) {
        let mut items = self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if items.len() >= HELD {
            items.clear();
        }
        items.insert(id.clone(), notification.clone());
    }

    /// The read held for delivery `id`, which is then no longer held.
    pub(super) fn take(&self, id: &DeliveryId) -> Option<Item> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_taken_once_and_the_held_reads_stay_bounded() {
        let reads = SendReads::default();
        let first = DeliveryId::new();
        reads.hold(&first, &Item::new());
        assert!(reads.take(&first).is_some());
        assert!(reads.take(&first).is_none(), "taken once");
        for _ in 0..HELD + 1 {
            reads.hold(&DeliveryId::new(), &Item::new());
        }
        assert!(reads.items.lock().unwrap().len() <= HELD);
    }
}
