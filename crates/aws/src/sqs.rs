//! `Queue` on SQS. Dispatch has three queues, one per priority, and a lease drains high
//! before medium before low; each channel has one send queue. Every queue has a
//! dead-letter queue. SQS counts receives itself (`ApproximateReceiveCount`), and a
//! receipt handle is the lease token: only the latest one deletes a message.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use herald_core::domain::{Channel, Priority};
use herald_core::ports::{
    DeadLetter, HeldJobs, Job, LeasedJob, QueueConsumer, QueueName, QueueProducer, QueueStats,
    StoreError, StoreResult,
};
use std::collections::HashMap;
use std::time::Duration;

/// SQS takes at most ten messages per batch call.
const BATCH: usize = 10;
/// SQS delays and visibility timeouts are whole seconds; delays at most 15 minutes.
const MAX_DELAY_SECONDS: u64 = 900;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("SQS: {e}"))
}

fn sdk_error<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::store_error("SQS", e)
}

/// The physical SQS queue behind a logical queue and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Lane {
    queue: QueueName,
    priority: Option<Priority>,
}

impl Lane {
    fn of(queue: QueueName, priority: Priority) -> Self {
        match queue {
            QueueName::Dispatch => Lane { queue, priority: Some(priority) },
            QueueName::Send(_) => Lane { queue, priority: None },
        }
    }

    fn name(self, prefix: &str) -> String {
        match (self.queue, self.priority) {
            (QueueName::Dispatch, Some(p)) => format!("{prefix}-dispatch-{}", p.as_str()),
            (QueueName::Send(c), _) => format!("{prefix}-send-{}", c.as_str()),
            (QueueName::Dispatch, None) => unreachable!("dispatch lanes have a priority"),
        }
    }

    /// Lanes to drain for a lease, most urgent first.
    fn for_lease(queue: QueueName) -> Vec<Lane> {
        match queue {
            QueueName::Dispatch => {
                Priority::ALL.iter().map(|p| Lane { queue, priority: Some(*p) }).collect()
            }
            QueueName::Send(_) => vec![Lane { queue, priority: None }],
        }
    }

    fn all() -> Vec<Lane> {
        let mut lanes = Lane::for_lease(QueueName::Dispatch);
        lanes.extend(
            Channel::ALL.into_iter().map(|c| Lane { queue: QueueName::Send(c), priority: None }),
        );
        lanes
    }
}

#[derive(Debug, Clone)]
struct Urls {
    queue: String,
    dead_letters: String,
}

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    urls: HashMap<Lane, Urls>,
}

