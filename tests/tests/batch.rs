//! `POST /v1/notifications/batch` on both backends: SQLite, and DynamoDB with SQS on
//! the emulator. Each runs the router both servers run (`herald serve` and the api
//! function) over its backend, in process, and meets the same contract.

use axum::Router;
use herald_aws::dynamo::DynamoStore;
use herald_aws::sqs::SqsQueue;
use herald_contract::SendSide;
use herald_core::auth::{Scope, key_from_secret};
use herald_core::ports::{
    GroupStore, IntegrationStore, PreferenceStore, Queue, Store, Stores, TemplateStore, UserStore,
};
use herald_core::templates::Renderer;
use herald_http::{AppState, Limits, router};
use herald_sqlite::SqliteBackend;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const KEY: &str = "hk_batch_test_key_0123456789abcdef0123";

/// The router over one backend, with an admin key for app `default`, accepting
/// `in_flight` items of a batch at once.
async fn app_over<B>(backend: Arc<B>, queue: Arc<dyn Queue>, in_flight: usize) -> Router
where
    B: Store + TemplateStore + UserStore + GroupStore + PreferenceStore + IntegrationStore,
{
    let key = key_from_secret(KEY, "default", "batch", vec![Scope::Admin]);
    backend.insert_api_key(&key.record).await.unwrap();
    let side = SendSide::over(backend.clone());
    let links = side.personalizer.links.clone();
    let state = AppState::new(
        Stores::of(backend),
        queue,
        Arc::new(side.router),
        Limits { batch_in_flight: in_flight, ..Limits::default() },
        Arc::new(Renderer::new()),
        links,
    );
    router(state)
}

async fn call(app: &Router, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json");
    let body = body.map(|b| axum::body::Body::from(b.to_string())).unwrap_or_default();
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The items that are refused, and the field each problem must name.
const INVALID: [(usize, &str); 3] =
    [(10, "items[10].to[0].email"), (50, "items[50].channels[0]"), (99, "items[99].content")];

/// Item `i` of a batch of 100: an email with its own idempotency key; three are invalid.
fn item(i: usize) -> Value {
    let mut item = json!({
        "to": [{"email": format!("user{i}@example.com")}],
        "channels": ["email"],
        "content": {"email": {"subject": "Hello", "text": format!("Item {i}")}},
        "idempotency_key": format!("batch-item-{i}"),
    });
    match i {
        10 => item["to"][0]["email"] = json!("not-an-email"),
        50 => item["channels"] = json!(["pigeon"]),
        99 => {
            item.as_object_mut().unwrap().remove("content");
        }
        _ => {}
    }
    item
}

async fn notifications_stored(app: &Router) -> usize {
    let (status, page) = call(app, "GET", "/v1/notifications?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().len()
}

async fn batch_contract(app: Router) {
    let batch = json!({"items": (0..100).map(item).collect::<Vec<_>>()});
    let (status, first) = call(&app, "POST", "/v1/notifications/batch", Some(&batch)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["accepted"].as_u64(), first["rejected"].as_u64()),
        (Some(97), Some(3)),
        "{first}"
    );
    let results = first["items"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["index"], i);
        match INVALID.iter().find(|(index, _)| *index == i) {
            Some((_, field)) => {
                assert!(result.get("id").is_none(), "{result}");
                assert_eq!(result["problem"]["status"], 422, "{result}");
                assert_eq!(result["problem"]["errors"][0]["field"], *field, "{result}");
            }
            None => {
                assert!(result["id"].as_str().unwrap().starts_with("ntf_"), "{result}");
                assert_eq!(result["status"], "accepted");
                assert!(result.get("replayed").is_none(), "a first send is not a replay");
            }
        }
    }
    assert_eq!(notifications_stored(&app).await, 97);

    // The same batch again: every accepted item replays its notification.
    let (status, again) = call(&app, "POST", "/v1/notifications/batch", Some(&batch)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!((again["accepted"].as_u64(), again["rejected"].as_u64()), (Some(97), Some(3)));
    for (first, again) in results.iter().zip(again["items"].as_array().unwrap()) {
        assert_eq!(first["id"], again["id"]);
        if first.get("id").is_some() {
            assert_eq!(again["replayed"], true, "{again}");
        }
    }
    assert_eq!(notifications_stored(&app).await, 97, "a repeated batch creates nothing");

    // A key reused with another body is that item's conflict, not the batch's.
    let mut changed = item(0);
    changed["content"]["email"]["text"] = json!("Something else");
    let mixed = json!({"items": [changed, item(1)]});
    let (status, answer) = call(&app, "POST", "/v1/notifications/batch", Some(&mixed)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"][0]["problem"]["status"], 409, "{answer}");
    assert_eq!(answer["items"][1]["replayed"], true, "{answer}");

    // Too few or too many items refuse the whole batch, naming `items`.
    for count in [0, 101] {
        let batch = json!({"items": (0..count).map(item).collect::<Vec<_>>()});
        let (status, problem) = call(&app, "POST", "/v1/notifications/batch", Some(&batch)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "items", "{problem}");
    }
    // So does an item that is not an object: the request is malformed.
    let batch = json!({"items": [item(1), 7]});
    let (status, problem) = call(&app, "POST", "/v1/notifications/batch", Some(&batch)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "items[1]", "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(&dir.path().join("herald.db")).unwrap());
    batch_contract(app_over(backend.clone(), backend, 16).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_on_dynamodb_and_sqs() {
    let Some(config) = herald_contract::emulator_config().await else { return };
    let endpoint = herald_contract::emulator_endpoint().unwrap();
    let prefix = herald_contract::unique_prefix();
    let sqs = aws_sdk_sqs::Client::new(&config);
    SqsQueue::create_all(&sqs, &prefix, 5).await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    DynamoStore::create_table(&dynamodb, &prefix).await.unwrap();
    let queue_urls = format!("{endpoint}/123456789012/{prefix}");
    let queue = Arc::new(SqsQueue::with_url_prefix(sqs, &queue_urls));
    let store = Arc::new(DynamoStore::new(dynamodb, prefix, queue.clone()));
    // One item at a time: moto's TransactWriteItems is not safe under concurrent
    // requests (it deep-copies a table while another request writes to it and fails
    // with "dictionary changed size during iteration"); DynamoDB itself is.
    batch_contract(app_over(store, queue, 1).await).await;
}
