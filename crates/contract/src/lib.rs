//! The contract every Store and Queue backend must meet, as async functions that take
//! the backend under test. `store_contract!` and `queue_contract!` turn them into one
//! test each for a backend, so the SQLite backend and the AWS ones are held to the same
//! behaviour and a new contract function reaches every backend at once.

pub mod events;
mod suites;

use chrono::{Duration as Age, SubsecRound, Utc};
use herald_core::auth::{Scope, mint_key};
use herald_core::domain::{
    Channel, Content, DeliveryId, DeliveryStatus, Notification, NotificationId, NotificationStatus,
    Priority, Recipient, Routing,
};
use herald_core::pipeline::plan::plan_deliveries;
use herald_core::pipeline::{dispatch_job, send_job};
use herald_core::ports::{
    AcceptOutcome, Acceptance, DeliveryOutcome, IdempotencyClaim, Job, NotificationFilter, Queue,
    QueueName, Store,
};
use std::sync::Arc;
use std::time::Duration;

pub fn notification(app: &str, priority: Priority) -> Notification {
    let now = Utc::now().trunc_subsecs(3);
    Notification {
        id: NotificationId::for_app(app),
        app_id: app.to_owned(),
        status: NotificationStatus::Accepted,
        priority,
        category: Some("alerts".into()),
        to: vec![
            serde_json::from_value::<Recipient>(serde_json::json!(
                {"email": "ann@example.com", "webhook": {"url": "https://example.com/h"}}
            ))
            .unwrap(),
        ],
        channels: vec![Channel::Email, Channel::Webhook],
        routing: Routing::All,
        content: Content::default(),
        expires_at: None,
        metadata: None,
        resent_from: None,
        template: None,
        created_at: now,
        updated_at: now,
    }
}

fn job(queue: QueueName, priority: Priority, payload: &str) -> Job {
    Job {
        queue,
        priority,
        dedup_key: Some(payload.to_owned()),
        payload: payload.to_owned(),
        delay: Duration::ZERO,
    }
}

const LONG: Duration = Duration::from_secs(60);

// ----- Queue -------------------------------------------------------------------------

/// SQS works in whole seconds: lease and delay timings in the contract are too.
const SHORT: Duration = Duration::from_secs(1);
const PAST_SHORT: Duration = Duration::from_millis(1600);

/// How a backend's time moves on in the contract: a backend with an injected clock
/// (SQLite) advances it; one whose clock is the emulator's own (SQS on moto) can only
/// wait for it.
#[async_trait::async_trait]
pub trait TimePasses: Sync {
    async fn pass(&self, by: Duration);
}

/// Waits on the wall clock: for backends whose time cannot be injected.
pub struct WallClock;

#[async_trait::async_trait]
impl TimePasses for WallClock {
    async fn pass(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

#[async_trait::async_trait]
impl TimePasses for herald_core::time::ManualClock {
    async fn pass(&self, by: Duration) {
        self.advance(by);
    }
}

pub async fn queue_serves_strict_priority(queue: &dyn Queue) {
    let q = QueueName::Dispatch;
    queue
        .enqueue(vec![
            job(q, Priority::Low, "low-1"),
            job(q, Priority::Medium, "medium-1"),
            job(q, Priority::Low, "low-2"),
            job(q, Priority::High, "high-1"),
        ])
        .await
        .unwrap();
    let leased = queue.lease(q, 10, LONG).await.unwrap();
    let order: Vec<&str> = leased.iter().map(|j| j.payload.as_str()).collect();
    assert_eq!(order, ["high-1", "medium-1", "low-1", "low-2"]);
    queue.ack(&leased).await.unwrap();
    assert_eq!(queue.depth(q).await.unwrap(), 0);
}

/// Whether a late acknowledgement (with the lease token of an expired lease) is ignored
/// is up to the backend: SQLite guarantees it; SQS documents it for the latest receipt
/// handle only and moto honours old ones. Nothing relies on it for correctness: send
/// checks the delivery's status before sending, so a re-leased job never sends twice.
pub async fn queue_leases_hide_jobs_until_they_expire(
    queue: &dyn Queue,
    late_ack_ignored: bool,
    time: &dyn TimePasses,
) {
    let q = QueueName::Send(Channel::Email);
    queue.enqueue(vec![job(q, Priority::Medium, "a")]).await.unwrap();
    let first = queue.lease(q, 10, SHORT).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    assert!(queue.lease(q, 10, LONG).await.unwrap().is_empty(), "leased jobs are invisible");
    // The holder "crashes": after the visibility timeout the job comes back.
    time.pass(PAST_SHORT).await;
    let second = queue.lease(q, 10, LONG).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);
    if late_ack_ignored {
        // The first holder's late acknowledgement must not delete the re-leased job.
        queue.ack(&first).await.unwrap();
        assert_eq!(queue.depth(q).await.unwrap(), 1);
    }
    queue.ack(&second).await.unwrap();
    assert_eq!(queue.depth(q).await.unwrap(), 0);
}

pub async fn queue_retries_after_a_delay(queue: &dyn Queue, time: &dyn TimePasses) {
    let q = QueueName::Send(Channel::Webhook);
    queue.enqueue(vec![job(q, Priority::High, "r")]).await.unwrap();
    let leased = queue.lease(q, 1, LONG).await.unwrap();
    queue.retry(&leased[0], SHORT, "503").await.unwrap();
    assert!(queue.lease(q, 1, LONG).await.unwrap().is_empty(), "not before the delay");
    time.pass(PAST_SHORT).await;
    let again = queue.lease(q, 1, LONG).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    queue.ack(&again).await.unwrap();
}

pub async fn queue_dead_letters_keep_the_job(queue: &dyn Queue) {
    let q = QueueName::Dispatch;
    queue.enqueue(vec![job(q, Priority::Low, "doomed")]).await.unwrap();
    let leased = queue.lease(q, 1, LONG).await.unwrap();
    queue.dead_letter(&leased[0], "gave up").await.unwrap();
    assert_eq!(queue.depth(q).await.unwrap(), 0);
    let dead = queue.dead_letters(10).await.unwrap();
    let entry = dead.iter().find(|d| d.payload == "doomed").expect("dead letter kept");
    assert_eq!(
        (entry.queue.as_str(), entry.error.as_str(), entry.attempts),
        ("dispatch", "gave up", 1)
    );
}

pub async fn queue_delays_jobs(queue: &dyn Queue, time: &dyn TimePasses) {
    let q = QueueName::Send(Channel::Sms);
    queue.enqueue(vec![job(q, Priority::Medium, "now")]).await.unwrap();
    let later = Job { delay: SHORT, ..job(q, Priority::High, "later") };
    queue.enqueue(vec![later]).await.unwrap();
    let now: Vec<_> = queue.lease(q, 10, LONG).await.unwrap();
    assert_eq!(now.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>(), ["now"]);
    time.pass(PAST_SHORT).await;
    let due = queue.lease(q, 10, LONG).await.unwrap();
    assert_eq!(due.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>(), ["later"]);
    queue.ack(&now).await.unwrap();
    queue.ack(&due).await.unwrap();
}

/// Batches larger than a backend's batch limit (SQS: 10) all arrive.
pub async fn queue_takes_large_batches(queue: &dyn Queue) {
    let q = QueueName::Send(Channel::Webhook);
    let jobs: Vec<_> = (0..25).map(|i| job(q, Priority::Low, &format!("bulk-{i}"))).collect();
    queue.enqueue(jobs).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let leased = queue.lease(q, 10, LONG).await.unwrap();
        seen.extend(leased.iter().map(|j| j.payload.clone()));
        queue.ack(&leased).await.unwrap();
        if seen.len() == 25 {
            break;
        }
    }
    assert_eq!(seen.len(), 25);
}

