//! Worker loops for a long-running host (`herald serve`): lease jobs from the queue and
//! run the dispatch or send stage on each. On shutdown they stop leasing and finish the
//! jobs they hold; anything still leased comes back after its visibility timeout.

use crate::domain::{Channel, DeliveryId, NotificationId};
use crate::integrations::IntegrationRouter;
use crate::pipeline::dispatch::{Directory, dispatch, retry_missing};
use crate::pipeline::personalize::Personalizer;
use crate::pipeline::retry::RetryPolicy;
use crate::pipeline::send::{SendContext, delivery_of, send_with};
use crate::ports::{
    DeliveryRead, HeldJobs, Job, LeasedJob, Queue, QueueName, QueueProducer, StageQueue, Store,
    StoreError, StoreResult, Stores,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub dispatch_workers: usize,
    /// Worker tasks per channel; each works on up to `batch` jobs at once.
    pub send_workers: usize,
    pub batch: usize,
    pub visibility: Duration,
    pub idle_poll: Duration,
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            dispatch_workers: 16,
            send_workers: 16,
            batch: 8,
            visibility: Duration::from_secs(60),
            idle_poll: Duration::from_millis(250),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    pub stores: Stores,
    pub queue: Arc<dyn Queue>,
    pub router: Arc<IntegrationRouter>,
    pub personalizer: Arc<Personalizer>,
    pub config: WorkerConfig,
}

impl Pipeline {
    fn directory(&self) -> Directory<'_> {
        Directory {
            users: &*self.stores.users,
            groups: &*self.stores.groups,
            preferences: &*self.stores.preferences,
        }
    }
}

/// Starts every worker; they run until `shutdown` is cancelled.
pub fn spawn_all(pipeline: Pipeline, shutdown: CancellationToken) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for _ in 0..pipeline.config.dispatch_workers {
        workers.spawn(run(pipeline.clone(), QueueName::Dispatch, shutdown.clone()));
    }
    for channel in Channel::ALL {
        for _ in 0..pipeline.config.send_workers {
            workers.spawn(run(pipeline.clone(), QueueName::Send(channel), shutdown.clone()));
        }
    }
    workers
}

async fn run(pipeline: Pipeline, queue: QueueName, shutdown: CancellationToken) {
    let config = pipeline.config.clone();
    while !shutdown.is_cancelled() {
        let jobs = match pipeline.queue.lease(queue, config.batch, config.visibility).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(queue = queue.as_str(), error = %e, "could not lease jobs");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = pipeline.queue.wait_for_work(queue, config.idle_poll) => {}
                _ = shutdown.cancelled() => {}
            }
            continue;
        }
        let acks = Arc::new(AcksAtEnd { queue: pipeline.queue.clone(), held: Mutex::default() });
        let mut reads = match queue {
            QueueName::Send(_) => read_deliveries(&*pipeline.stores.store, &jobs).await,
            QueueName::Dispatch => Vec::new(),
        }
        .into_iter();
        let mut batch = JoinSet::new();
        for job in jobs {
            let (pipeline, acks) = (pipeline.clone(), acks.clone());
            let read = reads.next().flatten();
            // Boxed: the stage's future is large, and tokio moves a task's future on
            // spawn and on completion; moving a pointer instead saved 2% of the CPU
            // under load (docs/performance.md).
            batch.spawn(async move { Box::pin(handle(&pipeline, &*acks, job, read)).await });
        }
        while batch.join_next().await.is_some() {}
        acks.flush().await;
    }
}

