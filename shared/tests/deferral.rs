//! A delivery held by quiet hours, handed to the send stage before it is due (as SQS
//! does, its delays stopping at 15 minutes): send hides it again and sends nothing.

use chrono::{Duration as Age, SubsecRound, Utc};
use herald_core::channels::{LogProvider, Providers};
use herald_core::contract;
use herald_core::domain::{DeliveryStatus, DeliveryUser, Priority};
use herald_core::pipeline::dispatch::Directory;
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::plan::plan_deliveries;
use herald_core::pipeline::send::{SendContext, SendOutcome, send};
use herald_core::pipeline::send_job;
use herald_core::ports::{Queue, QueueName, Store, Stores};
use herald_core::sqlite::SqliteBackend;
use herald_core::templates::Renderer;
use herald_core::unsubscribe::UnsubscribeLinks;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_handed_over_early_waits_until_it_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(&dir.path().join("herald.db")).unwrap());
    let stores = Stores::of(backend.clone());
    let log = Arc::new(LogProvider::default());
    let links = Arc::new(UnsubscribeLinks::new("http://localhost", stores.store.clone()));
    let personalizer =
        Personalizer::new(stores.templates.clone(), Arc::new(Renderer::new()), links);

    let mut notification = contract::notification("quiet", Priority::Medium);
    notification.channels.truncate(1);
    backend.accept(&notification, None, Vec::new()).await.unwrap();
    let mut delivery = plan_deliveries(&notification, Utc::now()).remove(0);
    let due = Utc::now().trunc_subsecs(3) + Age::hours(7);
    delivery.deliver_after = Some(due);
    delivery.user = Some(DeliveryUser {
        id: "owl".into(),
        unsubscribable: false,
        locale: None,
        time_zone: None,
    });
    // The message arrives now, seven hours early.
    let job = send_job(&delivery.id, delivery.channel, Priority::Medium);
    backend
        .record_dispatch(&notification.id, std::slice::from_ref(&delivery), vec![job])
        .await
        .unwrap();
    let queue = QueueName::Send(delivery.channel);
    let leased = backend.lease(queue, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(leased.len(), 1);

    let cx = SendContext {
        store: backend.as_ref(),
        queue: backend.as_ref(),
        providers: &Providers::new(log.clone()),
        personalizer: &personalizer,
        directory: Directory {
            users: backend.as_ref(),
            groups: backend.as_ref(),
            preferences: backend.as_ref(),
        },
        retry: Default::default(),
    };
    assert_eq!(send(&cx, &leased[0]).await.unwrap(), SendOutcome::Deferred);
    assert!(log.recent("quiet").is_empty(), "nothing was sent");
    let stored = backend.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.deliver_after), (DeliveryStatus::Queued, Some(due)));
    assert!(
        backend.lease(queue, 10, Duration::from_secs(30)).await.unwrap().is_empty(),
        "hidden until it is due"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_opted_out_while_it_waited_does_not_get_it() {
    use herald_core::ports::{PreferenceStore, UserStore};
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(&dir.path().join("herald.db")).unwrap());
    let stores = Stores::of(backend.clone());
    let log = Arc::new(LogProvider::default());
    let links = Arc::new(UnsubscribeLinks::new("http://localhost", stores.store.clone()));
    let personalizer =
        Personalizer::new(stores.templates.clone(), Arc::new(Renderer::new()), links);

    let now = Utc::now().trunc_subsecs(3);
    let profile = serde_json::from_value(serde_json::json!({"email": "owl@example.com"})).unwrap();
    let user = herald_core::domain::User {
        id: "owl".into(),
        app_id: "quiet".into(),
        profile,
        preferences: Default::default(),
        preferences_revision: 0,
        created_at: now,
        updated_at: now,
    };
    backend.upsert_users(&[user]).await.unwrap();
    let mut notification = contract::notification("quiet", Priority::Medium);
    notification.channels.truncate(1);
    backend.accept(&notification, None, Vec::new()).await.unwrap();
    let mut delivery = plan_deliveries(&notification, now).remove(0);
    // It waited for quiet hours, which have just ended...
    delivery.deliver_after = Some(now - Age::seconds(1));
    delivery.user = Some(DeliveryUser {
        id: "owl".into(),
        unsubscribable: true,
        locale: None,
        time_zone: None,
    });
    let job = send_job(&delivery.id, delivery.channel, Priority::Medium);
    backend
        .record_dispatch(&notification.id, std::slice::from_ref(&delivery), vec![job])
        .await
        .unwrap();
    // ...and meanwhile the user unsubscribed.
    let unsubscribed = serde_json::from_value(serde_json::json!({"unsubscribed": true})).unwrap();
    backend.put_preferences("quiet", "owl", &unsubscribed, None).await.unwrap();

    let queue = QueueName::Send(delivery.channel);
    let leased = backend.lease(queue, 10, Duration::from_secs(30)).await.unwrap();
    let cx = SendContext {
        store: backend.as_ref(),
        queue: backend.as_ref(),
        providers: &Providers::new(log.clone()),
        personalizer: &personalizer,
        directory: Directory {
            users: backend.as_ref(),
            groups: backend.as_ref(),
            preferences: backend.as_ref(),
        },
        retry: Default::default(),
    };
    assert_eq!(send(&cx, &leased[0]).await.unwrap(), SendOutcome::Skipped);
    assert!(log.recent("quiet").is_empty(), "nothing was sent");
    let stored = backend.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.reason.as_deref()),
        (DeliveryStatus::Suppressed, Some("opted_out"))
    );
}