// ----- Store -------------------------------------------------------------------------

pub async fn store_accepts_once_per_idempotency_key(store: Arc<dyn Store>) {
    let claim = IdempotencyClaim { key: "k1".into(), body_hash: "h1".into() };
    let first = notification("app-1", Priority::Medium);
    assert_eq!(
        store.accept(Acceptance::new(first.clone()).with_claim(Some(claim.clone()))).await.unwrap(),
        AcceptOutcome::Created
    );
    let repeat = notification("app-1", Priority::Medium);
    assert_eq!(
        store
            .accept(Acceptance::new(repeat.clone()).with_claim(Some(claim.clone())))
            .await
            .unwrap(),
        AcceptOutcome::Replayed(first.id.clone())
    );
    let other_body = IdempotencyClaim { key: "k1".into(), body_hash: "h2".into() };
    assert_eq!(
        store
            .accept(Acceptance::new(repeat.clone()).with_claim(Some(other_body.clone())))
            .await
            .unwrap(),
        AcceptOutcome::KeyReused
    );
    assert!(store.notification(&repeat.id).await.unwrap().is_none());
    // Keys are per app.
    let other_app = notification("app-2", Priority::Medium);
    assert_eq!(
        store
            .accept(Acceptance::new(other_app.clone()).with_claim(Some(claim.clone())))
            .await
            .unwrap(),
        AcceptOutcome::Created
    );

    // Of many concurrent requests with one key, exactly one creates.
    let race = IdempotencyClaim { key: "race".into(), body_hash: "h".into() };
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (store, race) = (store.clone(), race.clone());
        tasks.push(tokio::spawn(async move {
            store
                .accept(
                    Acceptance::new(notification("app-1", Priority::High))
                        .with_claim(Some(race.clone())),
                )
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.unwrap() == AcceptOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);

    // Keys older than the window can be purged, and then the key is free again.
    assert!(store.purge_idempotency_keys(Utc::now() + Age::seconds(1)).await.unwrap() >= 3);
    let fresh = notification("app-1", Priority::Medium);
    assert_eq!(
        store.accept(Acceptance::new(fresh.clone()).with_claim(Some(claim.clone()))).await.unwrap(),
        AcceptOutcome::Created
    );
}

pub async fn store_writes_the_outbox_with_the_notification(store: &dyn Store, queue: &dyn Queue) {
    let n = notification("app-1", Priority::High);
    let outbox = vec![dispatch_job(&n.id, n.priority)];
    store.accept(Acceptance::new(n.clone()).with_outbox(outbox)).await.unwrap();
    let leased = queue.lease(QueueName::Dispatch, 100, LONG).await.unwrap();
    assert!(leased.iter().any(|j| j.payload == n.id.to_string()));
    queue.ack(&leased).await.unwrap();
}

/// A notification to addresses is planned at intake: stored `dispatched` with its
/// deliveries and their send messages, so no dispatch message; it settles as its
/// deliveries do. One whose every delivery is settled at once settles with the accept.
pub async fn store_keeps_deliveries_planned_at_intake(store: &dyn Store, queue: &dyn Queue) {
    let n = notification("app-1", Priority::High);
    let accepted = herald_core::pipeline::intake::acceptance(n.clone(), None, Utc::now());
    let accepted_deliveries = accepted.deliveries.clone();
    assert_eq!(accepted.notification.status, NotificationStatus::Dispatched);
    assert_eq!(accepted.deliveries.len(), 2, "email and webhook");
    assert!(accepted.outbox.iter().all(|job| matches!(job.queue, QueueName::Send(_))));
    store.accept(accepted).await.unwrap();
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Dispatched);
    let events: Vec<String> =
        store.timeline(&n.id).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(events, ["accepted", "dispatched", "queued", "queued"]);
    let mut sent = Vec::new();
    for channel in [Channel::Email, Channel::Webhook] {
        let leased = queue.lease(QueueName::Send(channel), 100, LONG).await.unwrap();
        let mine: Vec<_> =
            leased.iter().filter(|j| j.payload.contains(&n.id.ulid().to_string())).collect();
        assert_eq!(mine.len(), 1, "{channel:?}");
        sent.push(mine[0].payload.clone());
        queue.ack(&leased).await.unwrap();
    }
    // Before any send, each reads back as planned, one by one and as a list.
    let listed = store.deliveries(&n.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    for planned in &accepted_deliveries {
        let read = store.delivery(&planned.id).await.unwrap().expect("planned delivery");
        assert_eq!(
            (read.status, read.channel, &read.address, read.recipient_index),
            (planned.status, planned.channel, &planned.address, planned.recipient_index)
        );
        assert!(listed.iter().any(|d| d.id == planned.id && d.status == DeliveryStatus::Queued));
    }
    let sent: Vec<DeliveryId> = sent.iter().map(|id| DeliveryId::parse(id).unwrap()).collect();
    // A failed attempt before the first change is kept.
    store.record_attempt(&sent[0], 1, "timed out").await.unwrap();
    assert_eq!(store.delivery(&sent[0]).await.unwrap().unwrap().attempts, 1);
    for id in &sent {
        let outcome = || DeliveryOutcome { attempts: 2, ..Default::default() };
        assert!(store.transition_delivery(id, DeliveryStatus::Sent, outcome()).await.unwrap());
        assert!(
            !store.transition_delivery(id, DeliveryStatus::Sent, outcome()).await.unwrap(),
            "sent once"
        );
        assert_eq!(store.delivery(id).await.unwrap().unwrap().status, DeliveryStatus::Sent);
    }
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
    let events: Vec<String> =
        store.timeline(&n.id).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        // Each delivery's `sent`, then the notification's own.
        ["accepted", "dispatched", "queued", "queued", "attempt_failed", "sent", "sent", "sent"]
    );
    let listed = store.deliveries(&n.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| d.status == DeliveryStatus::Sent && d.attempts == 2));

    // Canceled before any send: its planned deliveries are canceled, and stay so.
    let doomed = notification("app-1", Priority::Medium);
    let accepted = herald_core::pipeline::intake::acceptance(doomed.clone(), None, Utc::now());
    let doomed_deliveries: Vec<DeliveryId> =
        accepted.deliveries.iter().map(|d| d.id.clone()).collect();
    store.accept(accepted).await.unwrap();
    assert!(
        store
            .transition_notification(&doomed.id, NotificationStatus::Canceled, None)
            .await
            .unwrap()
    );
    for id in &doomed_deliveries {
        assert_eq!(store.delivery(id).await.unwrap().unwrap().status, DeliveryStatus::Canceled);
        let outcome = DeliveryOutcome::default();
        assert!(!store.transition_delivery(id, DeliveryStatus::Sent, outcome).await.unwrap());
    }
    assert!(
        store
            .deliveries(&doomed.id)
            .await
            .unwrap()
            .iter()
            .all(|d| d.status == DeliveryStatus::Canceled)
    );

    // No address for its only channel: suppressed at once, and the notification failed.
    let mut nowhere = notification("app-1", Priority::Low);
    nowhere.channels = vec![Channel::Sms];
    store
        .accept(herald_core::pipeline::intake::acceptance(nowhere.clone(), None, Utc::now()))
        .await
        .unwrap();
    let stored = store.notification(&nowhere.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Failed);
}

