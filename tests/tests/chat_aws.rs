//! Chat on Herald's AWS shape, against the emulator and a loopback WeCom fake: two
//! send-function instances (two `Backends` on one table, as two Lambda containers)
//! share one access token and one pacing log through DynamoDB, and a robot message
//! goes through the api, dispatch and send handlers end to end.

use herald_aws::dynamo::DynamoStore;
use herald_aws::lambda::{Backends, handle_dispatch_batch, handle_send_batch};
use herald_aws::sqs::SqsQueue;
use herald_core::auth::{Scope, key_from_secret};
use herald_core::domain::NotificationId;
use herald_core::ports::{KeyStore, Store};
use herald_tests::lambda_events::{finish_batch, queue_url, receive_batch};
use herald_tests::vendor_fake::Fake;
use herald_tests::wecom;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

const KEY: &str = "hk_example_admin_key_0123456789abcdef";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// An API Gateway (HTTP API, payload 2.0) event, as `events/api/` holds them.
fn api_event(method: &str, path: &str, body: &Value) -> String {
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/api/post-notification.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    event["routeKey"] = json!(format!("{method} {path}"));
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["routeKey"] = json!(format!("{method} {path}"));
    event["headers"].as_object_mut().unwrap().remove("idempotency-key");
    event["body"] = json!(body.to_string());
    event.to_string()
}

async fn call(app: &axum::Router, event: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(event).unwrap();
    let response = app.clone().oneshot(request.map(axum::body::Body::new)).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Dispatches everything waiting on the high lane.
async fn dispatch_all(sqs: &aws_sdk_sqs::Client, backends: &Backends, prefix: &str) {
    let queue = format!("{prefix}-dispatch-high");
    loop {
        let batch = receive_batch(sqs, &queue, 10, 60).await;
        if batch.records.is_empty() {
            return;
        }
        let response = handle_dispatch_batch(&backends.stages(), batch.clone()).await;
        assert!(response.batch_item_failures.is_empty());
        finish_batch(sqs, &queue, &batch, &response).await;
    }
}

async fn send_notification(app: &axum::Router, body: Value) -> String {
    let (status, answer) = call(app, &api_event("POST", "/v1/notifications", &body)).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_senders_share_tokens_and_pacing_through_the_table() {
    let Some(_moto) = herald_contract::emulator_endpoint() else { return };
    let prefix = format!("chat{}", ulid::Ulid::new().to_string().to_lowercase());
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe {
        std::env::set_var("AWS_REGION", REGION);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("HERALD_TABLE", &prefix);
        std::env::set_var(
            "HERALD_QUEUE_URL_PREFIX",
            format!("{}/{ACCOUNT}/{prefix}", std::env::var("AWS_ENDPOINT_URL").unwrap()),
        );
        std::env::set_var(
            "HERALD_INTEGRATION_SECRETS_PATH",
            format!("/herald/{prefix}/integrations"),
        );
        std::env::set_var("HERALD_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8");
    }
    let config = herald_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    SqsQueue::create_all(&sqs, &prefix, 5).await.unwrap();
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&config), &prefix).await.unwrap();
    let fake: Fake = wecom::start(3, Duration::from_secs(3600)).await;

    // Two send-function instances on the same table, and the api.
    let first = Backends::from_env().await.unwrap();
    let second = Backends::from_env().await.unwrap();
    let admin = key_from_secret(KEY, "default", "chat", vec![Scope::Admin]).record;
    first.store.insert_api_key(&admin).await.unwrap();
    let app = herald_fn_api::aws_app(&first);
    for integration in [
        json!({"channel": "wecom", "provider": "wecom_app", "name": "hr",
               "config": {"base_url": fake.base_url, "corp_id": wecom::CORP_ID, "agent_id": 1_000_002},
               "secrets": {"corp_secret": wecom::CORP_SECRET}}),
        json!({"channel": "wecom", "provider": "wecom_robot", "name": "ops-alerts",
               "config": {"base_url": fake.base_url}, "secrets": {"key": wecom::ROBOT_KEY},
               "window_limit": {"max": 3, "window_seconds": 3600}}),
    ] {
        let (status, created) =
            call(&app, &api_event("POST", "/v1/integrations", &integration)).await;
        assert_eq!(status, 201, "{created}");
    }

    // Eight app messages and six robot messages, dispatched.
    let mut app_ids = Vec::new();
    for i in 0..8 {
        let body = json!({"to": [{"wecom": {"id": format!("member{i}")}}], "channels": ["wecom"],
                          "priority": "high", "content": {"wecom": {"text": format!("payslip {i}")}}});
        app_ids.push(send_notification(&app, body).await);
    }
    let mut robot_ids = Vec::new();
    for i in 0..6 {
        let body = json!({"to": [{"wecom": {"robot": "ops-alerts"}}], "channels": ["wecom"],
                          "priority": "high", "content": {"wecom": {"text": format!("alert {i}")}}});
        robot_ids.push(send_notification(&app, body).await);
    }
    dispatch_all(&sqs, &first, &prefix).await;

    // Both instances send at once, each its own batches of what the queue holds.
    let queue = format!("{prefix}-send-wecom");
    let mut batches = Vec::new();
    loop {
        let batch = receive_batch(&sqs, &queue, 7, 60).await;
        if batch.records.is_empty() {
            break;
        }
        batches.push(batch);
    }
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 14);
    let runs = batches.iter().enumerate().map(|(i, batch)| {
        let backends = if i % 2 == 0 { &first } else { &second };
        async move { (batch, handle_send_batch(&backends.stages(), batch.clone()).await) }
    });
    for (batch, response) in futures::future::join_all(runs).await {
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        finish_batch(&sqs, &queue, batch, &response).await;
    }

    // One token for both instances; every app message sent.
    assert_eq!(fake.tokens_issued(), 1, "the second instance used the first one's token");
    for id in &app_ids {
        let n =
            first.store.notification(&NotificationId::parse(id).unwrap()).await.unwrap().unwrap();
        assert_eq!(n.status.as_str(), "sent", "{id}");
    }
    // The robot's limit held across both: three sent, three waiting as fresh messages.
    let robot_received =
        fake.received().iter().filter(|r| r.path == "/cgi-bin/webhook/send").count();
    assert_eq!(robot_received, 3);
    assert_eq!(fake.violations(), 0);
    let mut statuses = Vec::new();
    for id in &robot_ids {
        let n =
            first.store.notification(&NotificationId::parse(id).unwrap()).await.unwrap().unwrap();
        statuses.push(n.status.as_str().to_owned());
    }
    statuses.sort();
    assert_eq!(statuses, ["dispatched", "dispatched", "dispatched", "sent", "sent", "sent"]);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url(&queue))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attributes.attributes.unwrap_or_default();
    let delayed = delayed
        .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .cloned();
    assert_eq!(delayed.as_deref(), Some("3"), "the paced sends wait as delayed copies");
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}
