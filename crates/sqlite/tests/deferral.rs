//! Deliveries held by quiet hours, at the send stage on SQLite: one handed over before
//! it is due (as SQS does, its delays stopping at 15 minutes) is hidden again and not
//! sent; one whose user unsubscribed while it waited is suppressed.

use chrono::{DateTime, Duration as Age, SubsecRound, Utc};
use herald_contract as contract;
use herald_core::channels::LogProvider;
use herald_core::domain::{Delivery, DeliveryStatus, DeliveryUser, Priority};
use herald_core::integrations::IntegrationRouter;
use herald_core::pipeline::dispatch::Directory;
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::plan::plan_deliveries;
use herald_core::pipeline::send::{SendContext, SendOutcome, send};
use herald_core::pipeline::send_job;
use herald_core::ports::{
    Acceptance, LeasedJob, PreferenceStore, QueueConsumer, QueueName, Store, UserStore,
};
use herald_sqlite::SqliteBackend;
use std::sync::Arc;
use std::time::Duration;

const APP: &str = "quiet";

struct Fixture {
    _dir: tempfile::TempDir,
    backend: Arc<SqliteBackend>,
    log: Arc<LogProvider>,
    router: IntegrationRouter,
    personalizer: Personalizer,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(SqliteBackend::open(&dir.path().join("herald.db")).unwrap());
        let contract::SendSide { log, router, personalizer } =
            contract::SendSide::over(backend.clone());
        let now = Utc::now().trunc_subsecs(3);
        let profile = serde_json::from_value(serde_json::json!({"email": "owl@example.com"}));
        let user = herald_core::domain::User {
            id: "owl".into(),
            app_id: APP.into(),
            profile: profile.unwrap(),
            preferences: Default::default(),
            preferences_revision: 0,
            created_at: now,
            updated_at: now,
        };
        backend.upsert_users(&[user]).await.unwrap();
        Fixture { _dir: dir, backend, log, router, personalizer }
    }

    /// An email to user `owl` held until `due`, dispatched, and its send message
    /// leased now.
    async fn held_delivery(&self, due: DateTime<Utc>) -> (Delivery, LeasedJob) {
        let mut notification = contract::notification(APP, Priority::Medium);
        notification.channels.truncate(1);
        self.backend.accept(Acceptance::new(notification.clone())).await.unwrap();
        let mut delivery = plan_deliveries(&notification, Utc::now()).remove(0);
        delivery.deliver_after = Some(due);
        delivery.user = Some(DeliveryUser {
            id: "owl".into(),
            unsubscribable: true,
            locale: None,
            time_zone: None,
            since: Some(0),
        });
        let job = send_job(&delivery.id, delivery.channel, Priority::Medium);
        let planned = std::slice::from_ref(&delivery);
        self.backend.record_dispatch(&notification.id, planned, vec![job]).await.unwrap();
        let queue = QueueName::Send(delivery.channel);
        let mut leased = self.backend.lease(queue, 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(leased.len(), 1);
        (delivery, leased.remove(0))
    }

    async fn send(&self, job: &LeasedJob) -> SendOutcome {
        let backend = self.backend.as_ref();
        let cx = SendContext {
            store: backend,
            queue: backend,
            router: &self.router,
            personalizer: &self.personalizer,
            directory: Directory { users: backend, groups: backend, preferences: backend },
            retry: Default::default(),
        };
        send(&cx, job).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_handed_over_early_waits_until_it_is_due() {
    let fixture = Fixture::new().await;
    // The message arrives now, seven hours early.
    let due = Utc::now().trunc_subsecs(3) + Age::hours(7);
    let (delivery, job) = fixture.held_delivery(due).await;

    assert_eq!(fixture.send(&job).await, SendOutcome::Deferred);
    assert!(fixture.log.recent(APP).is_empty(), "nothing was sent");
    let stored = fixture.backend.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.deliver_after), (DeliveryStatus::Queued, Some(due)));
    let queue = QueueName::Send(delivery.channel);
    assert!(
        fixture.backend.lease(queue, 10, Duration::from_secs(30)).await.unwrap().is_empty(),
        "hidden until it is due"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_opted_out_while_it_waited_does_not_get_it() {
    let fixture = Fixture::new().await;
    // It waited for quiet hours, which have just ended...
    let (delivery, job) = fixture.held_delivery(Utc::now() - Age::seconds(1)).await;
    // ...and meanwhile the user unsubscribed.
    let unsubscribed = serde_json::from_value(serde_json::json!({"unsubscribed": true})).unwrap();
    fixture.backend.put_preferences(APP, "owl", &unsubscribed, None).await.unwrap();

    assert_eq!(fixture.send(&job).await, SendOutcome::Skipped);
    assert!(fixture.log.recent(APP).is_empty(), "nothing was sent");
    let stored = fixture.backend.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.reason.as_deref()),
        (DeliveryStatus::Suppressed, Some("opted_out"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_due_delivery_to_a_user_who_still_wants_it_is_sent() {
    let fixture = Fixture::new().await;
    let (delivery, job) = fixture.held_delivery(Utc::now() - Age::seconds(1)).await;
    assert_eq!(fixture.send(&job).await, SendOutcome::Sent);
    assert_eq!(fixture.log.recent(APP).len(), 1);
    let stored = fixture.backend.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_deleted_while_it_waited_does_not_get_it() {
    let fixture = Fixture::new().await;
    let (delivery, job) = fixture.held_delivery(Utc::now() - Age::seconds(1)).await;
    assert!(fixture.backend.delete_user(APP, "owl").await.unwrap());

    assert_eq!(fixture.send(&job).await, SendOutcome::Skipped);
    assert!(fixture.log.recent(APP).is_empty(), "nothing was sent");
    let stored = fixture.backend.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.reason.as_deref()),
        (DeliveryStatus::Suppressed, Some("user_deleted"))
    );
}
