//! Send: hand one delivery to its channel's provider and record the outcome. A delivery
//! already settled is acknowledged without sending, so a queue redelivery never sends
//! twice; transient failures are retried with backoff and dead-lettered at the end.

use super::delivery_job;
use super::dispatch::{Directory, next_fallback};
use super::personalize::{PersonalizeError, Personalizer};
use super::plan::reason_to_hold_back;
use super::retry::RetryPolicy;
use crate::channels::{OutboundMessage, ProviderError, Providers};
use crate::domain::{Delivery, DeliveryId, DeliveryStatus, Notification, NotificationStatus};
use crate::ports::{DeliveryOutcome, LeasedJob, Queue, Store, StoreError};
use chrono::Utc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Already settled (a redelivery), canceled, or gone.
    Skipped,
    Expired,
    Retrying,
    /// Not due yet (quiet hours): the message comes back when it is.
    Deferred,
    Failed,
    DeadLettered,
}

pub struct SendContext<'a> {
    pub store: &'a dyn Store,
    pub queue: &'a dyn Queue,
    pub providers: &'a Providers,
    pub personalizer: &'a Personalizer,
    /// For fallback routing to a user: their identities and preferences now.
    pub directory: Directory<'a>,
    pub retry: RetryPolicy,
}

/// The longest a deferred delivery's message is hidden at once (SQS allows 12 hours);
/// a longer wait takes more than one step.
const MAX_DEFERRAL_STEP: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

pub async fn send(cx: &SendContext<'_>, job: &LeasedJob) -> Result<SendOutcome, StoreError> {
    let Ok(id) = DeliveryId::parse(&job.payload) else {
        cx.queue.dead_letter(job, "the message is not a delivery id").await?;
        return Ok(SendOutcome::DeadLettered);
    };
    let loaded = match cx.store.delivery(&id).await? {
        Some(delivery) if !delivery.status.is_settled() => {
            cx.store.notification(&delivery.notification_id).await?.map(|n| (delivery, n))
        }
        _ => None,
    };
    let Some((delivery, notification)) = loaded else {
        cx.queue.ack(std::slice::from_ref(job)).await?;
        return Ok(SendOutcome::Skipped);
    };
    if notification.status == NotificationStatus::Canceled {
        // A store whose delivery index lags (DynamoDB) may not have canceled it yet.
        cx.store
            .transition_delivery(&delivery.id, DeliveryStatus::Canceled, Default::default())
            .await?;
        cx.queue.ack(std::slice::from_ref(job)).await?;
        return Ok(SendOutcome::Skipped);
    }
    // A queue whose longest delay is shorter than the wait (SQS: 15 minutes) hands the
    // message over early; hide it again until the delivery is due.
    // Each time it comes back early costs a receive on SQS (ApproximateReceiveCount):
    // a night's wait is one or two of the attempts the retry policy allows.
    let now = Utc::now();
    if let Some(after) = delivery.deliver_after {
        // Never wait past expiry: the delivery then ends `expired` on time.
        let until = notification.expires_at.map_or(after, |expiry| expiry.min(after));
        if until > now {
            let wait = (until - now).to_std().unwrap_or_default().min(MAX_DEFERRAL_STEP);
            cx.queue.retry(job, wait, "deferred: quiet hours").await?;
            return Ok(SendOutcome::Deferred);
        }
        let d = cx.directory;
        let held_back = if notification.is_expired_at(now) {
            None // It ends `expired` below.
        } else {
            reason_to_hold_back(&notification, &delivery, d.users, d.preferences, now).await?
        };
        if let Some(reason) = held_back {
            let outcome = DeliveryOutcome { reason: Some(reason.into()), ..Default::default() };
            cx.store.transition_delivery(&delivery.id, DeliveryStatus::Suppressed, outcome).await?;
            cx.queue.ack(std::slice::from_ref(job)).await?;
            return Ok(SendOutcome::Skipped);
        }
    }
    let outcome = attempt(cx, job, &delivery, &notification).await?;
    if !matches!(outcome, SendOutcome::Retrying | SendOutcome::DeadLettered) {
        cx.queue.ack(std::slice::from_ref(job)).await?;
    }
    Ok(outcome)
}

