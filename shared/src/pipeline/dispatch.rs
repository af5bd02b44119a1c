//! Dispatch: expire or fan a notification out into one delivery per (recipient, channel)
//! and queue each on its channel. Safe to run twice for the same notification: delivery
//! ids are derived, inserts skip existing rows and queueing is deduplicated.

use super::send_job;
use crate::domain::{
    Channel, Delivery, DeliveryId, DeliveryStatus, Notification, NotificationId,
    NotificationStatus, Recipient, Routing,
};
use crate::ports::{Store, StoreError};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchOutcome {
    Dispatched {
        queued: usize,
        suppressed: usize,
    },
    Expired,
    /// Canceled, already dispatched, or gone: nothing to do.
    Skipped,
}

pub async fn dispatch(
    store: &dyn Store,
    id: &NotificationId,
    now: DateTime<Utc>,
) -> Result<DispatchOutcome, StoreError> {
    let Some(notification) = store.notification(id).await? else {
        return Ok(DispatchOutcome::Skipped);
    };
    if notification.status != NotificationStatus::Accepted {
        return Ok(DispatchOutcome::Skipped);
    }
    if notification.is_expired_at(now) {
        let detail = Some("expires_at passed before dispatch".to_owned());
        store.transition_notification(id, NotificationStatus::Expired, detail).await?;
        return Ok(DispatchOutcome::Expired);
    }
    let deliveries = plan_deliveries(&notification, now);
    let jobs: Vec<_> = deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Queued)
        .map(|d| send_job(&d.id, d.channel, notification.priority))
        .collect();
    let queued = jobs.len();
    store.record_dispatch(id, &deliveries, jobs).await?;
    Ok(DispatchOutcome::Dispatched { queued, suppressed: deliveries.len() - queued })
}

/// The deliveries a notification starts with. With `all` routing, one per recipient and
/// channel; with `fallback`, per recipient the first channel it has an address for
/// (channels skipped on the way are recorded as suppressed, so the timeline says why).
pub fn plan_deliveries(notification: &Notification, now: DateTime<Utc>) -> Vec<Delivery> {
    let mut planned = Vec::new();
    for (index, recipient) in notification.to.iter().enumerate() {
        for &channel in &notification.channels {
            let delivery = new_delivery(notification, index, recipient, channel, now);
            let queued = delivery.status == DeliveryStatus::Queued;
            planned.push(delivery);
            if queued && notification.routing == Routing::Fallback {
                break;
            }
        }
    }
    planned
}

/// The next delivery to try when one fails under `fallback` routing, if any channel is
/// left that the recipient has an address for.
pub fn next_fallback(
    notification: &Notification,
    failed: &Delivery,
    now: DateTime<Utc>,
) -> Option<Delivery> {
    if notification.routing != Routing::Fallback {
        return None;
    }
    let recipient = notification.to.get(failed.recipient_index)?;
    let position = notification.channels.iter().position(|c| *c == failed.channel)?;
    notification.channels[position + 1..]
        .iter()
        .map(|&channel| new_delivery(notification, failed.recipient_index, recipient, channel, now))
        .find(|d| d.status == DeliveryStatus::Queued)
}

fn new_delivery(
    notification: &Notification,
    index: usize,
    recipient: &Recipient,
    channel: Channel,
    now: DateTime<Utc>,
) -> Delivery {
    let address = recipient.address_for(channel);
    let (status, reason) = match address {
        Some(_) => (DeliveryStatus::Queued, None),
        None => (DeliveryStatus::Suppressed, Some("no_address".to_owned())),
    };
    Delivery {
        id: DeliveryId::derive(&notification.id, index, channel.as_str()),
        notification_id: notification.id.clone(),
        recipient_index: index,
        channel,
        // A suppressed delivery keeps the recipient's first address for reference.
        address: address.unwrap_or_else(|| first_address(recipient)),
        status,
        attempts: 0,
        provider: None,
        provider_message_id: None,
        reason,
        created_at: now,
        updated_at: now,
    }
}

fn first_address(recipient: &Recipient) -> crate::domain::Address {
    Channel::ALL
        .into_iter()
        .find_map(|c| recipient.address_for(c))
        .expect("validated recipients have at least one address")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::WebhookTarget;
    use crate::domain::{EmailAddress, Priority, WebhookUrl};

    fn notification(routing: Routing, to: Vec<Recipient>) -> Notification {
        Notification {
            to,
            routing,
            channels: vec![Channel::Webhook, Channel::Email],
            ..crate::contract::notification("app", Priority::Medium)
        }
    }

    fn email_only() -> Recipient {
        Recipient {
            email: Some(EmailAddress::parse("ann@example.com").unwrap()),
            phone: None,
            webhook: None,
        }
    }

    fn both() -> Recipient {
        Recipient {
            webhook: Some(WebhookTarget {
                url: WebhookUrl::parse("https://example.com/h").unwrap(),
            }),
            ..email_only()
        }
    }

    #[test]
    fn all_routing_makes_one_delivery_per_recipient_and_channel() {
        let n = notification(Routing::All, vec![both(), email_only()]);
        let planned = plan_deliveries(&n, Utc::now());
        let statuses: Vec<_> =
            planned.iter().map(|d| (d.recipient_index, d.channel, d.status)).collect();
        assert_eq!(
            statuses,
            vec![
                (0, Channel::Webhook, DeliveryStatus::Queued),
                (0, Channel::Email, DeliveryStatus::Queued),
                (1, Channel::Webhook, DeliveryStatus::Suppressed),
                (1, Channel::Email, DeliveryStatus::Queued),
            ]
        );
        assert_eq!(planned[2].reason.as_deref(), Some("no_address"));
    }

    #[test]
    fn fallback_routing_starts_with_the_first_reachable_channel() {
        let n = notification(Routing::Fallback, vec![both(), email_only()]);
        let planned = plan_deliveries(&n, Utc::now());
        let statuses: Vec<_> =
            planned.iter().map(|d| (d.recipient_index, d.channel, d.status)).collect();
        assert_eq!(
            statuses,
            vec![
                (0, Channel::Webhook, DeliveryStatus::Queued),
                (1, Channel::Webhook, DeliveryStatus::Suppressed),
                (1, Channel::Email, DeliveryStatus::Queued),
            ]
        );
        let next = next_fallback(&n, &planned[0], Utc::now()).unwrap();
        assert_eq!((next.recipient_index, next.channel), (0, Channel::Email));
        assert!(next_fallback(&n, &planned[2], Utc::now()).is_none());
    }

    #[test]
    fn planning_twice_gives_the_same_deliveries() {
        let n = notification(Routing::All, vec![both()]);
        let a: Vec<_> = plan_deliveries(&n, Utc::now()).into_iter().map(|d| d.id).collect();
        let b: Vec<_> = plan_deliveries(&n, Utc::now()).into_iter().map(|d| d.id).collect();
        assert_eq!(a, b);
    }
}
