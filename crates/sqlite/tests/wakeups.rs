//! Idle workers are woken one at a time: a commit of many jobs wakes one, and each
//! lease that comes back full wakes the next, until a lease takes what is left.

use herald_core::domain::{Channel, Priority};
use herald_core::ports::{Job, QueueConsumer, QueueName, QueueProducer};
use herald_sqlite::SqliteBackend;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const QUEUE: QueueName = QueueName::Send(Channel::Webhook);
const BATCH: usize = 8;
/// Longer than any test: a waiter that returns was woken, not timed out.
const NEVER: Duration = Duration::from_secs(3600);

fn job(n: usize) -> Job {
    Job {
        queue: QUEUE,
        priority: Priority::Medium,
        dedup_key: None,
        payload: format!("job {n}"),
        delay: Duration::ZERO,
    }
}

/// Lets every spawned task run until it waits (a test's runtime has one thread).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_commit_wakes_one_worker_and_each_full_lease_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(&dir.path().join("herald.db")).unwrap());
    let woken = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (backend, woken) = (backend.clone(), woken.clone());
        tokio::spawn(async move {
            backend.wait_for_work(QUEUE, NEVER).await;
            woken.fetch_add(1, Ordering::SeqCst);
        });
    }
    settle().await;

    backend.enqueue((0..20).map(job).collect()).await.unwrap();
    settle().await;
    assert_eq!(woken.load(Ordering::SeqCst), 1, "one commit of 20 jobs wakes one worker");

    let visibility = Duration::from_secs(60);
    let leased = backend.lease(QUEUE, BATCH, visibility).await.unwrap();
    assert_eq!(leased.len(), BATCH);
    settle().await;
    assert_eq!(woken.load(Ordering::SeqCst), 2, "a full lease wakes the next worker");

    assert_eq!(backend.lease(QUEUE, BATCH, visibility).await.unwrap().len(), BATCH);
    settle().await;
    assert_eq!(woken.load(Ordering::SeqCst), 3);

    assert_eq!(backend.lease(QUEUE, BATCH, visibility).await.unwrap().len(), 4);
    settle().await;
    assert_eq!(woken.load(Ordering::SeqCst), 3, "a lease that took what was left wakes no one");
}