async fn attempt(
    cx: &SendContext<'_>,
    job: &LeasedJob,
    delivery: &Delivery,
    notification: &Notification,
) -> Result<SendOutcome, StoreError> {
    let now = Utc::now();
    if notification.is_expired_at(now) {
        let outcome = DeliveryOutcome {
            reason: Some("expired".into()),
            attempts: job.attempts.saturating_sub(1),
            ..Default::default()
        };
        cx.store.transition_delivery(&delivery.id, DeliveryStatus::Expired, outcome).await?;
        return Ok(SendOutcome::Expired);
    }
    let provider = cx.providers.for_channel(delivery.channel);
    let personalized = match cx.personalizer.personalize(notification, delivery).await {
        Ok(personalized) => personalized,
        Err(PersonalizeError::Store(e)) => return Err(e),
        Err(PersonalizeError::Content(error)) => {
            fail(cx, job, delivery, notification, provider.name(), error).await?;
            return Ok(SendOutcome::Failed);
        }
    };
    let message = OutboundMessage {
        delivery_id: delivery.id.clone(),
        notification_id: notification.id.clone(),
        app_id: notification.app_id.clone(),
        priority: notification.priority,
        category: notification.category.clone(),
        address: delivery.address.clone(),
        content: personalized.content,
        unsubscribe_url: personalized.unsubscribe_url,
        metadata: notification.metadata.clone(),
    };
    match provider.send(&message).await {
        Ok(receipt) => {
            let outcome = DeliveryOutcome {
                provider: Some(provider.name().to_owned()),
                provider_message_id: receipt.provider_message_id,
                reason: None,
                attempts: job.attempts,
            };
            cx.store.transition_delivery(&delivery.id, DeliveryStatus::Sent, outcome).await?;
            Ok(SendOutcome::Sent)
        }
        Err(ProviderError::Transient(error)) if !cx.retry.gives_up_after(job.attempts) => {
            tracing::debug!(delivery = %delivery.id, attempts = job.attempts, %error, "will retry");
            cx.store.record_attempt(&delivery.id, job.attempts, &error).await?;
            cx.queue
                .retry(job, cx.retry.delay_after(delivery.channel, job.attempts), &error)
                .await?;
            Ok(SendOutcome::Retrying)
        }
        Err(ProviderError::Transient(error)) => {
            let reason = format!("gave up after {} attempts: {error}", job.attempts);
            fail(cx, job, delivery, notification, provider.name(), reason).await?;
            cx.queue.dead_letter(job, &error).await?;
            Ok(SendOutcome::DeadLettered)
        }
        Err(ProviderError::Permanent(error)) => {
            fail(cx, job, delivery, notification, provider.name(), error).await?;
            Ok(SendOutcome::Failed)
        }
    }
}

/// Marks the delivery failed, first queueing the next channel under fallback routing
/// (in that order, so the notification is never settled as failed in between).
async fn fail(
    cx: &SendContext<'_>,
    job: &LeasedJob,
    delivery: &Delivery,
    notification: &Notification,
    provider: &str,
    reason: String,
) -> Result<(), StoreError> {
    tracing::info!(delivery = %delivery.id, to = %delivery.address.redacted(), %reason, "delivery failed");
    let next = next_fallback(notification, delivery, cx.directory, Utc::now()).await?;
    if !next.is_empty() {
        let now = Utc::now();
        let jobs = next
            .iter()
            .filter(|d| d.status == DeliveryStatus::Queued)
            .map(|d| delivery_job(d, notification.priority, now))
            .collect();
        cx.store.insert_deliveries(&next, jobs).await?;
    }
    let outcome = DeliveryOutcome {
        provider: Some(provider.to_owned()),
        provider_message_id: None,
        reason: Some(reason),
        attempts: job.attempts,
    };
    cx.store.transition_delivery(&delivery.id, DeliveryStatus::Failed, outcome).await?;
    Ok(())
}
