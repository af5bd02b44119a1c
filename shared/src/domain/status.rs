//! Status state machines. Every change of status goes through `can_become`, and the
//! stores apply a change only if the stored status is still one it may come from, so an
//! illegal transition is rejected even when two workers race.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

macro_rules! status_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown status '{other}'")),
                }
            }
        }
    };
}

status_enum!(NotificationStatus {
    Accepted => "accepted",
    Dispatched => "dispatched",
    Sent => "sent",
    Failed => "failed",
    Canceled => "canceled",
    Expired => "expired",
});

impl NotificationStatus {
    /// `accepted → dispatched → sent | failed`; `accepted | dispatched → canceled |
    /// expired`. A dispatched notification is `sent` once any delivery was sent and none
    /// is pending, `failed` once all are final and none was sent.
    pub fn can_become(self, next: NotificationStatus) -> bool {
        use NotificationStatus::*;
        matches!(
            (self, next),
            (Accepted, Dispatched | Canceled | Expired)
                | (Dispatched, Sent | Failed | Canceled | Expired)
        )
    }

    pub fn is_final(self) -> bool {
        !matches!(self, NotificationStatus::Accepted | NotificationStatus::Dispatched)
    }

    /// The statuses a notification may be in for a move to `next` to be legal.
    pub fn predecessors(next: NotificationStatus) -> Vec<NotificationStatus> {
        Self::ALL.iter().copied().filter(|s| s.can_become(next)).collect()
    }
}

status_enum!(DeliveryStatus {
    Queued => "queued",
    Sent => "sent",
    Delivered => "delivered",
    Failed => "failed",
    Bounced => "bounced",
    Suppressed => "suppressed",
    Expired => "expired",
    Canceled => "canceled",
});

impl DeliveryStatus {
    /// `queued → sent → delivered | bounced`; `queued → failed | suppressed | expired |
    /// canceled`; `delivered → bounced` (a late bounce report).
    pub fn can_become(self, next: DeliveryStatus) -> bool {
        use DeliveryStatus::*;
        matches!(
            (self, next),
            (Queued, Sent | Failed | Suppressed | Expired | Canceled)
                | (Sent, Delivered | Bounced)
                | (Delivered, Bounced)
        )
    }

    /// Whether the send stage has nothing left to do for a delivery in this status.
    pub fn is_settled(self) -> bool {
        self != DeliveryStatus::Queued
    }

    pub fn reached_recipient(self) -> bool {
        matches!(self, DeliveryStatus::Sent | DeliveryStatus::Delivered)
    }

    pub fn predecessors(next: DeliveryStatus) -> Vec<DeliveryStatus> {
        Self::ALL.iter().copied().filter(|s| s.can_become(next)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_transitions() {
        use NotificationStatus::*;
        assert!(Accepted.can_become(Dispatched));
        assert!(Dispatched.can_become(Sent));
        assert!(!Sent.can_become(Accepted));
        assert!(!Canceled.can_become(Dispatched));
        assert!(!Accepted.can_become(Sent), "must be dispatched first");
        for s in NotificationStatus::ALL {
            assert!(!s.can_become(*s), "{s} -> {s} is not a transition");
            if s.is_final() {
                assert!(NotificationStatus::ALL.iter().all(|n| !s.can_become(*n)));
            }
        }
        assert_eq!(NotificationStatus::predecessors(Canceled), vec![Accepted, Dispatched]);
    }

    #[test]
    fn delivery_transitions() {
        use DeliveryStatus::*;
        assert!(Queued.can_become(Sent));
        assert!(Sent.can_become(Delivered));
        assert!(!Sent.can_become(Queued));
        assert!(!Failed.can_become(Sent));
        assert!(!Suppressed.can_become(Sent));
        assert_eq!(DeliveryStatus::predecessors(Sent), vec![Queued]);
    }

    #[test]
    fn statuses_round_trip_as_text() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>().unwrap(), *s);
        }
    }
}
