//! Every SQS and track payload in `events/` fed to its Lambda handler, with the
//! handlers running on the SQLite backend: the glue (records to jobs, partial batch
//! responses, dead letters, SES feedback, stream counters) is tested without
//! an emulator. The SQS side is the one thing modelled: `SqsOnSqlite` names each
//! record's job from its queue ARN and keeps the retries and dead letters it is asked
//! for; the jobs a stage adds go to the real SQLite queue.

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use contract::events::{EMAIL, NOTIFICATION, SMS, WEBHOOK};
use herald_aws::dynamo::DailyCounters;
use herald_aws::lambda::{
    RecordQueue, Stages, StreamCounters, Tracking, handle_dispatch_batch, handle_send_batch,
    handle_track,
};
use herald_contract as contract;
use herald_core::channels::LogProvider;
use herald_core::domain::{
    Channel, DeliveryId, DeliveryStatus, NotificationId, NotificationStatus,
};
use herald_core::integrations::IntegrationRouter;
use herald_core::pipeline::dispatch::Directory;
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::retry::RetryPolicy;
use herald_core::ports::{
    HeldJobs, Job, LeasedJob, QueueName, QueueProducer, QueueStats, Store, StoreResult,
};
use herald_sqlite::SqliteBackend;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn event(path: &str) -> Value {
    let file = format!("{}/../../events/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

fn sqs_event(path: &str) -> SqsEvent {
    serde_json::from_value(event(path)).unwrap()
}

/// SQS as the handlers see it, over the SQLite queue: `herald-send-email` is the
/// `send.email` queue, `herald-dispatch-high` the high lane of `dispatch`.
struct SqsOnSqlite {
    backend: Arc<SqliteBackend>,
    retried: Mutex<Vec<String>>,
    dead: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl QueueProducer for SqsOnSqlite {
    async fn enqueue(&self, jobs: Vec<Job>) -> StoreResult<()> {
        self.backend.enqueue(jobs).await
    }
}

#[async_trait]
impl HeldJobs for SqsOnSqlite {
    async fn ack(&self, _jobs: &[LeasedJob]) -> StoreResult<()> {
        Ok(())
    }
    async fn retry(&self, job: &LeasedJob, _delay: Duration, _error: &str) -> StoreResult<()> {
        self.retried.lock().unwrap().push(job.payload.clone());
        Ok(())
    }
    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()> {
        self.dead.lock().unwrap().push((job.payload.clone(), error.to_owned()));
        Ok(())
    }
}

impl RecordQueue for SqsOnSqlite {
    fn job_from_record(&self, message: &SqsMessage) -> Option<LeasedJob> {
        let name = message.event_source_arn.as_deref()?.rsplit(':').next()?;
        let name = name.strip_prefix("herald-")?;
        let (queue, lane) = match name.strip_prefix("dispatch-") {
            Some(lane) => (QueueName::Dispatch, lane.parse().ok()),
            None => (QueueName::Send(name.strip_prefix("send-")?.parse().ok()?), None),
        };
        let priority = message.message_attributes.get("priority");
        Some(LeasedJob {
            id: 0,
            queue,
            priority: priority
                .and_then(|a| a.string_value.as_deref()?.parse().ok())
                .or(lane)
                .unwrap_or_default(),
            payload: message.body.clone()?,
            attempts: message.attributes.get("ApproximateReceiveCount")?.parse().ok()?,
            lease_token: message.receipt_handle.clone()?,
        })
    }
}

#[derive(Default)]
struct CountersKept(Mutex<Vec<(String, DailyCounters)>>);

#[async_trait]
impl StreamCounters for CountersKept {
    async fn add_daily_counters(&self, batch: &str, counters: &DailyCounters) -> StoreResult<bool> {
        let mut kept = self.0.lock().unwrap();
        if kept.iter().any(|(b, _)| b == batch) {
            return Ok(false);
        }
        kept.push((batch.to_owned(), counters.clone()));
        Ok(true)
    }
}

struct Host {
    _dir: tempfile::TempDir,
    backend: Arc<SqliteBackend>,
    sqs: Arc<SqsOnSqlite>,
    log: Arc<LogProvider>,
    router: IntegrationRouter,
    personalizer: Personalizer,
}

impl Host {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(SqliteBackend::open(&dir.path().join("herald.db")).unwrap());
        let contract::SendSide { log, router, personalizer } =
            contract::SendSide::over(backend.clone());
        let sqs = Arc::new(SqsOnSqlite {
            backend: backend.clone(),
            retried: Mutex::default(),
            dead: Mutex::default(),
        });
        Host { _dir: dir, backend, sqs, log, router, personalizer }
    }

    fn stages(&self) -> Stages<'_> {
        let store = self.backend.as_ref();
        Stages {
            store,
            directory: Directory { users: store, groups: store, preferences: store },
            queue: self.sqs.clone(),
            router: &self.router,
            personalizer: &self.personalizer,
            retry: RetryPolicy::default(),
        }
    }

    async fn accept(&self) {
        contract::events::accept_named(self.backend.as_ref()).await;
    }

    async fn dispatched(&self) {
        contract::events::dispatch_named(self.backend.as_ref()).await;
    }

    async fn status(&self, id: &str) -> DeliveryStatus {
        let delivery = self.backend.delivery(&DeliveryId::parse(id).unwrap()).await.unwrap();
        delivery.unwrap().status
    }

    fn sent(&self, channel: &str) -> usize {
        self.log.recent("default").iter().filter(|m| m.channel == channel).count()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dispatch_events_fan_out_once_and_dead_letter_what_is_not_a_notification() {
    let host = Host::new();
    host.accept().await;
    let response = handle_dispatch_batch(&host.stages(), sqs_event("dispatch/sqs-high.json")).await;
    assert!(response.batch_item_failures.is_empty());
    let id = NotificationId::parse(NOTIFICATION).unwrap();
    let n = host.backend.notification(&id).await.unwrap().unwrap();
    assert_eq!(n.status, NotificationStatus::Dispatched);
    for channel in [Channel::Email, Channel::Sms, Channel::Webhook] {
        assert_eq!(host.backend.depth(QueueName::Send(channel)).await.unwrap(), 1, "{channel}");
    }

    // Redelivered, and in a batch with two notifications this host never accepted: the
    // one on its first receive is tried again (its write may be under way), the one on
    // its fifth is let go.
    let response =
        handle_dispatch_batch(&host.stages(), sqs_event("dispatch/sqs-low-batch.json")).await;
    let retried: Vec<&str> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(retried, ["5a1d0c3e-0000-4000-8000-000000000001"]);
    assert_eq!(host.backend.depth(QueueName::Send(Channel::Email)).await.unwrap(), 1);

    let garbage = sqs_event("dispatch/sqs-not-a-notification.json");
    let response = handle_dispatch_batch(&host.stages(), garbage).await;
    assert!(response.batch_item_failures.is_empty(), "dead-lettered, not retried");
    let dead = host.sqs.dead.lock().unwrap().clone();
    assert_eq!(dead, [("hello".to_owned(), "the message is not a notification id".to_owned())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn send_events_send_each_delivery_once() {
    let host = Host::new();
    host.dispatched().await;
    for (file, id, channel) in [
        ("send/sqs-email.json", EMAIL, "email"),
        ("send/sqs-sms-redelivered.json", SMS, "sms"),
        ("send/sqs-webhook.json", WEBHOOK, "webhook"),
    ] {
        let response = handle_send_batch(&host.stages(), sqs_event(file)).await;
        assert!(response.batch_item_failures.is_empty(), "{file}");
        assert_eq!(host.status(id).await, DeliveryStatus::Sent, "{file}");
        assert_eq!(host.sent(channel), 1, "{file}");
        // SQS delivers at least once: the same message again sends nothing.
        let response = handle_send_batch(&host.stages(), sqs_event(file)).await;
        assert!(response.batch_item_failures.is_empty(), "{file}");
        assert_eq!(host.sent(channel), 1, "{file} sent once");
    }
    let id = NotificationId::parse(NOTIFICATION).unwrap();
    let n = host.backend.notification(&id).await.unwrap().unwrap();
    assert_eq!(n.status, NotificationStatus::Sent);
    assert!(host.sqs.retried.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn track_events_settle_deliveries_and_count() {
    let host = Host::new();
    host.dispatched().await;
    handle_send_batch(&host.stages(), sqs_event("send/sqs-email.json")).await;
    let counters = CountersKept::default();
    let tracking = Tracking {
        store: host.backend.as_ref(),
        counters: &counters,
        queue: host.backend.as_ref(),
    };

    let delivered = handle_track(&tracking, event("track/ses-delivery.json")).await.unwrap();
    assert_eq!(delivered.provider_events, 1);
    assert_eq!(host.status(EMAIL).await, DeliveryStatus::Delivered);
    for file in ["track/ses-open.json", "track/ses-click.json", "track/ses-bounce.json"] {
        let summary = handle_track(&tracking, event(file)).await.unwrap();
        assert_eq!(summary.provider_events, 1, "{file}");
    }
    let id = NotificationId::parse(NOTIFICATION).unwrap();
    let timeline = host.backend.timeline(&id).await.unwrap();
    let events: Vec<String> = timeline.into_iter().map(|e| e.event).collect();
    for wanted in ["delivered", "opened", "clicked"] {
        assert!(events.iter().any(|e| e == wanted), "{wanted} in {events:?}");
    }

    let stream = event("track/dynamodb-stream.json");
    // Two status changes, a delivery planned at intake written at its first change
    // (queued, then sent), and a notification's settle with its one delivery's `sent`
    // kept inside it (notification sent; email queued, then sent).
    assert_eq!(handle_track(&tracking, stream.clone()).await.unwrap().counted, 7);
    handle_track(&tracking, stream).await.unwrap();
    let kept = counters.0.lock().unwrap().clone();
    assert_eq!(kept.len(), 1, "a retried stream batch counts once");
    let day = &kept[0].1[&("default".to_owned(), "2026-12-01".to_owned())];
    assert_eq!(day.get("email_sent"), Some(&3));
    assert_eq!(day.get("email_queued"), Some(&2));
    assert_eq!(day.get("notifications_sent"), Some(&2));
}