/// A worker reads a leased batch's deliveries at once: the batch read gives, in the
/// order asked, what reading each alone gives, and nothing for a delivery that is not
/// stored.
pub async fn store_reads_a_batch_of_deliveries_to_send(store: &dyn Store) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut n = notification("app-1", Priority::Medium);
        n.channels = vec![Channel::Email];
        let accepted = herald_core::pipeline::intake::acceptance(n, None, Utc::now());
        ids.push(accepted.deliveries[0].id.clone());
        store.accept(accepted).await.unwrap();
    }
    let outcome = DeliveryOutcome { attempts: 1, ..Default::default() };
    assert!(store.transition_delivery(&ids[1], DeliveryStatus::Sent, outcome).await.unwrap());
    let unknown = DeliveryId::new();
    let asked = [ids[2].clone(), unknown, ids[1].clone(), ids[0].clone()];

    let batch = store.deliveries_to_send(&asked).await.unwrap();
    assert_eq!(batch.len(), asked.len());
    for (id, read) in asked.iter().zip(&batch) {
        assert_eq!(*read, store.delivery_to_send(id).await.unwrap());
        // And what the plain reads give, which no backend builds on its batch read.
        let delivery = store.delivery(id).await.unwrap();
        assert_eq!(read.as_ref().map(|(d, _)| d), delivery.as_ref());
        if let Some((d, Some(notification))) = read {
            let parent = store.notification(&d.notification_id).await.unwrap();
            assert_eq!(Some(notification), parent.as_ref());
        }
    }
    // A settled delivery may come with its notification or without (DynamoDB reads
    // both at once); a pending one comes with it.
    let shape: Vec<Option<(DeliveryStatus, bool)>> = batch
        .iter()
        .map(|r| r.as_ref().map(|(d, n)| (d.status, d.status.is_settled() || n.is_some())))
        .collect();
    assert_eq!(
        shape,
        [
            Some((DeliveryStatus::Queued, true)),
            None,
            Some((DeliveryStatus::Sent, true)),
            Some((DeliveryStatus::Queued, true)),
        ]
    );
    assert_eq!(batch[0].as_ref().unwrap().0.id, ids[2]);
    assert!(store.deliveries_to_send(&[]).await.unwrap().is_empty());
}

