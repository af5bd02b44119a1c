//! The pipeline stages, as plain async functions over the ports. Hosts (the local
//! server, the Lambda functions) only feed them.

pub mod dispatch;
pub mod feedback;
pub mod intake;
pub mod personalize;
pub mod plan;
pub mod receipts;
pub mod retry;
pub mod send;

use crate::domain::{DeliveryId, NotificationId, Priority};
use crate::ports::{Job, QueueName};
use std::time::Duration;

/// The message that asks dispatch to fan a notification out.
pub fn dispatch_job(id: &NotificationId, priority: Priority) -> Job {
    Job {
        queue: QueueName::Dispatch,
        priority,
        dedup_key: Some(id.to_string()),
        payload: id.to_string(),
        delay: Duration::ZERO,
    }
}

/// The message that asks a channel's sender to send one delivery.
pub fn send_job(id: &DeliveryId, channel: crate::domain::Channel, priority: Priority) -> Job {
    Job {
        queue: QueueName::Send(channel),
        priority,
        dedup_key: Some(id.to_string()),
        payload: id.to_string(),
        delay: Duration::ZERO,
    }
}

/// A send message after a failover: it names the integration the delivery moves to,
/// and has its own dedup key (the message it replaces may still be in flight).
pub fn failover_job(
    id: &DeliveryId,
    channel: crate::domain::Channel,
    priority: Priority,
    integration: &str,
) -> Job {
    let payload = format!("{id}@{integration}");
    Job { dedup_key: Some(payload.clone()), payload, ..send_job(id, channel, priority) }
}

/// A send message's delivery id and, after a failover, its integration.
pub fn parse_send_payload(payload: &str) -> Option<(DeliveryId, Option<String>)> {
    let (id, integration) = match payload.split_once('@') {
        Some((id, integration)) if !integration.is_empty() => (id, Some(integration.to_owned())),
        Some(_) => return None,
        None => (payload, None),
    };
    Some((DeliveryId::parse(id).ok()?, integration))
}

/// The send message for a planned delivery, held back until its `deliver_after`.
pub fn delivery_job(
    delivery: &crate::domain::Delivery,
    priority: Priority,
    now: chrono::DateTime<chrono::Utc>,
) -> Job {
    let mut job = send_job(&delivery.id, delivery.channel, priority);
    if let Some(after) = delivery.deliver_after {
        job.delay = (after - now).to_std().unwrap_or_default();
    }
    job
}