impl SqsQueue {
    /// Finds the queues named `{prefix}-dispatch-high`, …, `{prefix}-send-webhook`
    /// and their `-dlq` queues (the SAM template creates them).
    pub async fn connect(client: Client, prefix: &str) -> StoreResult<Self> {
        let mut urls = HashMap::new();
        for lane in Lane::all() {
            let name = lane.name(prefix);
            let url = |name: String| {
                let client = client.clone();
                async move {
                    client.get_queue_url().queue_name(&name).send().await.map_err(|e| {
                        backend(format!(
                            "queue {name}: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        ))
                    })
                }
            };
            let queue = url(name.clone()).await?.queue_url.unwrap_or_default();
            let dead_letters = url(format!("{name}-dlq")).await?.queue_url.unwrap_or_default();
            urls.insert(lane, Urls { queue, dead_letters });
        }
        Ok(Self { client, urls })
    }

    /// The job a Lambda event source handed over: `queue_arn` names the SQS queue it
    /// came from (`arn:aws:sqs:…:{prefix}-send-email`). None for a queue not ours.
    pub fn job_from_record(
        &self,
        queue_arn: &str,
        body: String,
        receipt_handle: String,
        receive_count: Option<&str>,
        priority: Option<&str>,
    ) -> Option<LeasedJob> {
        let name = queue_arn.rsplit(':').next()?;
        let (lane, _) =
            self.urls.iter().find(|(_, urls)| urls.queue.ends_with(&format!("/{name}")))?;
        Some(LeasedJob {
            id: 0,
            queue: lane.queue,
            priority: priority
                .and_then(|p| p.parse().ok())
                .unwrap_or(lane.priority.unwrap_or_default()),
            payload: body,
            attempts: receive_count.and_then(|n| n.parse().ok()).unwrap_or(1),
            lease_token: receipt_handle,
        })
    }

    /// Builds the queue URLs from `url_prefix` (`https://sqs.{region}.amazonaws.com/
    /// {account}/{stack}`), with no request: the template passes it, so a cold start
    /// spends nothing on twelve `GetQueueUrl` round trips.
    pub fn with_url_prefix(client: Client, url_prefix: &str) -> Self {
        let name_start = url_prefix.rfind('/').map_or(0, |i| i + 1);
        let (base, prefix) = url_prefix.split_at(name_start);
        let urls = Lane::all()
            .into_iter()
            .map(|lane| {
                let queue = format!("{base}{}", lane.name(prefix));
                let dead_letters = format!("{queue}-dlq");
                (lane, Urls { queue, dead_letters })
            })
            .collect();
        Self { client, urls }
    }

    /// Creates every queue and its dead-letter queue (redrive after `max_receives`), for
    /// emulators and tests; in AWS the template does this.
    pub async fn create_all(client: &Client, prefix: &str, max_receives: u32) -> StoreResult<()> {
        for lane in Lane::all() {
            let name = lane.name(prefix);
            let dlq = client
                .create_queue()
                .queue_name(format!("{name}-dlq"))
                .send()
                .await
                .map_err(backend)?;
            let dlq_arn = client
                .get_queue_attributes()
                .queue_url(dlq.queue_url.unwrap_or_default())
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(backend)?
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .unwrap_or_default();
            let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
            client
                .create_queue()
                .queue_name(name)
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .send()
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    fn urls(&self, lane: Lane) -> StoreResult<&Urls> {
        self.urls.get(&lane).ok_or_else(|| backend(format!("no queue for {lane:?}")))
    }

    async fn send_batch(&self, url: &str, jobs: &[&Job]) -> StoreResult<()> {
        for chunk in jobs.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    let delay = job.delay.as_secs_f64().ceil() as u64;
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&job.payload)
                        .delay_seconds(delay.min(MAX_DELAY_SECONDS) as i32)
                        .message_attributes("priority", string_attribute(job.priority.as_str()))
                        .build()
                        .map_err(backend)
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sdk_error)?;
            if let Some(failure) = sent.failed.first() {
                return Err(backend(format!("batch entry failed: {}", failure.code)));
            }
        }
        Ok(())
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

fn seconds(d: Duration) -> i32 {
    d.as_secs_f64().ceil().min(43_200.0) as i32
}

#[async_trait]
impl QueueProducer for SqsQueue {
    async fn enqueue(&self, jobs: Vec<Job>) -> StoreResult<()> {
        let mut by_url: HashMap<&str, Vec<&Job>> = HashMap::new();
        for job in &jobs {
            let url = &self.urls(Lane::of(job.queue, job.priority))?.queue;
            by_url.entry(url.as_str()).or_default().push(job);
        }
        for (url, jobs) in by_url {
            self.send_batch(url, &jobs).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl HeldJobs for SqsQueue {
    async fn ack(&self, jobs: &[LeasedJob]) -> StoreResult<()> {
        let mut by_url: HashMap<&str, Vec<&LeasedJob>> = HashMap::new();
        for job in jobs {
            by_url
                .entry(&self.urls(Lane::of(job.queue, job.priority))?.queue)
                .or_default()
                .push(job);
        }
        for (url, jobs) in by_url {
            for chunk in jobs.chunks(BATCH) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, job)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(&job.lease_token)
                            .build()
                            .map_err(backend)
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                self.client
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(sdk_error)?;
            }
        }
        Ok(())
    }

    /// A copy goes back on the queue and this message is deleted: SQS cannot take a
    /// receive off a message's count, and a copy starts from zero. (SQS delays at most
    /// 15 minutes; a longer wait is deferred again when the copy comes back.)
    async fn defer(&self, job: &LeasedJob, delay: Duration, _why: &str) -> StoreResult<()> {
        self.enqueue(vec![job.copy_after(delay)]).await?;
        self.ack(std::slice::from_ref(job)).await
    }

    async fn retry(&self, job: &LeasedJob, delay: Duration, _error: &str) -> StoreResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.urls(Lane::of(job.queue, job.priority))?.queue)
            .receipt_handle(&job.lease_token)
            .visibility_timeout(seconds(delay))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()> {
        let urls = self.urls(Lane::of(job.queue, job.priority))?;
        self.client
            .send_message()
            .queue_url(&urls.dead_letters)
            .message_body(&job.payload)
            .message_attributes("queue", string_attribute(job.queue.as_str()))
            .message_attributes("error", string_attribute(error))
            .message_attributes("attempts", string_attribute(&job.attempts.to_string()))
            .message_attributes(
                "failed_at",
                string_attribute(&herald_core::time::format_time(chrono::Utc::now())),
            )
            .send()
            .await
            .map_err(sdk_error)?;
        self.ack(std::slice::from_ref(job)).await
    }
}

#[async_trait]
impl QueueConsumer for SqsQueue {
    async fn lease(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> StoreResult<Vec<LeasedJob>> {
        let mut leased = Vec::new();
        // Drain each lane before the next, so a lower lane is only served when every
        // higher one came back short.
        for lane in Lane::for_lease(queue) {
            loop {
                let wanted = max.saturating_sub(leased.len()).min(BATCH);
                if wanted == 0 {
                    return Ok(leased);
                }
                let received = self
                    .client
                    .receive_message()
                    .queue_url(&self.urls(lane)?.queue)
                    .max_number_of_messages(wanted as i32)
                    .visibility_timeout(seconds(visibility))
                    .wait_time_seconds(0)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .message_attribute_names("priority")
                    .send()
                    .await
                    .map_err(sdk_error)?;
                let messages = received.messages.unwrap_or_default();
                let lane_has_more = messages.len() == wanted;
                for message in messages {
                    let attempts = message
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                    let priority = message
                        .message_attributes
                        .as_ref()
                        .and_then(|a| a.get("priority"))
                        .and_then(|v| v.string_value.as_deref())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(lane.priority.unwrap_or_default());
                    leased.push(LeasedJob {
                        id: 0,
                        queue,
                        priority,
                        payload: message.body.unwrap_or_default(),
                        attempts,
                        lease_token: message.receipt_handle.unwrap_or_default(),
                    });
                }
                if !lane_has_more {
                    break;
                }
            }
        }
        Ok(leased)
    }

    async fn wait_for_work(&self, _queue: QueueName, timeout: Duration) {
        // Lambda's event source mapping does the waiting on AWS; a poller just pauses.
        tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
    }
}

#[async_trait]
impl QueueStats for SqsQueue {
    async fn depth(&self, queue: QueueName) -> StoreResult<u64> {
        let mut total = 0;
        for lane in Lane::for_lease(queue) {
            let attributes = self
                .client
                .get_queue_attributes()
                .queue_url(&self.urls(lane)?.queue)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send()
                .await
                .map_err(sdk_error)?
                .attributes
                .unwrap_or_default();
            total += attributes.values().filter_map(|v| v.parse::<u64>().ok()).sum::<u64>();
        }
        Ok(total)
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let mut found = Vec::new();
        for lane in Lane::all() {
            // A zero visibility timeout peeks without hiding the messages.
            let received = self
                .client
                .receive_message()
                .queue_url(&self.urls(lane)?.dead_letters)
                .max_number_of_messages(BATCH as i32)
                .visibility_timeout(0)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(sdk_error)?;
            for message in received.messages.unwrap_or_default() {
                let attribute = |name: &str| {
                    message
                        .message_attributes
                        .as_ref()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value.clone())
                };
                found.push(DeadLetter {
                    // Redriven by SQS itself (maxReceiveCount) when Herald did not move it.
                    queue: attribute("queue").unwrap_or_else(|| lane.queue.as_str().to_owned()),
                    payload: message.body.clone().unwrap_or_default(),
                    attempts: attribute("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
                    error: attribute("error").unwrap_or_else(|| "receive count exceeded".into()),
                    failed_at: attribute("failed_at")
                        .and_then(|t| herald_core::time::parse_time(&t))
                        .unwrap_or_default(),
                });
            }
        }
        found.sort_by_key(|d| std::cmp::Reverse(d.failed_at));
        found.truncate(limit);
        Ok(found)
    }
}
