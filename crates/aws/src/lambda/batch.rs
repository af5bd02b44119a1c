//! SQS batches from Lambda's event source mapping, with partial batch responses: a
//! message is reported as failed (and stays on its queue) only if its own stage failed
//! or asked for a retry, so one bad message never makes the others run again.

use crate::sqs::SqsQueue;
use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use herald_core::domain::NotificationId;
use herald_core::integrations::IntegrationRouter;
use herald_core::pipeline::dispatch::{Directory, dispatch, retry_missing};
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::retry::RetryPolicy;
use herald_core::pipeline::send::{SendContext, send};
use herald_core::ports::{HeldJobs, Job, LeasedJob, QueueProducer, Store, StoreError, StoreResult};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages of one batch handled at once: SQS hands Lambda at most ten.
const PARALLEL: usize = 10;

/// The queues a batch comes from: it names the job each SQS record carries, and takes
/// new jobs, retries and dead letters. SQS in production; in the tests that feed
/// `events/` to the handlers, the SQLite queue.
pub trait RecordQueue: QueueProducer + HeldJobs {
    fn job_from_record(&self, message: &SqsMessage) -> Option<LeasedJob>;
}

impl RecordQueue for SqsQueue {
    fn job_from_record(&self, message: &SqsMessage) -> Option<LeasedJob> {
        self.job_from_record(
            message.event_source_arn.as_deref()?,
            message.body.clone()?,
            message.receipt_handle.clone()?,
            message.attributes.get("ApproximateReceiveCount").map(String::as_str),
            message.message_attributes.get("priority").and_then(|a| a.string_value.as_deref()),
        )
    }
}

/// What the batch handlers run the pipeline's stages with: ports only, so the same
/// handler runs on DynamoDB and SQS in Lambda and on SQLite in tests.
#[derive(Clone)]
pub struct Stages<'a> {
    pub store: &'a dyn Store,
    pub directory: Directory<'a>,
    pub queue: Arc<dyn RecordQueue>,
    pub router: &'a IntegrationRouter,
    pub personalizer: &'a Personalizer,
    pub retry: RetryPolicy,
}

/// The queue as a stage sees it inside a Lambda batch: it adds jobs and settles the
/// one it holds, and never leases (the event source mapping does). Acknowledging is
/// left to the mapping (it deletes every message not reported as failed), so `ack`
/// costs no request; `retry` sets the message's visibility to the backoff delay and
/// marks it failed so Lambda leaves it on the queue.
struct BatchQueue {
    sqs: Arc<dyn RecordQueue>,
    retried: Mutex<Vec<String>>,
}

#[async_trait]
impl QueueProducer for BatchQueue {
    async fn enqueue(&self, jobs: Vec<Job>) -> StoreResult<()> {
        self.sqs.enqueue(jobs).await
    }
}

#[async_trait]
impl HeldJobs for BatchQueue {
    async fn ack(&self, _jobs: &[LeasedJob]) -> StoreResult<()> {
        Ok(())
    }
    async fn retry(&self, job: &LeasedJob, delay: Duration, error: &str) -> StoreResult<()> {
        self.sqs.retry(job, delay, error).await?;
        self.retried.lock().expect("not poisoned").push(job.lease_token.clone());
        Ok(())
    }
    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()> {
        self.sqs.dead_letter(job, error).await
    }
    /// A copy waits on the queue (with no receives counted); Lambda deletes this
    /// message as handled.
    async fn defer(&self, job: &LeasedJob, delay: Duration, _why: &str) -> StoreResult<()> {
        self.sqs.enqueue(vec![job.copy_after(delay)]).await
    }
}

/// Why a message of a batch stays on its queue.
#[derive(Debug, thiserror::Error)]
enum MessageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a message from a queue Herald does not know")]
    UnknownQueue,
}

/// Runs `stage` on every message and reports the ones to keep. A store error that a
/// retry cannot cure (a corrupt record) sends the message to the dead letters instead
/// of round the queue until its receive count runs out.
async fn handle_batch<F, Fut>(stages: &Stages<'_>, event: SqsEvent, stage: F) -> SqsBatchResponse
where
    F: Fn(Arc<BatchQueue>, LeasedJob) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let queue = Arc::new(BatchQueue { sqs: stages.queue.clone(), retried: Mutex::default() });
    let results: Vec<(SqsMessage, Result<(), MessageError>)> = futures::stream::iter(event.records)
        .map(|message| {
            let queue = queue.clone();
            let job = stages.queue.job_from_record(&message);
            let run = job.clone().map(|job| stage(queue.clone(), job));
            async move {
                let (Some(job), Some(run)) = (job, run) else {
                    return (message, Err(MessageError::UnknownQueue));
                };
                let result = match run.await {
                    Err(e) if !e.is_transient() => {
                        tracing::error!(job = %job.payload, error = %e, "dead-lettered: a retry cannot help");
                        queue.dead_letter(&job, &e.to_string()).await
                    }
                    result => result,
                };
                (message, result.map_err(MessageError::from))
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let retried = queue.retried.lock().expect("not poisoned").clone();
    let mut response = SqsBatchResponse::default();
    for (message, result) in results {
        let retry = message.receipt_handle.as_ref().is_some_and(|r| retried.contains(r));
        if let Err(error) = &result {
            tracing::error!(message = message.message_id.as_deref().unwrap_or(""), %error, "message failed; SQS will redeliver it");
        }
        if result.is_err() || retry {
            let item_identifier = message.message_id.unwrap_or_default();
            response.batch_item_failures.push(BatchItemFailure { item_identifier });
        }
    }
    response
}

/// The `dispatch` function: fans each notification out onto the channel queues.
pub async fn handle_dispatch_batch(stages: &Stages<'_>, event: SqsEvent) -> SqsBatchResponse {
    handle_batch(stages, event, |queue, job| async move {
        let Ok(id) = NotificationId::parse(&job.payload) else {
            return queue.dead_letter(&job, "the message is not a notification id").await;
        };
        let outcome = dispatch(stages.store, stages.directory, &id, chrono::Utc::now()).await?;
        match retry_missing(outcome, &job) {
            Some(delay) => queue.retry(&job, delay, "no such notification yet").await,
            None => Ok(()),
        }
    })
    .await
}

/// The `send` function: hands each delivery to its channel's provider, once.
pub async fn handle_send_batch(stages: &Stages<'_>, event: SqsEvent) -> SqsBatchResponse {
    handle_batch(stages, event, |queue, job| async move {
        let cx = SendContext {
            store: stages.store,
            queue: queue.as_ref(),
            router: stages.router,
            personalizer: stages.personalizer,
            directory: stages.directory,
            retry: stages.retry.clone(),
        };
        send(&cx, &job).await.map(|_| ())
    })
    .await
}
