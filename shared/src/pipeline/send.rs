//! Send: hand one delivery to its channel's provider and record the outcome. A delivery
//! already settled is acknowledged without sending, so a queue redelivery never sends
//! twice; transient failures are retried with backoff and dead-lettered at the end.

use super::dispatch::{Directory, MISSING_ATTEMPTS, MISSING_RETRY_DELAY, next_fallback};
use super::personalize::{PersonalizeError, Personalizer};
use super::plan::reason_to_hold_back;
use super::receipts::ReceiptPoll;
use super::retry::RetryPolicy;
use super::{delivery_job, failover_job, parse_send_payload};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::{Delivery, DeliveryId, DeliveryStatus, Notification, NotificationStatus};
use crate::integrations::pacing::Claimant;
use crate::integrations::{IntegrationRouter, Route};
use crate::ports::{DeliveryOutcome, DeliveryRead, LeasedJob, StageQueue, Store, StoreError};
use chrono::Utc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Already settled (a redelivery), canceled, or gone.
    Skipped,
    /// Handed to the next integration of the channel, by a new message.
    FailedOver,
    Expired,
    Retrying,
    /// Not due yet (quiet hours): the message comes back when it is.
    Deferred,
    /// The integration's window limit is reached: the message comes back when a slot
    /// frees, without counting as an attempt.
    Paced,
    Failed,
    DeadLettered,
    /// A receipt poll ran (see `receipts`).
    Polled,
}

pub struct SendContext<'a> {
    pub store: &'a dyn Store,
    pub queue: &'a dyn StageQueue,
    /// The app's integrations (or the installation default) for each channel.
    pub router: &'a IntegrationRouter,
    pub personalizer: &'a Personalizer,
    /// For fallback routing to a user: their identities and preferences now.
    pub directory: Directory<'a>,
    pub retry: RetryPolicy,
}

/// The longest a deferred delivery's message is hidden at once (SQS allows 12 hours);
/// a longer wait takes more than one step.
const MAX_DEFERRAL_STEP: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

pub async fn send(cx: &SendContext<'_>, job: &LeasedJob) -> Result<SendOutcome, StoreError> {
    send_with(cx, job, None).await
}

/// The delivery a send job is for, unless the job is something else (a receipt poll).
pub fn delivery_of(job: &LeasedJob) -> Option<DeliveryId> {
    if ReceiptPoll::parse(&job.payload).is_some() {
        return None;
    }
    parse_send_payload(&job.payload).map(|(id, _)| id)
}

/// `send` with the job's delivery already read (`Store::deliveries_to_send`, which a
/// worker calls once for a leased batch), or `None` to read it here.
pub async fn send_with(
    cx: &SendContext<'_>,
    job: &LeasedJob,
    read: Option<DeliveryRead>,
) -> Result<SendOutcome, StoreError> {
    if let Some(poll) = ReceiptPoll::parse(&job.payload) {
        return super::receipts::poll(cx, job, poll).await;
    }
    let Some((id, job_integration)) = parse_send_payload(&job.payload) else {
        cx.queue.dead_letter(job, "the message is not a delivery id").await?;
        return Ok(SendOutcome::DeadLettered);
    };
    let read = match read {
        Some(read) => read,
        None => cx.store.delivery_to_send(&id).await?,
    };
    let (delivery, notification) = match read {
        Some((delivery, Some(notification))) if !delivery.status.is_settled() => {
            (delivery, notification)
        }
        Some((delivery, None)) if !delivery.status.is_settled() => return missing(cx, job).await,
        Some((settled, _)) => {
            if job.attempts > 1 {
                // A redelivery: the run that settled it may have stopped before
                // counting it.
                cx.store.recount_pending(&settled.notification_id).await?;
            }
            if let Some(error) = given_up_before_its_dead_letter(&settled, job) {
                // That run stopped between marking the delivery failed and moving the
                // job to the dead letters. Backends move a job in one step, so a job
                // that comes back was not moved yet.
                cx.queue.dead_letter(job, error).await?;
                return Ok(SendOutcome::DeadLettered);
            }
            cx.queue.ack(std::slice::from_ref(job)).await?;
            return Ok(SendOutcome::Skipped);
        }
        None => return missing(cx, job).await,
    };
    if notification.status == NotificationStatus::Canceled {
        // The cancel may not have reached this delivery yet (it cancels them one by one).
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
    let outcome = attempt(cx, job, &delivery, job_integration, &notification).await?;
    if !matches!(outcome, SendOutcome::Retrying | SendOutcome::DeadLettered | SendOutcome::Paced) {
        cx.queue.ack(std::slice::from_ref(job)).await?;
    }
    Ok(outcome)
}

/// How the reason of a delivery that ran out of attempts begins.
const GAVE_UP: &str = "gave up after";

/// The provider's error, if `job` comes back after its own earlier run gave `delivery`
/// up (a later attempt than the delivery records, which failed for want of attempts).
fn given_up_before_its_dead_letter<'a>(delivery: &'a Delivery, job: &LeasedJob) -> Option<&'a str> {
    let reason = delivery.reason.as_deref()?;
    let gave_up = delivery.status == DeliveryStatus::Failed
        && job.attempts > delivery.attempts
        && reason.starts_with(GAVE_UP);
    gave_up.then(|| reason.split_once(": ").map_or(reason, |(_, error)| error))
}

