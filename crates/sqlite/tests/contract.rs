//! The Store and Queue contract on the SQLite backend, plus what only the local host
//! relies on (releasing a dead run's leases).

use herald_contract as contract;
use herald_contract::TimePasses;
use herald_core::ports::{
    Acceptance, Queue, QueueConsumer, QueueName, QueueProducer, QueueStats, Store,
};
use herald_core::time::ManualClock;
use herald_sqlite::SqliteBackend;
use std::sync::Arc;
use std::time::Duration;

fn backend() -> (SqliteBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (SqliteBackend::open(&dir.path().join("herald.db")).unwrap(), dir)
}

/// The store, its outbox queue (the same file) and the directory that holds it.
async fn store() -> Option<(SqliteBackend, Arc<dyn Queue>, tempfile::TempDir)> {
    let (b, dir) = backend();
    Some((b.clone(), Arc::new(b), dir))
}

herald_contract::store_contract!(store);

/// SQLite only: DynamoDB queues the dispatch message before it writes, so it strands
/// nothing and has no index of accepted notifications.
#[tokio::test(flavor = "multi_thread")]
async fn store_finds_stranded_notifications_page_by_page() {
    let Some((s, _q, _guard)) = store().await else { return };
    herald_contract::store_finds_stranded_notifications_page_by_page(&s).await;
}

/// The queue on a clock the test moves: timing tests take no time.
async fn queue() -> Option<(SqliteBackend, Arc<dyn TimePasses>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let backend = SqliteBackend::open_with_clock(&dir.path().join("herald.db"), clock.clone());
    Some((backend.unwrap(), clock, dir))
}

herald_contract::queue_contract!(queue, late_ack_ignored: true);

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_releases_the_leases_of_a_dead_run() {
    let (b, dir) = backend();
    let q = QueueName::Dispatch;
    let job = |p: &str| herald_core::ports::Job {
        queue: q,
        priority: herald_core::domain::Priority::Medium,
        dedup_key: None,
        payload: p.into(),
        delay: Duration::ZERO,
    };
    b.enqueue(vec![job("a"), job("b")]).await.unwrap();
    let held = b.lease(q, 2, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(held.len(), 2);
    drop(b); // the process "dies" holding both leases

    let reopened = SqliteBackend::open(&dir.path().join("herald.db")).unwrap();
    assert_eq!(reopened.release_all_leases().await.unwrap(), 2);
    let back = reopened.lease(q, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(back.len(), 2, "both jobs come back at once, not after an hour");
    assert!(back.iter().all(|j| j.attempts == 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_survives_reopening() {
    let (b, dir) = backend();
    let n = contract::notification("app", herald_core::domain::Priority::High);
    b.accept(Acceptance::new(n.clone())).await.unwrap();
    drop(b);
    let reopened = SqliteBackend::open(&dir.path().join("herald.db")).unwrap();
    assert_eq!(reopened.notification(&n.id).await.unwrap().unwrap(), n);
}

/// The local queue also drops a job whose dedup key is already waiting (SQS standard
/// queues do not; the pipeline is idempotent either way).
#[tokio::test(flavor = "multi_thread")]
async fn the_local_queue_deduplicates_waiting_jobs() {
    let (b, _dir) = backend();
    let q = QueueName::Send(herald_core::domain::Channel::Sms);
    let job = herald_core::ports::Job {
        queue: q,
        priority: herald_core::domain::Priority::Medium,
        dedup_key: Some("same".into()),
        payload: "same".into(),
        delay: Duration::ZERO,
    };
    b.enqueue(vec![job.clone(), job.clone()]).await.unwrap();
    b.enqueue(vec![job]).await.unwrap();
    assert_eq!(b.depth(q).await.unwrap(), 1);
}
