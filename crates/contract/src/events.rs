//! The records the payloads in `events/` name, written through any `Store`: the tests
//! that feed those payloads to the Lambda handlers (in process on SQLite, or through
//! `sam local invoke` on the emulator) start from the same state.

use herald_core::domain::{Channel, NotificationId, Priority};
use herald_core::pipeline::plan::plan_deliveries;
use herald_core::ports::{Acceptance, Store};

/// The notification the dispatch and send payloads name.
pub const NOTIFICATION: &str = "ntf_01KB0Z6Q8E6YM0000000000000";
/// Its deliveries, as the send and SES payloads name them (the ids dispatch derives).
pub const EMAIL: &str = "dlv_01KB0Z6Q8E6YM0000000000000_0_email";
pub const SMS: &str = "dlv_01KB0Z6Q8E6YM0000000000000_0_sms";
pub const WEBHOOK: &str = "dlv_01KB0Z6Q8E6YM0000000000000_0_webhook";

/// The notification the payloads name, for app `default`, on every channel, accepted
/// and waiting for dispatch.
pub async fn accept_named(store: &dyn Store) {
    let mut n = super::notification("default", Priority::High);
    n.id = NotificationId::parse(NOTIFICATION).unwrap();
    n.to = vec![
        serde_json::from_value(serde_json::json!({"email": "ann@example.com",
            "phone": "+14155552671", "webhook": {"url": "https://example.com/h"}}))
        .unwrap(),
    ];
    n.channels = vec![Channel::Email, Channel::Sms, Channel::Webhook];
    n.content = serde_json::from_value(serde_json::json!({
        "email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hello"},
        "webhook": {"hello": "world"}}))
    .unwrap();
    store.accept(Acceptance::new(n.clone())).await.unwrap();
}

/// As dispatch would plan them, under the delivery ids the payloads name.
pub async fn dispatch_named(store: &dyn Store) {
    accept_named(store).await;
    let id = NotificationId::parse(NOTIFICATION).unwrap();
    let n = store.notification(&id).await.unwrap().unwrap();
    let deliveries = plan_deliveries(&n, chrono::Utc::now());
    let ids: Vec<String> = deliveries.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(ids, [EMAIL, SMS, WEBHOOK], "the payloads name the ids dispatch derives");
    assert!(store.record_dispatch(&n.id, &deliveries, vec![]).await.unwrap());
}