/// A message for a delivery or notification not (yet) in the store. Where the send
/// message is queued before the records are written (DynamoDB, deliveries planned at
/// intake), the write may still be under way: it is tried again a few times, as
/// dispatch does, then let go.
async fn missing(cx: &SendContext<'_>, job: &LeasedJob) -> Result<SendOutcome, StoreError> {
    if job.attempts < MISSING_ATTEMPTS {
        cx.queue.retry(job, MISSING_RETRY_DELAY, "not stored yet").await?;
        return Ok(SendOutcome::Retrying);
    }
    cx.queue.ack(std::slice::from_ref(job)).await?;
    Ok(SendOutcome::Skipped)
}

async fn attempt(
    cx: &SendContext<'_>,
    job: &LeasedJob,
    delivery: &Delivery,
    job_integration: Option<String>,
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
    let robot = delivery.address.robot();
    let routes = cx.router.routes(&notification.app_id, delivery.channel, robot).await?;
    let Some(position) = route_to_use(cx, delivery, job_integration, &routes).await? else {
        return Ok(SendOutcome::Skipped); // A message from before a failover.
    };
    let route = &routes[position];
    let personalized = match cx.personalizer.personalize(notification, delivery).await {
        Ok(personalized) => personalized,
        Err(PersonalizeError::Store(e)) => return Err(e),
        Err(PersonalizeError::Content(error)) => {
            fail(cx, job, delivery, notification, route, error).await?;
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
    let result = match &route.provider {
        Ok(provider) => {
            // The recipient's limit first: a slot taken there and then refused by the
            // integration's limit only makes that recipient wait longer.
            let id = delivery.id.to_string();
            let who = Claimant { id: &id, priority: notification.priority };
            let paced = match cx.router.pace_recipient(route, &delivery.address, who).await? {
                Ok(()) => cx.router.pace(route, who).await?,
                refused => refused,
            };
            if let Err(wait) = paced {
                cx.queue.defer(job, wait, "paced: a window limit").await?;
                return Ok(SendOutcome::Paced);
            }
            route.until_ready().await;
            send_refreshing_once(provider.as_ref(), &message).await
        }
        Err(why) => Err(ProviderError::Unavailable(why.clone())),
    };
    let error = match result {
        Ok(receipt) => {
            // Before the delivery is `sent`: a crash in between sends again, and the
            // repeat's receipt is remembered then.
            if let (Ok(provider), Some(message_id)) =
                (&route.provider, &receipt.provider_message_id)
                && provider.receipts_by_message_id()
            {
                cx.store.remember_receipt(provider.name(), message_id, &delivery.id).await?;
            }
            // The first poll is queued before the delivery is `sent`: a crash in
            // between sends again, and a poll of a delivery not sent does nothing.
            if let Ok(provider) = &route.provider
                && provider.polls_receipts()
                && receipt.provider_message_id.is_some()
            {
                let integration = route.integration.as_ref().map(|i| i.id.clone());
                let schedule = &cx.retry.receipt_poll_schedule;
                if let Some(poll) = ReceiptPoll::after(&delivery.id, integration, 0, schedule, now)
                {
                    cx.queue.enqueue(vec![poll.job(delivery.channel, now)]).await?;
                }
            }
            let outcome = DeliveryOutcome {
                provider: Some(route.provider_name()),
                integration: route.integration.as_ref().map(|_| route.label()),
                provider_message_id: receipt.provider_message_id,
                reason: None,
                attempts: job.attempts,
            };
            cx.store.transition_delivery(&delivery.id, DeliveryStatus::Sent, outcome).await?;
            return Ok(SendOutcome::Sent);
        }
        Err(error) => error,
    };
    let retries_left = !cx.retry.gives_up_after(job.attempts);
    if let ProviderError::Transient { message, retry_after } = &error
        && retries_left
    {
        tracing::debug!(delivery = %delivery.id, attempts = job.attempts, %message, "will retry");
        cx.store.record_attempt(&delivery.id, job.attempts, message).await?;
        let delay =
            retry_after.unwrap_or_else(|| cx.retry.delay_after(delivery.channel, job.attempts));
        cx.queue.retry(job, delay, message).await?;
        return Ok(SendOutcome::Retrying);
    }
    let exhausted = matches!(error, ProviderError::Transient { .. });
    if (exhausted || error.fails_over())
        && let Some(next) = routes.get(position + 1).and_then(|r| r.integration.as_ref())
    {
        let reason = format!("{} failed: {error}", route.label());
        cx.store.record_attempt(&delivery.id, job.attempts, &reason).await?;
        let job = failover_job(&delivery.id, delivery.channel, notification.priority, &next.id);
        cx.queue.enqueue(vec![job]).await?;
        return Ok(SendOutcome::FailedOver);
    }
    let reason = if exhausted {
        format!("{GAVE_UP} {} attempts: {error}", job.attempts)
    } else {
        error.to_string()
    };
    fail(cx, job, delivery, notification, route, reason).await?;
    if exhausted {
        cx.queue.dead_letter(job, &error.to_string()).await?;
        return Ok(SendOutcome::DeadLettered);
    }
    Ok(SendOutcome::Failed)
}

/// Which of `routes` this message sends through, or None for a message that a
/// failover has overtaken. Failover only moves forward: a message for a later
/// integration than the delivery's adopts it (its sender may have crashed before the
/// switch was recorded), one for an earlier integration is stale.
async fn route_to_use(
    cx: &SendContext<'_>,
    delivery: &Delivery,
    job_integration: Option<String>,
    routes: &[Route],
) -> Result<Option<usize>, StoreError> {
    let position = |id: Option<&String>| {
        id.and_then(|id| {
            routes.iter().position(|r| r.integration.as_ref().is_some_and(|i| &i.id == id))
        })
        .unwrap_or(0)
    };
    let current = position(delivery.integration.as_ref());
    if job_integration == delivery.integration {
        return Ok(Some(current));
    }
    let wanted = position(job_integration.as_ref());
    let Some(integration) = job_integration.filter(|_| wanted > current) else {
        return Ok(None);
    };
    let detail = format!("now {}", routes[wanted].label());
    let switched = cx.store.switch_integration(&delivery.id, &integration, &detail).await?;
    Ok(switched.then_some(wanted))
}

/// Sends once; if the provider's credentials had expired, refreshes them and sends
/// once more.
async fn send_refreshing_once(
    provider: &dyn Provider,
    message: &OutboundMessage,
) -> Result<Receipt, ProviderError> {
    match provider.send(message).await {
        Err(ProviderError::CredentialsExpired(_)) => {
            provider.refresh_credentials().await;
            provider.send(message).await
        }
        result => result,
    }
}

/// Marks the delivery failed, first queueing the next channel under fallback routing
/// (in that order, so the notification is never settled as failed in between).
async fn fail(
    cx: &SendContext<'_>,
    job: &LeasedJob,
    delivery: &Delivery,
    notification: &Notification,
    route: &Route,
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
        provider: Some(route.provider_name()),
        integration: route.integration.as_ref().map(|_| route.label()),
        provider_message_id: None,
        reason: Some(reason),
        attempts: job.attempts,
    };
    cx.store.transition_delivery(&delivery.id, DeliveryStatus::Failed, outcome).await?;
    Ok(())
}
