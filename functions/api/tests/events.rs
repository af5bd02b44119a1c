//! Feeds the API Gateway payloads in `events/api/` through lambda_http's decoding into
//! the function's router, as the Lambda runtime would.

use herald_core::auth::Scope;
use herald_core::auth::key_from_secret;
use herald_core::ports::{KeyStore, SettingStore};
use herald_sqlite::SqliteBackend;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "hk_example_admin_key_0123456789abcdef";

/// The notification id the `events/api/` payloads name in their paths.
const EVENT_ID: &str = "ntf_01KB0Z6Q8E6YM0000000000000";

fn event(name: &str) -> lambda_http::Request {
    event_for(name, EVENT_ID)
}

/// The event with its notification id replaced by `id` (one the test created).
fn event_for(name: &str, id: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/api/{name}", manifest_dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&text.replace(EVENT_ID, id))
        .expect("a valid API Gateway v2 event")
}

async fn call(app: &axum::Router, request: lambda_http::Request) -> (u16, Value) {
    let response = app.clone().oneshot(request.map(axum::body::Body::new)).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A fresh local database holding the events' admin key.
async fn store_with_admin_key() -> (tempfile::TempDir, SqliteBackend) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBackend::open(&dir.path().join("herald.db")).unwrap();
    store
        .insert_api_key(
            &key_from_secret(KEY, "default", "events", vec![Scope::Admin, Scope::Operator]).record,
        )
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn api_gateway_events_reach_the_router() {
    let (dir, _store) = store_with_admin_key().await;
    let app = herald_fn_api::local_app(dir.path()).unwrap();

    let (status, body) = call(&app, event("post-notification.json")).await;
    assert_eq!(status, 202, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("ntf_"));
    // The event carries an Idempotency-Key: replaying it creates nothing new.
    let (status, again) = call(&app, event("post-notification.json")).await;
    assert_eq!((status, &again["id"]), (202, &body["id"]));

    let (status, page) = call(&app, event("get-notifications.json")).await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["category"], "order-shipped");

    let (status, problem) = call(&app, event("post-notification-invalid.json")).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "to[0].email");

    let (status, problem) = call(&app, event("post-notification-no-key.json")).await;
    assert_eq!((status, &problem["status"]), (401, &Value::from(401)));

    // Every other route, through its own event.
    let id = body["id"].as_str().unwrap();
    let (status, found) = call(&app, event_for("get-notification.json", id)).await;
    assert_eq!((status, &found["id"]), (200, &body["id"]));
    let (status, _) = call(&app, event("get-notification.json")).await;
    assert_eq!(status, 404, "the events/ id itself names no notification here");
    let (status, problem) = call(&app, event_for("resend-notification.json", id)).await;
    assert_eq!(
        status, 409,
        "nothing dispatches in this test, so it is still in progress: {problem}"
    );
    let (status, canceled) = call(&app, event_for("cancel-notification.json", id)).await;
    assert_eq!((status, canceled["status"].as_str()), (200, Some("canceled")));
    let (status, resent) = call(&app, event_for("resend-notification.json", id)).await;
    assert_eq!(status, 202, "a canceled notification can be sent again: {resent}");

    let (status, key) = call(&app, event("post-key.json")).await;
    assert_eq!((status, key["app_id"].as_str()), (201, Some("shop")), "{key}");
    assert!(key["key"].as_str().unwrap().starts_with("hk_"));
    let (status, logged) = call(&app, event("get-log-messages.json")).await;
    assert_eq!(status, 200, "{logged}");
    let (status, dead) = call(&app, event("get-dead-letters.json")).await;
    assert_eq!(status, 200, "{dead}");
    for probe in ["get-healthz.json", "get-readyz.json"] {
        assert_eq!(call(&app, event(probe)).await.0, 200, "{probe}");
    }
    let (status, spec) = call(&app, event("get-openapi.json")).await;
    assert_eq!((status, spec["openapi"].as_str().map(|v| &v[..2])), (200, Some("3.")));
}

/// The signing key the unsubscribe test installs, so it can sign a token for the event.
const UNSUBSCRIBE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[tokio::test]
async fn preference_events_reach_the_router() {
    let (dir, store) = store_with_admin_key().await;
    store.init_setting(herald_core::unsubscribe::KEY_SETTING, UNSUBSCRIBE_KEY).await.unwrap();
    let app = herald_fn_api::local_app(dir.path()).unwrap();

    let (status, user) = call(&app, event("put-user.json")).await;
    assert_eq!(status, 201, "{user}");
    let (status, prefs) = call(&app, event("put-user-preferences.json")).await;
    assert_eq!((status, prefs["revision"].as_u64()), (200, Some(1)), "{prefs}");
    let (status, category) = call(&app, event("put-category.json")).await;
    assert_eq!((status, category["critical"].as_bool()), (201, Some(true)), "{category}");

    // The unsubscribe event carries no API key; its token is signed here.
    let what = herald_core::unsubscribe::Unsubscribe {
        app_id: "default".into(),
        user_id: "ann".into(),
        category: Some("newsletter".into()),
        since: herald_core::time::parse_time(user["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis(),
        key_version: herald_core::unsubscribe::KEY_VERSION,
    };
    let token = herald_core::unsubscribe::sign(&hex::decode(UNSUBSCRIBE_KEY).unwrap(), &what);
    let path = format!("{}/../../events/api/post-unsubscribe.json", manifest_dir());
    let text = std::fs::read_to_string(&path).unwrap().replace("UNSUBSCRIBE_TOKEN", &token);
    let request = lambda_http::request::from_str(&text).expect("a valid API Gateway v2 event");
    let response = app.clone().oneshot(request.map(axum::body::Body::new)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, prefs) = call(&app, event("get-user-preferences.json")).await;
    assert_eq!(prefs["categories"]["newsletter"]["channels"]["email"], false, "{prefs}");
}

/// The package's folder. Read at run time (cargo test sets it) rather than baked in at
/// build time: the build cache is shared by clones at different paths.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}
