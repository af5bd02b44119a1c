//! Feeds the API Gateway payloads in `events/api/` through lambda_http's decoding into
//! the function's router, as the Lambda runtime would.

use herald_core::auth::Scope;
use herald_core::auth::key_from_secret;
use herald_core::ports::Store;
use herald_core::sqlite::SqliteBackend;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "hk_example_admin_key_0123456789abcdef";

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/api/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&text).expect("a valid API Gateway v2 event")
}

async fn call(app: &axum::Router, request: lambda_http::Request) -> (u16, Value) {
    let response = app.clone().oneshot(request.map(axum::body::Body::new)).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_gateway_events_reach_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBackend::open(&dir.path().join("herald.db")).unwrap();
    store
        .insert_api_key(&key_from_secret(KEY, "default", "events", vec![Scope::Admin]).record)
        .await
        .unwrap();
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
}