/// A notification to one address (most are) has one delivery, planned at intake: every
/// change of it reads back, one at a time and in the timeline; its settle moves the
/// notification; two sends of it at once record one; a cancel cancels it; and one that
/// failed fails its notification. (DynamoDB keeps such a delivery inside its
/// notification's item.)
pub async fn store_keeps_a_single_planned_delivery(store: &dyn Store) {
    let single = || {
        let mut n = notification("app-1", Priority::High);
        n.channels = vec![Channel::Email];
        let accepted = herald_core::pipeline::intake::acceptance(n.clone(), None, Utc::now());
        assert_eq!(accepted.deliveries.len(), 1);
        (n, accepted.deliveries[0].id.clone(), accepted)
    };
    let timeline = |id: NotificationId| async move {
        let events = store.timeline(&id).await.unwrap();
        events.into_iter().map(|e| e.event).collect::<Vec<String>>()
    };
    let (n, id, accepted) = single();
    store.accept(accepted).await.unwrap();
    let (read, parent) = store.delivery_to_send(&id).await.unwrap().expect("planned");
    assert_eq!((read.status, read.attempts), (DeliveryStatus::Queued, 0));
    assert_eq!(parent.expect("its notification").id, n.id);

    store.record_attempt(&id, 1, "timed out").await.unwrap();
    assert!(store.switch_integration(&id, "backup", "primary suspended").await.unwrap());
    let read = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.attempts, read.reason.as_deref(), read.integration.as_deref()),
        (DeliveryStatus::Queued, 1, Some("timed out"), Some("backup"))
    );
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Dispatched, "still pending");

    let sent = || DeliveryOutcome {
        provider: Some("log".into()),
        provider_message_id: Some("m-1".into()),
        attempts: 2,
        ..Default::default()
    };
    assert!(store.transition_delivery(&id, DeliveryStatus::Sent, sent()).await.unwrap());
    assert!(!store.transition_delivery(&id, DeliveryStatus::Sent, sent()).await.unwrap());
    assert!(!store.switch_integration(&id, "other", "too late").await.unwrap(), "settled");
    let read = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.attempts, read.reason, read.provider_message_id.as_deref()),
        (DeliveryStatus::Sent, 2, None, Some("m-1"))
    );
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
    let detail = store.notification_detail(&n.id).await.unwrap().unwrap();
    assert_eq!(detail.notification.status, NotificationStatus::Sent);
    let shown: Vec<_> = detail.deliveries.iter().map(|d| (d.id.clone(), d.status)).collect();
    assert_eq!(shown, [(id.clone(), DeliveryStatus::Sent)]);
    let events: Vec<_> = detail.timeline.into_iter().map(|e| e.event).collect();
    assert_eq!(events, timeline(n.id.clone()).await);
    assert!(store.record_delivery_event(&id, "opened", Some("pixel")).await.unwrap());
    let delivered = DeliveryOutcome { attempts: 2, ..Default::default() };
    assert!(store.transition_delivery(&id, DeliveryStatus::Delivered, delivered).await.unwrap());
    let listed = store.deliveries(&n.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].status, listed[0].provider.as_deref()),
        (DeliveryStatus::Delivered, Some("log"))
    );
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
    assert_eq!(
        timeline(n.id.clone()).await,
        [
            "accepted",
            "dispatched",
            "queued",
            "attempt_failed",
            "failover",
            "sent",
            "sent",
            "opened",
            "delivered"
        ]
    );

    // Two sends of it at once (a redelivered message): one is recorded.
    let (n, id, accepted) = single();
    store.accept(accepted).await.unwrap();
    let (a, b) = futures::join!(
        store.transition_delivery(&id, DeliveryStatus::Sent, sent()),
        store.transition_delivery(&id, DeliveryStatus::Sent, sent())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "exactly one of two sends is recorded: {a} {b}");
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
    let sent_events = timeline(n.id.clone()).await.iter().filter(|e| *e == "sent").count();
    assert_eq!(sent_events, 2, "the delivery's and the notification's");

    // Canceled before its send.
    let (n, id, accepted) = single();
    store.accept(accepted).await.unwrap();
    assert!(
        store.transition_notification(&n.id, NotificationStatus::Canceled, None).await.unwrap()
    );
    assert_eq!(store.delivery(&id).await.unwrap().unwrap().status, DeliveryStatus::Canceled);
    assert!(!store.transition_delivery(&id, DeliveryStatus::Sent, sent()).await.unwrap());
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Canceled);

    // Failed: so is its notification.
    let (n, id, accepted) = single();
    store.accept(accepted).await.unwrap();
    let failed = DeliveryOutcome { reason: Some("rejected".into()), ..Default::default() };
    assert!(store.transition_delivery(&id, DeliveryStatus::Failed, failed).await.unwrap());
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Failed);
    assert_eq!(timeline(n.id).await, ["accepted", "dispatched", "queued", "failed", "failed"]);

    // Fallback routing: intake plans the first channel only; when it fails, send adds
    // the next (before marking the first failed), which is read, changed and sent as
    // any delivery is, and settles the notification.
    let mut n = notification("app-1", Priority::High);
    n.routing = Routing::Fallback;
    let accepted = herald_core::pipeline::intake::acceptance(n.clone(), None, Utc::now());
    assert_eq!(accepted.deliveries.len(), 1, "the first channel only");
    let first = accepted.deliveries[0].id.clone();
    store.accept(accepted).await.unwrap();
    let rest = &n.channels[1..];
    let next = herald_core::pipeline::plan::plan_recipient(&n, 0, &n.to[0], rest, Utc::now());
    assert_eq!(next.len(), 1);
    let jobs = next.iter().map(|d| send_job(&d.id, d.channel, n.priority)).collect();
    store.insert_deliveries(&next, jobs).await.unwrap();
    let refused = DeliveryOutcome { reason: Some("refused".into()), ..Default::default() };
    assert!(store.transition_delivery(&first, DeliveryStatus::Failed, refused).await.unwrap());
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Dispatched, "its fallback is pending");
    let fallback = next[0].id.clone();
    let (read, _) = store.delivery_to_send(&fallback).await.unwrap().expect("the fallback");
    assert_eq!((read.status, read.channel), (DeliveryStatus::Queued, Channel::Webhook));
    store.record_attempt(&fallback, 1, "timed out").await.unwrap();
    assert_eq!(store.delivery(&fallback).await.unwrap().unwrap().attempts, 1);
    assert!(store.transition_delivery(&fallback, DeliveryStatus::Sent, sent()).await.unwrap());
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
    let statuses: Vec<DeliveryStatus> =
        store.deliveries(&n.id).await.unwrap().into_iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DeliveryStatus::Failed, DeliveryStatus::Sent]);
}

pub async fn store_enforces_the_status_machines(store: &dyn Store, queue: &dyn Queue) {
    let n = notification("app-1", Priority::Medium);
    store.accept(Acceptance::new(n.clone())).await.unwrap();
    assert!(!store.transition_notification(&n.id, NotificationStatus::Sent, None).await.unwrap());

    let deliveries = plan_deliveries(&n, Utc::now());
    assert_eq!(deliveries.len(), 2);
    let jobs: Vec<_> = deliveries.iter().map(|d| send_job(&d.id, d.channel, n.priority)).collect();
    assert!(store.record_dispatch(&n.id, &deliveries, jobs.clone()).await.unwrap());
    // Dispatching again (a redelivery) changes nothing and queues nothing new.
    assert!(!store.record_dispatch(&n.id, &deliveries, jobs).await.unwrap());
    assert_eq!(store.deliveries(&n.id).await.unwrap().len(), 2);
    assert_eq!(queue.depth(QueueName::Send(Channel::Email)).await.unwrap(), 1);
    assert_eq!(queue.depth(QueueName::Send(Channel::Webhook)).await.unwrap(), 1);

    let sent =
        || DeliveryOutcome { provider: Some("log".into()), attempts: 1, ..Default::default() };
    let (first, second) = (&deliveries[0].id, &deliveries[1].id);
    assert!(store.transition_delivery(first, DeliveryStatus::Sent, sent()).await.unwrap());
    assert!(
        !store.transition_delivery(first, DeliveryStatus::Sent, sent()).await.unwrap(),
        "sent once"
    );
    assert!(!store.transition_delivery(first, DeliveryStatus::Queued, sent()).await.unwrap());
    let pending = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(pending.status, NotificationStatus::Dispatched, "one delivery still queued");

    store.record_attempt(second, 1, "timed out").await.unwrap();
    let failed =
        DeliveryOutcome { reason: Some("gave up".into()), attempts: 2, ..Default::default() };
    assert!(store.transition_delivery(second, DeliveryStatus::Failed, failed).await.unwrap());
    let done = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(
        done.status,
        NotificationStatus::Sent,
        "settled: one delivery reached its recipient"
    );
    assert!(
        !store.transition_notification(&n.id, NotificationStatus::Canceled, None).await.unwrap()
    );

    assert!(store.record_delivery_event(first, "opened", Some("pixel")).await.unwrap());
    assert!(
        !store
            .record_delivery_event(&herald_core::domain::DeliveryId::new(), "opened", None)
            .await
            .unwrap()
    );
    let stored = store.delivery(second).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts, stored.reason.as_deref()),
        (DeliveryStatus::Failed, 2, Some("gave up"))
    );
    let events: Vec<String> =
        store.timeline(&n.id).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        [
            "accepted",
            "queued",
            "queued",
            "dispatched",
            "sent",
            "attempt_failed",
            "failed",
            "sent",
            "opened"
        ]
    );
    // What `GET` shows: the three parts as read apart, once it has settled.
    let detail = store.notification_detail(&n.id).await.unwrap().unwrap();
    assert_eq!(detail.notification.status, NotificationStatus::Sent);
    let ids =
        |ds: &[herald_core::domain::Delivery]| ds.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&detail.deliveries), ids(&store.deliveries(&n.id).await.unwrap()));
    let detail_events: Vec<_> = detail.timeline.into_iter().map(|e| e.event).collect();
    assert_eq!(detail_events, events);
    let unknown = herald_core::domain::NotificationId::for_app("app-1");
    assert!(store.notification_detail(&unknown).await.unwrap().is_none());

    // Canceling cancels the queued deliveries with it.
    let c = notification("app-1", Priority::Low);
    store.accept(Acceptance::new(c.clone())).await.unwrap();
    store.record_dispatch(&c.id, &plan_deliveries(&c, Utc::now()), vec![]).await.unwrap();
    assert!(
        store.transition_notification(&c.id, NotificationStatus::Canceled, None).await.unwrap()
    );
    let statuses: Vec<_> =
        store.deliveries(&c.id).await.unwrap().into_iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DeliveryStatus::Canceled, DeliveryStatus::Canceled]);
}

