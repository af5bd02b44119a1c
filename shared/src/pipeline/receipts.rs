//! Receipts a vendor gives only when asked (DingTalk work notifications answer a send
//! with a task id; `getsendresult` later says who read, who has not, who never got
//! it). After such a send a poll message follows on the channel's send queue; each
//! poll applies what the vendor knows and, until the receipt is settled, queues the
//! next one, waiting the next step of the poll schedule. A poll that finds nothing
//! new costs one vendor call; the schedule ends before the vendor forgets the task.

use super::send::{SendContext, SendOutcome};
use crate::channels::{Feedback, ProviderError};
use crate::domain::{Channel, DeliveryId, DeliveryStatus, Priority};
use crate::ports::{Job, LeasedJob, QueueName, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

const MARK: &str = "#receipt:";
/// The longest a queue message is held back at once (SQS's limit); a later poll is
/// hidden again when it arrives early.
const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);
/// The longest a message is hidden again at once (SQS's visibility limit).
const MAX_HIDE: Duration = Duration::from_secs(12 * 3600);

/// One poll of delivery `delivery`'s receipt: the `round`th, due at `due`, through the
/// integration the send went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptPoll {
    pub delivery: DeliveryId,
    pub round: usize,
    pub due: DateTime<Utc>,
    pub integration: Option<String>,
}

impl ReceiptPoll {
    /// `dlv_…#receipt:<round>:<due, unix ms>:<integration id or empty>`
    pub fn parse(payload: &str) -> Option<Self> {
        let (id, rest) = payload.split_once(MARK)?;
        let mut parts = rest.splitn(3, ':');
        let round = parts.next()?.parse().ok()?;
        let due = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let integration = Some(parts.next()?.to_owned()).filter(|i| !i.is_empty());
        Some(Self { delivery: DeliveryId::parse(id).ok()?, round, due, integration })
    }

    fn payload(&self) -> String {
        let integration = self.integration.as_deref().unwrap_or_default();
        format!(
            "{}{MARK}{}:{}:{integration}",
            self.delivery,
            self.round,
            self.due.timestamp_millis()
        )
    }

    /// The `round`th poll after `now` per `schedule`, or None past its end.
    pub fn after(
        delivery: &DeliveryId,
        integration: Option<String>,
        round: usize,
        schedule: &[Duration],
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let wait = chrono::Duration::from_std(*schedule.get(round)?).ok()?;
        Some(Self { delivery: delivery.clone(), round, due: now + wait, integration })
    }

    pub fn job(&self, channel: Channel, now: DateTime<Utc>) -> Job {
        let payload = self.payload();
        let wait = (self.due - now).to_std().unwrap_or_default();
        Job {
            queue: QueueName::Send(channel),
            // Polls never hold up sends.
            priority: Priority::Low,
            dedup_key: Some(payload.clone()),
            payload,
            delay: wait.min(MAX_QUEUE_DELAY),
        }
    }
}

/// Runs one poll: asks the vendor, applies what it says, queues the next poll unless
/// the receipt is settled or the schedule is over.
pub async fn poll(
    cx: &SendContext<'_>,
    job: &LeasedJob,
    poll: ReceiptPoll,
) -> Result<SendOutcome, StoreError> {
    let now = Utc::now();
    if poll.due > now {
        let wait = (poll.due - now).to_std().unwrap_or_default().min(MAX_HIDE);
        // Hidden again rather than copied: on SQS one more receive instead of a new
        // message every 15 minutes of a long wait.
        cx.queue.retry(job, wait, "receipt poll not due").await?;
        return Ok(SendOutcome::Deferred);
    }
    let outcome = poll_now(cx, &poll, now).await?;
    cx.queue.ack(std::slice::from_ref(job)).await?;
    Ok(outcome)
}

async fn poll_now(
    cx: &SendContext<'_>,
    poll: &ReceiptPoll,
    now: DateTime<Utc>,
) -> Result<SendOutcome, StoreError> {
    let Some(delivery) = cx.store.delivery(&poll.delivery).await? else {
        return Ok(SendOutcome::Skipped);
    };
    let polled = matches!(delivery.status, DeliveryStatus::Sent | DeliveryStatus::Delivered);
    let (Some(message_id), true) = (delivery.provider_message_id.as_deref(), polled) else {
        return Ok(SendOutcome::Skipped);
    };
    let Some(notification) = cx.store.notification(&delivery.notification_id).await? else {
        return Ok(SendOutcome::Skipped);
    };
    let routes =
        cx.router.routes(&notification.app_id, delivery.channel, delivery.address.robot()).await?;
    let route = routes.iter().find(|r| {
        r.integration.as_ref().map(|i| &i.id) == poll.integration.as_ref()
            && r.provider.as_ref().is_ok_and(|p| p.polls_receipts())
    });
    // The integration is gone or changed provider: nobody can ask any more.
    let Some(Ok(provider)) = route.map(|r| &r.provider) else {
        return Ok(SendOutcome::Skipped);
    };
    let settled = match provider.poll_receipt(message_id, &delivery.address).await {
        Ok(receipt) => {
            for feedback in receipt.feedback {
                // A status already held (`delivered` seen again while unread) is news
                // to nobody.
                if matches!(&feedback, Feedback::Status { status, .. } if *status == delivery.status)
                {
                    continue;
                }
                let id = &delivery.id;
                super::feedback::apply(cx.store, id, provider.name(), None, feedback).await?;
            }
            receipt.settled
        }
        Err(ProviderError::Transient { .. } | ProviderError::CredentialsExpired(_)) => false,
        Err(error) => {
            let detail = error.to_string();
            cx.store
                .record_delivery_event(&delivery.id, "receipt_unavailable", Some(&detail))
                .await?;
            true
        }
    };
    let schedule = &cx.retry.receipt_poll_schedule;
    if !settled
        && let Some(next) = ReceiptPoll::after(
            &delivery.id,
            poll.integration.clone(),
            poll.round + 1,
            schedule,
            now,
        )
    {
        cx.queue.enqueue(vec![next.job(delivery.channel, now)]).await?;
    }
    Ok(SendOutcome::Polled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_round_trip_through_their_payload() {
        let delivery = DeliveryId::new();
        let now = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let schedule = [Duration::from_secs(60), Duration::from_secs(300)];
        let poll = ReceiptPoll::after(&delivery, Some("int_1".into()), 1, &schedule, now).unwrap();
        assert_eq!(poll.due, now + chrono::Duration::seconds(300));
        let job = poll.job(Channel::Dingtalk, now);
        assert_eq!(job.delay, Duration::from_secs(300));
        assert_eq!(ReceiptPoll::parse(&job.payload), Some(poll));
        assert!(ReceiptPoll::after(&delivery, None, 2, &schedule, now).is_none());
        assert!(ReceiptPoll::parse(&delivery.to_string()).is_none());
        let far = ReceiptPoll::after(&delivery, None, 0, &[Duration::from_secs(7200)], now);
        assert_eq!(far.unwrap().job(Channel::Dingtalk, now).delay, MAX_QUEUE_DELAY);
    }
}