/// Reads the deliveries of a leased batch of send jobs at once, one entry per job:
/// `None` where the job is not for a delivery, or where the read failed (the job then
/// reads its delivery itself and meets the error on its own).
async fn read_deliveries(store: &dyn Store, jobs: &[LeasedJob]) -> Vec<Option<DeliveryRead>> {
    let wanted: Vec<(usize, DeliveryId)> =
        jobs.iter().enumerate().filter_map(|(i, job)| Some((i, delivery_of(job)?))).collect();
    let ids: Vec<DeliveryId> = wanted.iter().map(|(_, id)| id.clone()).collect();
    let mut reads: Vec<Option<DeliveryRead>> = vec![None; jobs.len()];
    match store.deliveries_to_send(&ids).await {
        Ok(found) => {
            for ((i, _), read) in wanted.into_iter().zip(found) {
                reads[i] = Some(read);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read a batch of deliveries; reading each"),
    }
    reads
}

/// The queue a worker's batch settles its jobs through: acknowledgements wait until the
/// whole batch is done and go as one write (one writer call, not one per job). A crash
/// before then brings the jobs back, and a stage acknowledges a job whose work is
/// already recorded without doing it again (send skips a settled delivery, dispatch
/// a dispatched notification).
struct AcksAtEnd {
    queue: Arc<dyn Queue>,
    held: Mutex<Vec<LeasedJob>>,
}

impl AcksAtEnd {
    async fn flush(&self) {
        let jobs = std::mem::take(&mut *self.held.lock().expect("not poisoned"));
        if jobs.is_empty() {
            return;
        }
        if let Err(e) = self.queue.ack(&jobs).await {
            // They come back after their visibility timeout and are acknowledged then.
            tracing::error!(jobs = jobs.len(), error = %e, "could not acknowledge jobs");
        }
    }
}

#[async_trait::async_trait]
impl QueueProducer for AcksAtEnd {
    async fn enqueue(&self, jobs: Vec<Job>) -> StoreResult<()> {
        self.queue.enqueue(jobs).await
    }
}

#[async_trait::async_trait]
impl HeldJobs for AcksAtEnd {
    async fn ack(&self, jobs: &[LeasedJob]) -> StoreResult<()> {
        self.held.lock().expect("not poisoned").extend_from_slice(jobs);
        Ok(())
    }
    async fn retry(&self, job: &LeasedJob, delay: Duration, error: &str) -> StoreResult<()> {
        self.queue.retry(job, delay, error).await
    }
    async fn defer(&self, job: &LeasedJob, delay: Duration, why: &str) -> StoreResult<()> {
        self.queue.defer(job, delay, why).await
    }
    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()> {
        self.queue.dead_letter(job, error).await
    }
}

async fn handle(
    pipeline: &Pipeline,
    queue: &dyn StageQueue,
    job: LeasedJob,
    read: Option<DeliveryRead>,
) {
    let result = match job.queue {
        QueueName::Dispatch => handle_dispatch(pipeline, queue, &job).await,
        QueueName::Send(_) => {
            let cx = SendContext {
                store: &*pipeline.stores.store,
                queue,
                router: &pipeline.router,
                personalizer: &pipeline.personalizer,
                directory: pipeline.directory(),
                retry: pipeline.config.retry.clone(),
            };
            send_with(&cx, &job, read).await.map(|_| ())
        }
    };
    // On a store error the job stays leased and comes back after its visibility
    // timeout, unless no retry can help (a corrupt record): then it is dead-lettered.
    match result {
        Err(e) if !e.is_transient() => {
            tracing::error!(queue = job.queue.as_str(), job = job.id, error = %e, "dead-lettered");
            if let Err(e) = queue.dead_letter(&job, &e.to_string()).await {
                tracing::error!(job = job.id, error = %e, "could not dead-letter");
            }
        }
        Err(e) => {
            tracing::error!(queue = job.queue.as_str(), job = job.id, error = %e, "job failed")
        }
        Ok(()) => {}
    }
}

async fn handle_dispatch(
    pipeline: &Pipeline,
    queue: &dyn StageQueue,
    job: &LeasedJob,
) -> Result<(), StoreError> {
    match NotificationId::parse(&job.payload) {
        Ok(id) => {
            let outcome =
                dispatch(&*pipeline.stores.store, pipeline.directory(), &id, chrono::Utc::now())
                    .await?;
            match retry_missing(outcome, job) {
                Some(delay) => queue.retry(job, delay, "no such notification yet").await,
                None => queue.ack(std::slice::from_ref(job)).await,
            }
        }
        Err(_) => queue.dead_letter(job, "the message is not a notification id").await,
    }
}