async fn listed_ids(
    store: &dyn Store,
    app: &str,
    filter: &NotificationFilter,
) -> Vec<NotificationId> {
    let listed = store.list_notifications(app, filter).await.unwrap();
    listed.items.into_iter().map(|n| n.id).collect()
}

pub async fn store_lists_by_app_with_filters(store: &dyn Store) {
    let app = format!("list-{}", NotificationId::new());
    let mut ids = Vec::new();
    for priority in [Priority::High, Priority::Low, Priority::High] {
        let n = notification(&app, priority);
        store.accept(Acceptance::new(n.clone())).await.unwrap();
        ids.push(n.id);
    }
    store.accept(Acceptance::new(notification("someone-else", Priority::High))).await.unwrap();
    let all = NotificationFilter { limit: 10, ..Default::default() };
    let listed = listed_ids(store, &app, &all).await;
    assert_eq!(listed, ids.iter().rev().cloned().collect::<Vec<_>>(), "own app only, newest first");
    let high = NotificationFilter { priority: Some(Priority::High), ..all.clone() };
    assert_eq!(store.list_notifications(&app, &high).await.unwrap().items.len(), 2);
    let page = NotificationFilter { limit: 1, before_id: Some(ids[2].clone()), ..all.clone() };
    let next = listed_ids(store, &app, &page).await;
    assert_eq!(next, [ids[1].clone()]);
    let by_channel = NotificationFilter { channel: Some(Channel::Sms), ..all.clone() };
    assert!(store.list_notifications(&app, &by_channel).await.unwrap().items.is_empty());
    let future = NotificationFilter { created_after: Some(Utc::now() + Age::hours(1)), ..all };
    assert!(store.list_notifications(&app, &future).await.unwrap().items.is_empty());

    // Many pages: every notification once, newest first (on DynamoDB the list is
    // spread over partitions and merged back, so this checks the merge and its cursor).
    let app = format!("pages-{}", NotificationId::new());
    let mut ids = Vec::new();
    for _ in 0..40 {
        let n = notification(&app, Priority::Low);
        store.accept(Acceptance::new(n.clone())).await.unwrap();
        ids.push(n.id);
    }
    ids.reverse();
    let mut page = NotificationFilter { limit: 7, ..Default::default() };
    let mut listed = Vec::new();
    for _ in 0..10 {
        let items = store.list_notifications(&app, &page).await.unwrap().items;
        let Some(last) = items.last() else { break };
        page.before_id = Some(last.id.clone());
        listed.extend(items.into_iter().map(|n| n.id));
    }
    assert_eq!(listed, ids);
}

pub async fn store_finds_stranded_notifications_page_by_page(store: &dyn Store) {
    let before = Utc::now() + Age::seconds(1);
    let mut total = 0;
    let mut after = None;
    loop {
        let page = store.stranded_notifications(before, after.as_ref(), 2).await.unwrap();
        total += page.len();
        assert!(page.iter().all(|n| n.status == NotificationStatus::Accepted));
        after = page.last().map(|n| n.id.clone());
        if page.len() < 2 {
            break;
        }
    }
    let n = notification("stranded", Priority::Low);
    store.accept(Acceptance::new(n.clone())).await.unwrap();
    let again =
        store.stranded_notifications(Utc::now() + Age::seconds(1), None, 10_000).await.unwrap();
    assert_eq!(again.len(), total + 1);
}

pub async fn store_keeps_api_keys_hashed_and_settings(store: &dyn Store) {
    let key = mint_key("app-9", "ci", vec![Scope::Send, Scope::Read]);
    store.insert_api_key(&key.record).await.unwrap();
    let found = store.api_key_by_hash(&key.record.hash).await.unwrap().unwrap();
    assert_eq!(found, key.record);
    assert!(store.api_key_by_hash(&key.secret).await.unwrap().is_none(), "looked up by hash only");
    assert_eq!(store.init_setting("s", "first").await.unwrap(), "first");
    assert_eq!(store.init_setting("s", "second").await.unwrap(), "first", "set once");
    assert_eq!(store.setting("s").await.unwrap().as_deref(), Some("first"));
    // The receipt index: a vendor's message id names its delivery, per vendor.
    let delivery = herald_core::domain::DeliveryId::new();
    store.remember_receipt("wechat_oa", "200163836", &delivery).await.unwrap();
    let found = store.receipt_delivery("wechat_oa", "200163836").await.unwrap();
    assert_eq!(found, Some(delivery));
    assert_eq!(store.receipt_delivery("twilio", "200163836").await.unwrap(), None);
    assert_eq!(store.receipt_delivery("wechat_oa", "1").await.unwrap(), None);
}

/// The AWS emulator's endpoint, or `None` (after saying so once) when it is not set:
/// plain `cargo test` skips the AWS tests; `scripts/test.sh` starts moto and sets
/// `HERALD_REQUIRE_EMULATOR`, which makes a missing endpoint a failure instead.
pub fn emulator_endpoint() -> Option<String> {
    static SAID: std::sync::Once = std::sync::Once::new();
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) => {
            assert!(
                endpoint.starts_with("http://127.0.0.1:"),
                "tests talk to loopback only: {endpoint}"
            );
            Some(endpoint)
        }
        Err(_) if std::env::var_os("HERALD_REQUIRE_EMULATOR").is_some() => {
            panic!("AWS_ENDPOINT_URL must point at the AWS emulator (scripts/test.sh starts moto)")
        }
        Err(_) => {
            // Straight to the terminal: the test harness would hide a passing test's
            // eprintln!.
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping the AWS tests: AWS_ENDPOINT_URL is not set \
                     (scripts/test.sh starts the moto emulator and sets it)"
                );
            });
            None
        }
    }
}

