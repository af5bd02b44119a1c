//! The Store and Queue contract on the SQLite backend, plus what only the local host
//! relies on (releasing a dead run's leases).

use herald_core::contract;
use herald_core::ports::{QueueConsumer, QueueName, QueueProducer, QueueStats, Store};
use herald_core::time::ManualClock;
use herald_sqlite::SqliteBackend;
use std::sync::Arc;
use std::time::Duration;

fn backend() -> (SqliteBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (SqliteBackend::open(&dir.path().join("herald.db")).unwrap(), dir)
}

macro_rules! contract_tests {
    ($($name:ident => |$b:ident| $call:expr;)+) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let ($b, _dir) = backend();
            $call.await;
        }
    )+};
}

contract_tests! {
    queue_serves_strict_priority => |b| contract::queue_serves_strict_priority(&b);
    queue_dead_letters_keep_the_job => |b| contract::queue_dead_letters_keep_the_job(&b);
    queue_takes_large_batches => |b| contract::queue_takes_large_batches(&b);
    store_accepts_once_per_idempotency_key => |b| contract::store_accepts_once_per_idempotency_key(Arc::new(b));
    store_writes_the_outbox_with_the_notification => |b| contract::store_writes_the_outbox_with_the_notification(&b, &b);
    store_enforces_the_status_machines => |b| contract::store_enforces_the_status_machines(&b, &b);
    store_lists_by_app_with_filters => |b| contract::store_lists_by_app_with_filters(&b);
    store_finds_stranded_notifications_page_by_page => |b| contract::store_finds_stranded_notifications_page_by_page(&b);
    store_keeps_api_keys_hashed_and_settings => |b| contract::store_keeps_api_keys_hashed_and_settings(&b);
    templates_keep_immutable_versions => |b| contract::templates_keep_immutable_versions(&b);
    users_upsert_keep_created_and_list_by_id => |b| contract::users_upsert_keep_created_and_list_by_id(&b);
    groups_hold_many_users_and_users_many_groups => |b| contract::groups_hold_many_users_and_users_many_groups(&b);
    preferences_survive_profile_upserts_and_writes_are_conditional => |b| contract::preferences_survive_profile_upserts_and_writes_are_conditional(&b);
    categories_are_per_app_and_listed_by_name => |b| contract::categories_are_per_app_and_listed_by_name(&b);
    cap_slots_count_each_delivery_once_up_to_the_limit => |b| contract::cap_slots_count_each_delivery_once_up_to_the_limit(&b);
    dispatch_honours_preferences => |b| contract::dispatch_honours_preferences(&b);
    integrations_are_replaced_under_a_revision => |b| contract::integrations_are_replaced_under_a_revision(&b);
    sends_fail_over_from_a_suspended_integration => |b| contract::sends_fail_over_between_integrations(Arc::new(b.clone()), &b, "broken");
    sends_fail_over_when_retries_run_out => |b| contract::sends_fail_over_between_integrations(Arc::new(b.clone()), &b, "flaky");
}

/// A backend whose queue runs on a clock the test moves: timing tests take no time.
fn backend_with_clock() -> (SqliteBackend, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let backend = SqliteBackend::open_with_clock(&dir.path().join("herald.db"), clock.clone());
    (backend.unwrap(), clock, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_leases_hide_jobs_until_they_expire() {
    let (b, clock, _dir) = backend_with_clock();
    contract::queue_leases_hide_jobs_until_they_expire(&b, true, clock.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_retries_after_a_delay() {
    let (b, clock, _dir) = backend_with_clock();
    contract::queue_retries_after_a_delay(&b, clock.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_delays_jobs() {
    let (b, clock, _dir) = backend_with_clock();
    contract::queue_delays_jobs(&b, clock.as_ref()).await;
}

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
    b.accept(&n, None, vec![]).await.unwrap();
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
