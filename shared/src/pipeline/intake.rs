//! Intake: store the notification as `accepted` and queue it by priority for dispatch;
//! or, when every recipient is a direct address, plan its deliveries at once and queue
//! their sends (see `acceptance`).

use super::plan::plan_deliveries;
use super::{delivery_job, dispatch_job};
use crate::domain::{DeliveryStatus, Notification, NotificationId, NotificationStatus, Recipient};
use crate::ports::{AcceptOutcome, Acceptance, IdempotencyClaim, QueueProducer, Store, StoreError};
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("this Idempotency-Key was already used with a different request body")]
    KeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub id: NotificationId,
    pub status: NotificationStatus,
    /// True when an idempotent repeat returned an earlier notification.
    pub replayed: bool,
}

/// What to store for a new notification. One whose recipients are all direct
/// addresses needs nothing looked up, so its deliveries are planned here and stored
/// with it (as `dispatched`), and their send messages go out instead of a dispatch
/// message: a stage, a queue message and a write fewer. Users and groups (whose
/// identities and preferences dispatch reads) and a notification already past its
/// expiry go through dispatch.
pub fn acceptance(
    mut notification: Notification,
    claim: Option<IdempotencyClaim>,
    now: DateTime<Utc>,
) -> Acceptance {
    if notification.to.iter().any(Recipient::is_indirect) || notification.is_expired_at(now) {
        let outbox = vec![dispatch_job(&notification.id, notification.priority)];
        return Acceptance::new(notification).with_claim(claim).with_outbox(outbox);
    }
    let deliveries = plan_deliveries(&notification, now);
    let outbox = deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Queued)
        .map(|d| delivery_job(d, notification.priority, now))
        .collect();
    notification.status = NotificationStatus::Dispatched;
    Acceptance { notification, claim, deliveries, outbox }
}

pub async fn accept(
    store: &dyn Store,
    notification: Notification,
    claim: Option<IdempotencyClaim>,
) -> Result<Accepted, IntakeError> {
    let id = notification.id.clone();
    let outcome = store.accept(acceptance(notification, claim, Utc::now())).await?;
    accepted(id, outcome)
}

/// `accept` for many notifications (the batch endpoint), at most `in_flight` at once;
/// one result per item, in order.
pub async fn accept_many(
    store: &dyn Store,
    items: Vec<(Notification, Option<IdempotencyClaim>)>,
    in_flight: usize,
) -> Vec<Result<Accepted, IntakeError>> {
    let ids: Vec<NotificationId> = items.iter().map(|(n, _)| n.id.clone()).collect();
    let now = Utc::now();
    let acceptances = items
        .into_iter()
        .map(|(notification, claim)| acceptance(notification, claim, now))
        .collect();
    let outcomes = store.accept_many(acceptances, in_flight).await;
    ids.into_iter().zip(outcomes).map(|(id, outcome)| accepted(id, outcome?)).collect()
}

fn accepted(id: NotificationId, outcome: AcceptOutcome) -> Result<Accepted, IntakeError> {
    match outcome {
        AcceptOutcome::Created => {
            Ok(Accepted { id, status: NotificationStatus::Accepted, replayed: false })
        }
        // The first response said `accepted`; a repeat says the same.
        AcceptOutcome::Replayed(id) => {
            Ok(Accepted { id, status: NotificationStatus::Accepted, replayed: true })
        }
        AcceptOutcome::KeyReused => Err(IntakeError::KeyReused),
    }
}

/// Queues again the notifications a crash left `accepted` without a queue message (the
/// process died between storing and queueing). Queueing is deduplicated and dispatch is
/// idempotent, so queueing one that was not stranded is harmless.
pub async fn requeue_stranded(
    store: &dyn Store,
    queue: &dyn QueueProducer,
    before: DateTime<Utc>,
) -> Result<usize, StoreError> {
    const PAGE: usize = 500;
    let mut total = 0;
    let mut after: Option<NotificationId> = None;
    loop {
        let stranded = store.stranded_notifications(before, after.as_ref(), PAGE).await?;
        let count = stranded.len();
        after = stranded.last().map(|n| n.id.clone());
        let jobs = stranded.iter().map(|n| dispatch_job(&n.id, n.priority)).collect();
        queue.enqueue(jobs).await?;
        total += count;
        if count < PAGE {
            return Ok(total);
        }
    }
}