/// The SDK configuration for tests against the AWS emulator that `scripts/test.sh`
/// starts (moto on loopback), with dummy credentials; `None` to skip (see
/// [`emulator_endpoint`]).
#[cfg(feature = "aws")]
pub async fn emulator_config() -> Option<aws_config::SdkConfig> {
    emulator_endpoint()?;
    // SAFETY: tests set these before any other thread reads the environment, and every
    // test sets the same values.
    unsafe {
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
    Some(herald_core::aws_sdk::sdk_config().await)
}

/// A fresh name for one test's queues and table, so tests never see each other's data.
pub fn unique_prefix() -> String {
    format!("t{}", ulid::Ulid::new().to_string().to_lowercase())
}

// ----- Templates ---------------------------------------------------------------------

fn template_version(
    id: &str,
    version: u32,
    subject: &str,
) -> herald_core::templates::TemplateVersion {
    let parts: herald_core::templates::TemplateParts =
        serde_json::from_value(serde_json::json!({"email": {"subject": subject}})).unwrap();
    herald_core::templates::TemplateVersion {
        template_id: id.to_owned(),
        version,
        locales: [("default".to_owned(), parts)].into(),
        note: None,
        created_at: Utc::now().trunc_subsecs(3),
    }
}

pub async fn templates_keep_immutable_versions(store: &dyn herald_core::ports::TemplateStore) {
    let app = format!("tpl-{}", NotificationId::new());
    let now = Utc::now().trunc_subsecs(3);
    let template = herald_core::templates::Template {
        id: "order-shipped".into(),
        app_id: app.clone(),
        name: "Order shipped".into(),
        description: Some("sent when an order leaves the warehouse".into()),
        latest_version: 1,
        created_at: now,
        updated_at: now,
    };
    let v1 = template_version("order-shipped", 1, "v1 {{ order.id }}");
    assert!(store.create_template(&template, &v1).await.unwrap());
    assert!(!store.create_template(&template, &v1).await.unwrap(), "ids are unique per app");
    let other_app =
        herald_core::templates::Template { app_id: "someone-else".into(), ..template.clone() };
    assert!(store.create_template(&other_app, &v1).await.unwrap(), "but not across apps");

    let v2 = template_version("order-shipped", 2, "v2 {{ order.id }}");
    assert!(store.publish_template_version(&app, &v2).await.unwrap());
    assert!(!store.publish_template_version(&app, &v2).await.unwrap(), "a version is written once");
    let skipping = template_version("order-shipped", 4, "v4");
    assert!(!store.publish_template_version(&app, &skipping).await.unwrap(), "only latest + 1");

    let stored = store.template(&app, "order-shipped").await.unwrap().unwrap();
    assert_eq!((stored.latest_version, stored.name.as_str()), (2, "Order shipped"));
    assert_eq!(store.template_version(&app, "order-shipped", 1).await.unwrap(), Some(v1.clone()));
    assert_eq!(store.template_version(&app, "order-shipped", 2).await.unwrap(), Some(v2));
    assert!(store.template_version(&app, "order-shipped", 3).await.unwrap().is_none());

    let listed = store.list_templates(&app).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["order-shipped"]);

    assert!(store.delete_template(&app, "order-shipped").await.unwrap());
    assert!(!store.delete_template(&app, "order-shipped").await.unwrap());
    assert!(store.template(&app, "order-shipped").await.unwrap().is_none());
    assert!(store.template_version(&app, "order-shipped", 1).await.unwrap().is_none());
    assert!(store.template("someone-else", "order-shipped").await.unwrap().is_some());
    // The id is free again, and starts over at version 1.
    assert!(store.create_template(&template, &v1).await.unwrap());
    assert!(store.template_version(&app, "order-shipped", 2).await.unwrap().is_none());
}

// ----- Users -------------------------------------------------------------------------

fn user(app: &str, id: &str, email: &str) -> herald_core::domain::User {
    let now = Utc::now().trunc_subsecs(3);
    let profile: herald_core::domain::UserProfile = serde_json::from_value(serde_json::json!({
        "locale": "de-AT", "time_zone": "Europe/Vienna", "email": email, "phone": "+43664123456",
        "push_tokens": [{"platform": "apns", "token": "f00d"}],
        "chat": {"feishu": "ou_123"}
    }))
    .unwrap();
    herald_core::domain::User {
        id: id.to_owned(),
        app_id: app.to_owned(),
        profile,
        preferences: Default::default(),
        preferences_revision: 0,
        created_at: now,
        updated_at: now,
    }
}

pub async fn users_upsert_keep_created_and_list_by_id(store: &dyn herald_core::ports::UserStore) {
    let app = format!("users-{}", NotificationId::new());
    let first = vec![user(&app, "u-2", "b@example.com"), user(&app, "u-1", "a@example.com")];
    assert_eq!(store.upsert_users(&first).await.unwrap(), [true, true]);
    let created_at = first[0].created_at;

    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut changed = user(&app, "u-2", "new@example.com");
    changed.created_at = Utc::now().trunc_subsecs(3);
    changed.updated_at = changed.created_at;
    let third = user(&app, "u-3", "c@example.com");
    assert_eq!(store.upsert_users(&[changed.clone(), third]).await.unwrap(), [false, true]);
    let stored = store.user(&app, "u-2").await.unwrap().unwrap();
    assert_eq!(stored.profile, changed.profile, "the profile is replaced");
    assert_eq!(stored.created_at, created_at, "created_at is kept");
    assert_eq!(stored.updated_at, changed.updated_at);
    assert!(store.user("someone-else", "u-2").await.unwrap().is_none(), "ids are per app");

    let page = store.list_users(&app, None, 2).await.unwrap();
    assert_eq!(page.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u-1", "u-2"]);
    let next = store.list_users(&app, Some("u-2"), 2).await.unwrap();
    assert_eq!(next.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u-3"]);

    assert!(store.delete_user(&app, "u-1").await.unwrap());
    assert!(!store.delete_user(&app, "u-1").await.unwrap());
    assert!(store.user(&app, "u-1").await.unwrap().is_none());
}

// ----- Groups ------------------------------------------------------------------------

pub async fn groups_hold_many_users_and_users_many_groups(
    store: &dyn herald_core::ports::GroupStore,
) {
    let app = format!("groups-{}", NotificationId::new());
    let now = Utc::now().trunc_subsecs(3);
    let group = |id: &str, name: &str| herald_core::domain::Group {
        id: id.to_owned(),
        app_id: app.clone(),
        name: name.to_owned(),
        created_at: now,
        updated_at: now,
    };
    assert!(store.put_group(&group("beta", "Beta testers")).await.unwrap());
    assert!(!store.put_group(&group("beta", "Beta testers (EU)")).await.unwrap(), "a rename");
    assert_eq!(store.group(&app, "beta").await.unwrap().unwrap().name, "Beta testers (EU)");
    assert!(store.put_group(&group("staff", "Staff")).await.unwrap());
    let listed: Vec<String> =
        store.list_groups(&app).await.unwrap().into_iter().map(|g| g.id).collect();
    assert_eq!(listed, ["beta", "staff"]);

    let users: Vec<String> = (0..30).map(|i| format!("u{i:02}")).collect();
    assert_eq!(store.add_members(&app, "beta", &users).await.unwrap(), 30);
    assert_eq!(store.add_members(&app, "beta", &users[..5]).await.unwrap(), 0, "already members");
    assert_eq!(store.add_members(&app, "staff", &users[..2]).await.unwrap(), 2);
    assert_eq!(store.groups_of(&app, "u01").await.unwrap(), ["beta", "staff"]);
    assert_eq!(
        store.remove_members(&app, "beta", &["u00".into(), "nobody".into()]).await.unwrap(),
        1
    );

    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.members(&app, "beta", after.as_deref(), 7).await.unwrap();
        all.extend(page.iter().cloned());
        if page.len() < 7 {
            break;
        }
        after = page.last().cloned();
    }
    assert_eq!(all, users[1..].to_vec(), "every member once, by id");

    assert!(store.delete_group(&app, "beta").await.unwrap());
    assert!(!store.delete_group(&app, "beta").await.unwrap());
    assert!(store.members(&app, "beta", None, 100).await.unwrap().is_empty());
    assert_eq!(store.groups_of(&app, "u01").await.unwrap(), ["staff"]);
}

// ----- Preferences -------------------------------------------------------------------

/// A store that keeps users and their preferences.
pub trait UsersAndPreferences:
    herald_core::ports::UserStore + herald_core::ports::PreferenceStore
{
}
impl<T: herald_core::ports::UserStore + herald_core::ports::PreferenceStore> UsersAndPreferences
    for T
{
}

pub async fn preferences_survive_profile_upserts_and_writes_are_conditional(
    store: &dyn UsersAndPreferences,
) {
    use herald_core::ports::PreferencesWrite;
    let app = format!("prefs-{}", NotificationId::new());
    let prefs: herald_core::domain::Preferences = serde_json::from_value(serde_json::json!({
        "categories": {"news": {"enabled": false, "channels": {"sms": true}}},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "frequency_caps": [{"category": "news", "channel": "email", "limit": 2, "period": "day"}]
    }))
    .unwrap();
    assert_eq!(
        store.put_preferences(&app, "ann", &prefs, None).await.unwrap(),
        PreferencesWrite::NoUser
    );
    store.upsert_users(&[user(&app, "ann", "ann@example.com")]).await.unwrap();
    assert_eq!(store.user(&app, "ann").await.unwrap().unwrap().preferences_revision, 0);
    assert_eq!(
        store.put_preferences(&app, "ann", &prefs, None).await.unwrap(),
        PreferencesWrite::Saved { revision: 1 }
    );
    // A profile upsert leaves preferences alone.
    store.upsert_users(&[user(&app, "ann", "new@example.com")]).await.unwrap();
    let stored = store.user(&app, "ann").await.unwrap().unwrap();
    assert_eq!((stored.preferences, stored.preferences_revision), (prefs.clone(), 1));

    let unsubscribed = herald_core::domain::Preferences { unsubscribed: true, ..prefs };
    assert_eq!(
        store.put_preferences(&app, "ann", &unsubscribed, Some(0)).await.unwrap(),
        PreferencesWrite::Conflict,
        "a stale revision"
    );
    assert_eq!(
        store.put_preferences(&app, "ann", &unsubscribed, Some(1)).await.unwrap(),
        PreferencesWrite::Saved { revision: 2 }
    );
    assert!(store.user(&app, "ann").await.unwrap().unwrap().preferences.unsubscribed);

    let found = store
        .users(&app, &["nobody".to_owned(), "ann".to_owned(), "ann".to_owned()])
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.map(|u| u.preferences.unsubscribed))
        .collect::<Vec<_>>();
    assert_eq!(found, [None, Some(true), Some(true)], "in the order asked, repeats included");
    store.delete_user(&app, "ann").await.unwrap();
    assert_eq!(
        store.put_preferences(&app, "ann", &Default::default(), None).await.unwrap(),
        PreferencesWrite::NoUser,
        "preferences go with the user"
    );
}

pub async fn categories_are_per_app_and_listed_by_name(
    store: &dyn herald_core::ports::PreferenceStore,
) {
    use herald_core::domain::preferences::{CategoryCap, Period};
    let app = format!("categories-{}", NotificationId::new());
    let now = Utc::now().trunc_subsecs(3);
    let settings = |name: &str, critical: bool| herald_core::domain::CategorySettings {
        name: name.to_owned(),
        app_id: app.clone(),
        description: Some("what it is".into()),
        critical,
        enabled_by_default: !critical,
        channels: [(Channel::Sms, false)].into(),
        frequency_cap: Some(CategoryCap { limit: 3, period: Period::Day }),
        created_at: now,
        updated_at: now,
    };
    assert!(store.put_category(&settings("security", true)).await.unwrap());
    assert!(store.put_category(&settings("news", false)).await.unwrap());
    let mut changed = settings("news", false);
    changed.created_at = now + chrono::Duration::seconds(5);
    changed.updated_at = changed.created_at;
    changed.frequency_cap = None;
    assert!(!store.put_category(&changed).await.unwrap(), "a replace");
    let stored = store.category(&app, "news").await.unwrap().unwrap();
    assert_eq!(stored.created_at, now, "created_at is kept");
    assert_eq!(stored.frequency_cap, None);
    assert_eq!(stored.app_id, app);
    assert!(store.category("another-app", "news").await.unwrap().is_none());
    let names: Vec<String> =
        store.list_categories(&app).await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["news", "security"]);
    assert!(store.delete_category(&app, "news").await.unwrap());
    assert!(!store.delete_category(&app, "news").await.unwrap());
}

pub async fn cap_slots_count_each_delivery_once_up_to_the_limit(
    store: &dyn herald_core::ports::PreferenceStore,
) {
    use herald_core::domain::preferences::Period;
    let app = format!("caps-{}", NotificationId::new());
    let now = Utc::now();
    let window = herald_core::ports::CapWindow {
        app_id: app.clone(),
        user_id: "ann".into(),
        category: "news".into(),
        channel: Channel::Email,
        period: Period::Day,
        start: Period::Day.window_start(now),
    };
    let deliveries: Vec<DeliveryId> =
        (0..4).map(|i| DeliveryId::derive(&NotificationId::new(), i, "email")).collect();
    let mut taken = Vec::new();
    for d in &deliveries {
        taken.push(store.take_cap_slot(&window, d, 2).await.unwrap());
    }
    assert_eq!(taken, [true, true, false, false]);
    assert!(store.take_cap_slot(&window, &deliveries[0], 2).await.unwrap(), "counted before");
    let next_day =
        herald_core::ports::CapWindow { start: Period::Day.window_end(now), ..window.clone() };
    assert!(store.take_cap_slot(&next_day, &deliveries[2], 2).await.unwrap(), "a new window");
    let other_channel = herald_core::ports::CapWindow { channel: Channel::Sms, ..window.clone() };
    assert!(store.take_cap_slot(&other_channel, &deliveries[3], 2).await.unwrap());

    // Concurrent takers of one window: exactly `limit` win.
    let racers: Vec<DeliveryId> =
        (0..20).map(|i| DeliveryId::derive(&NotificationId::new(), i, "email")).collect();
    let window = herald_core::ports::CapWindow { user_id: "bob".into(), ..window };
    let results =
        futures::future::join_all(racers.iter().map(|d| store.take_cap_slot(&window, d, 5))).await;
    assert_eq!(results.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 5);
}

/// A store with every port dispatch reads.
pub trait DispatchStores:
    Store
    + herald_core::ports::UserStore
    + herald_core::ports::GroupStore
    + herald_core::ports::PreferenceStore
{
}
impl<T> DispatchStores for T where
    T: Store
        + herald_core::ports::UserStore
        + herald_core::ports::GroupStore
        + herald_core::ports::PreferenceStore
{
}

/// Dispatch over this backend: a 150-member group (more than one batch read), one
/// member unsubscribed, one capped at one `news` a day; a second send meets the cap.
pub async fn dispatch_honours_preferences(store: &dyn DispatchStores) {
    use herald_core::pipeline::dispatch::{Directory, DispatchOutcome, dispatch};
    let app = format!("dispatch-{}", NotificationId::new());
    let users: Vec<_> =
        (0..150).map(|i| user(&app, &format!("u{i:03}"), &format!("u{i}@example.com"))).collect();
    store.upsert_users(&users).await.unwrap();
    let prefs = |value: serde_json::Value| serde_json::from_value(value).unwrap();
    store
        .put_preferences(&app, "u001", &prefs(serde_json::json!({"unsubscribed": true})), None)
        .await
        .unwrap();
    let capped =
        serde_json::json!({"frequency_caps": [{"category": "news", "limit": 1, "period": "day"}]});
    store.put_preferences(&app, "u002", &prefs(capped), None).await.unwrap();
    let now = Utc::now().trunc_subsecs(3);
    let group = herald_core::domain::Group {
        id: "all".into(),
        app_id: app.clone(),
        name: "All".into(),
        created_at: now,
        updated_at: now,
    };
    store.put_group(&group).await.unwrap();
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    store.add_members(&app, "all", &ids).await.unwrap();

    // Both sends fall in one UTC day for the daily cap to meet the second: dispatch
    // takes the time from its caller, so both run at noon today, whatever the clock.
    let noon = Utc::now().date_naive().and_hms_opt(12, 0, 0).unwrap().and_utc();
    let directory = Directory { users: store, groups: store, preferences: store };
    for round in 1..=2 {
        let mut n = notification(&app, Priority::Medium);
        n.category = Some("news".into());
        n.channels = vec![Channel::Email];
        n.to = vec![serde_json::from_value(serde_json::json!({"group": "all"})).unwrap()];
        store.accept(Acceptance::new(n.clone())).await.unwrap();
        let outcome = dispatch(store, directory, &n.id, noon).await.unwrap();
        let suppressed = if round == 1 { 1 } else { 2 };
        assert_eq!(outcome, DispatchOutcome::Dispatched { queued: 150 - suppressed, suppressed });
        let deliveries = store.deliveries(&n.id).await.unwrap();
        assert_eq!(deliveries.len(), 150);
        let reason = |user: &str| {
            let d = deliveries.iter().find(|d| d.user.as_ref().unwrap().id == user).unwrap();
            (d.status, d.reason.clone())
        };
        assert_eq!(reason("u001"), (DeliveryStatus::Suppressed, Some("opted_out".into())));
        let u002 = if round == 1 {
            (DeliveryStatus::Queued, None)
        } else {
            (DeliveryStatus::Suppressed, Some("frequency_cap".into()))
        };
        assert_eq!(reason("u002"), u002, "round {round}");
        assert_eq!(reason("u149"), (DeliveryStatus::Queued, None));
        // Users are numbered after the notification's own `to` (one entry, the group).
        let first = deliveries.iter().find(|d| d.recipient_index == 1).unwrap();
        let user = first.user.as_ref().unwrap();
        assert_eq!(user.id, "u000");
        assert_eq!((user.locale.as_deref(), user.unsubscribable), (Some("de-AT"), true));
    }
}

mod integrations;
pub use integrations::{
    integrations_are_replaced_under_a_revision,
    sends_dead_letter_a_job_given_up_just_before_a_stop, sends_fail_over_between_integrations,
};

/// What the send stage needs beside the store, over one backend with every store
/// port: a log provider for every channel (to read back what was sent), the
/// integration router over it, and the personalizer.
pub struct SendSide {
    pub log: Arc<herald_core::channels::LogProvider>,
    pub router: herald_core::integrations::IntegrationRouter,
    pub personalizer: herald_core::pipeline::personalize::Personalizer,
}

impl SendSide {
    pub fn over<B>(backend: Arc<B>) -> Self
    where
        B: Store
            + herald_core::ports::TemplateStore
            + herald_core::ports::UserStore
            + herald_core::ports::GroupStore
            + herald_core::ports::PreferenceStore
            + herald_core::ports::IntegrationStore,
    {
        use herald_core::channels::{LogProvider, Providers};
        let stores = herald_core::ports::Stores::of(backend.clone());
        let links = Arc::new(herald_core::unsubscribe::UnsubscribeLinks::new(
            "http://localhost",
            stores.store.clone(),
        ));
        let renderer = Arc::new(herald_core::templates::Renderer::new());
        let personalizer = herald_core::pipeline::personalize::Personalizer::new(
            stores.templates.clone(),
            renderer,
            links,
        );
        let log = Arc::new(LogProvider::default());
        let router = herald_core::integrations::IntegrationRouter::with_ephemeral_key(
            backend,
            Providers::new(log.clone()),
        );
        SendSide { log, router, personalizer }
    }
}
