//! Herald's AWS shape end to end on the emulator: the `api` handler takes the API
//! Gateway events in `events/api/`, the `dispatch` and `send` handlers are fed the
//! messages actually received from the emulated SQS queues (as Lambda's event source
//! mapping would), SES and SNS record the sends, `track` applies SES feedback and the
//! table's stream, and a redelivered batch sends nothing twice. Every AWS request goes
//! through a counting proxy, so the test also reports requests per notification.

use aws_lambda_events::sqs::SqsEvent;
use herald_aws::dynamo::DynamoStore;
use herald_aws::lambda::{
    Backends, Tracking, handle_dispatch_batch, handle_send_batch, handle_track,
};
use herald_aws::sqs::SqsQueue;
use herald_core::auth::{Scope, key_from_secret};
use herald_core::domain::{DeliveryStatus, NotificationId, NotificationStatus};
use herald_core::ports::{KeyStore, QueueProducer, Store, UserStore};
use herald_tests::aws_proxy::CountingProxy;
use herald_tests::emulator::{moto_data, sent_emails, sent_sms};
use herald_tests::lambda_events::{StreamSource, finish_batch, queue_url, receive_batch};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "hk_example_admin_key_0123456789abcdef";
/// DynamoDB write units one single-recipient email may cost from accept to sent
/// (docs/performance.md, "Cost on AWS"): the notification, in its app's list with no
/// index entry, then its one delivery's `sent` and the notification's own, one update
/// of its item (the delivery is kept inside it). A change that writes more fails here.
const WRITE_UNITS_PER_EMAIL: u64 = 2;
/// DynamoDB read units one single-recipient email may cost from accept to sent, the
/// api's key read excluded (cached): send reads the notification, which holds its one
/// delivery, eventually consistent (0.5), and writes the `sent` on that read.
const READ_UNITS_PER_EMAIL: f64 = 0.5;
/// Write units of one email of about 3 KB to 40 addresses, accept to `sent`: the
/// notification (a 5 KB item: 5), its 40 deliveries written at intake and sent (80),
/// their counts in a small item of their own (1 + 40) and the settle (5). Counted by
/// updates of the notification's own item, as before, it cost 291.
const WRITE_UNITS_LARGE_TO_40: u64 = 131;
/// SendMessageBatch calls for a batch of 100 emails: the api plans each email's
/// delivery and queues the 100 send messages ten to a call; dispatch is not involved.
const SQS_SENDS_PER_100_BATCHED: u64 = 10;
/// SendMessageBatch calls for ten medium-priority emails sent one per request: none
/// from the api; track finds their messages on the stream and sends them in one call.
const SQS_SENDS_PER_10_SINGLE: u64 = 1;
const REGION: &str = "us-east-1";

fn events_file(path: &str) -> String {
    let path = format!("{}/../events/{path}", manifest_dir());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn call_api(app: &axum::Router, event: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(&events_file(event)).unwrap();
    let response = app.clone().oneshot(request.map(axum::body::Body::new)).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_goes_through_every_function_on_the_emulator() {
    let Some(moto) = herald_contract::emulator_endpoint() else { return };
    let proxy = CountingProxy::start(&moto).await.unwrap();
    let prefix = format!("e2e{}", ulid::Ulid::new().to_string().to_lowercase());
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &proxy.url);
        std::env::set_var("AWS_REGION", REGION);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("HERALD_TABLE", &prefix);
        // As the template does: queue URLs from a prefix, no lookups (moto's form).
        std::env::set_var(
            "HERALD_QUEUE_URL_PREFIX",
            format!("{}/123456789012/{prefix}", proxy.url),
        );
        std::env::set_var("HERALD_EMAIL_FROM", "herald@example.com");
        std::env::set_var("HERALD_SES_CONFIGURATION_SET", &prefix);
        // As the template's default: medium and low priority queue by the stream.
        std::env::set_var("HERALD_STREAM_OUTBOX", "medium,low");
    }

    // What the SAM template creates, plus the verified sender SES requires.
    let config = herald_aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    SqsQueue::create_all(&sqs, &prefix, 5).await.unwrap();
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&config), &prefix).await.unwrap();
    let ses = aws_sdk_sesv2::Client::new(&config);
    ses.create_email_identity().email_identity("herald@example.com").send().await.unwrap();
    ses.create_configuration_set().configuration_set_name(&prefix).send().await.unwrap();

    let mut table_stream = StreamSource::open(&moto, &prefix, "TrackFunction", "TableStream").await;
    let backends = Backends::from_env().await.unwrap();
    let admin = key_from_secret(KEY, "default", "e2e", vec![Scope::Admin]).record;
    backends.store.insert_api_key(&admin).await.unwrap();
    let app = herald_fn_api::aws_app(&backends);
    let emails_before = sent_emails(&moto_data(&moto).await, "ann@example.com");
    let sms_before = sent_sms(&moto_data(&moto).await, "+14155550123");
    proxy.reset();

    // api: two notifications (email at high priority, SMS at low); a replay is a no-op.
    let (status, email) = call_api(&app, "api/post-notification.json").await;
    assert_eq!(status, 202, "{email}");
    let (status, again) = call_api(&app, "api/post-notification.json").await;
    assert_eq!((status, &again["id"]), (202, &email["id"]), "idempotent replay");
    let (status, sms) = call_api(&app, "api/post-notification-sms.json").await;
    assert_eq!(status, 202, "{sms}");
    let email_id = NotificationId::parse(email["id"].as_str().unwrap()).unwrap();
    let sms_id = NotificationId::parse(sms["id"].as_str().unwrap()).unwrap();

    // Both go to addresses, so the api planned their deliveries itself: nothing waits
    // for dispatch (fed below, for a notification to a user). It queued the email's
    // send (high priority); the SMS's (low) rides in its item, and track sends it when
    // the table's stream, through the template's filter, brings the item's INSERT.
    for lane in ["dispatch-high", "dispatch-low"] {
        let queue = format!("{prefix}-{lane}");
        assert!(receive_batch(&sqs, &queue, 10, 30).await.records.is_empty(), "{lane}");
    }
    let sms_queue = format!("{prefix}-send-sms");
    assert!(receive_batch(&sqs, &sms_queue, 10, 0).await.records.is_empty(), "not yet queued");
    let stream = table_stream.next_event().await;
    let summary = handle_track(&backends.tracking(), stream).await.unwrap();
    assert_eq!(summary.forwarded, 1, "the SMS's send, from the stream");

    // send: the first run "crashes" before Lambda deletes the message; its visibility
    // timeout then runs out (set to zero here rather than waited for), SQS redelivers
    // it, and the second run must send nothing.
    let email_queue = format!("{prefix}-send-email");
    let first = receive_batch(&sqs, &email_queue, 10, 30).await;
    assert_eq!(first.records.len(), 1);
    let handle = first.records[0].receipt_handle.clone().unwrap();
    assert!(handle_send_batch(&backends.stages(), first).await.batch_item_failures.is_empty());
    sqs.change_message_visibility()
        .queue_url(queue_url(&email_queue))
        .receipt_handle(handle)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let redelivered = receive_batch(&sqs, &email_queue, 10, 30).await;
    assert_eq!(redelivered.records.len(), 1, "SQS redelivers the unacknowledged message");
    assert_eq!(redelivered.records[0].attributes["ApproximateReceiveCount"], "2");
    let response = handle_send_batch(&backends.stages(), redelivered.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    finish_batch(&sqs, &email_queue, &redelivered, &response).await;

    let batch = receive_batch(&sqs, &sms_queue, 10, 30).await;
    assert_eq!(batch.records.len(), 1);
    let response = handle_send_batch(&backends.stages(), batch.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    finish_batch(&sqs, &sms_queue, &batch, &response).await;

    // SES and SNS recorded exactly one send each.
    let data = moto_data(&moto).await;
    assert_eq!(sent_emails(&data, "ann@example.com") - emails_before, 1, "one email, not two");
    assert_eq!(sent_sms(&data, "+14155550123") - sms_before, 1);
    for id in [&email_id, &sms_id] {
        let notification = backends.store.notification(id).await.unwrap().unwrap();
        assert_eq!(notification.status, NotificationStatus::Sent);
        let events: Vec<String> =
            backends.store.timeline(id).await.unwrap().into_iter().map(|e| e.event).collect();
        assert_eq!(events, ["accepted", "dispatched", "queued", "sent", "sent"], "{id}");
    }
    let email_delivery = backends.store.deliveries(&email_id).await.unwrap().remove(0);
    assert_eq!(email_delivery.provider.as_deref(), Some("ses"));

    // track: what the table's stream recorded, through the template's filter, counts
    // both notifications and their deliveries (each kept inside its notification's item)
    // as sent, on the day they changed.
    let stream = table_stream.next_event().await;
    let summary = handle_track(&backends.tracking(), stream).await.unwrap();
    assert!(summary.counted > 0);
    assert_eq!(summary.forwarded, 0, "a notification's later changes send nothing");
    let updated = backends.store.notification(&email_id).await.unwrap().unwrap().updated_at;
    let day = updated.format("%Y-%m-%d").to_string();
    let counters = backends.store.daily_counters("default", &day).await.unwrap();
    for (counter, count) in [("notifications_sent", 2), ("email_sent", 1), ("sms_sent", 1)] {
        assert_eq!(counters.get(counter), Some(&count), "{counter} in {counters:?}");
    }

    // track: SES feedback (the events/ payload, tagged with this delivery's id) marks
    // the email delivered and records an open.
    for event in ["track/ses-delivery.json", "track/ses-open.json"] {
        let tagged = events_file(event)
            .replace("dlv_01KB0Z6Q8E6YM0000000000000_0_email", &email_delivery.id.to_string());
        let summary = handle_track(&backends.tracking(), serde_json::from_str(&tagged).unwrap())
            .await
            .unwrap();
        assert_eq!(summary.provider_events, 1, "{event}");
    }
    let delivered = backends.store.delivery(&email_delivery.id).await.unwrap().unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    let last = backends.store.timeline(&email_id).await.unwrap().pop().unwrap();
    assert_eq!(last.event, "opened");

    let requests = proxy.counts();
    let total: u64 = requests.values().sum();
    println!(
        "AWS requests for 2 notifications (api + dispatch + send + track, incl. one replay and one redelivery): {total}"
    );
    for (operation, count) in &requests {
        println!("  {operation}: {count}");
    }

    // A message for a notification that was never written (the api stopped between
    // queueing and writing) is tried again a few times, then let go.
    let ghost = herald_contract::notification("default", herald_core::domain::Priority::Low);
    let job = herald_core::pipeline::dispatch_job(&ghost.id, ghost.priority);
    backends.queue.enqueue(vec![job]).await.unwrap();
    let low = format!("{prefix}-dispatch-low");
    let batch = receive_batch(&sqs, &low, 10, 30).await;
    let response = handle_dispatch_batch(&backends.stages(), batch.clone()).await;
    assert_eq!(response.batch_item_failures.len(), 1, "tried again, not dropped at once");
    finish_batch(&sqs, &low, &batch, &response).await;
    // The same for a send message whose planned delivery was never written.
    let delivery = herald_core::domain::DeliveryId::derive(&ghost.id, 0, "email");
    let email = herald_core::domain::Channel::Email;
    let job = herald_core::pipeline::send_job(&delivery, email, ghost.priority);
    backends.queue.enqueue(vec![job]).await.unwrap();
    let batch = receive_batch(&sqs, &email_queue, 10, 30).await;
    assert_eq!(batch.records.len(), 1);
    let response = handle_send_batch(&backends.stages(), batch.clone()).await;
    assert_eq!(response.batch_item_failures.len(), 1, "tried again, not dropped at once");
    // Out of the way of the counts below.
    let handle = batch.records[0].receipt_handle.clone().unwrap();
    let url = queue_url(&email_queue);
    sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.unwrap();

    // track: the table's stream (the events/ batch) counts each status change once,
    // even when Lambda retries the batch.
    let stream: Value = serde_json::from_str(&events_file("track/dynamodb-stream.json")).unwrap();
    assert_eq!(handle_track(&backends.tracking(), stream.clone()).await.unwrap().counted, 7);
    handle_track(&backends.tracking(), stream).await.unwrap();
    let counters = backends.store.daily_counters("default", "2026-12-01").await.unwrap();
    assert_eq!(counters.get("email_sent"), Some(&3));
    assert_eq!(counters.get("email_queued"), Some(&2));
    assert_eq!(counters.get("notifications_sent"), Some(&2));

    // The bill: DynamoDB write units and AWS requests for one single-recipient email
    // (no idempotency key) from accept to sent, then for a batch of 100.
    let email = |to: &str| {
        json!({"to": [{"email": to}], "channels": ["email"],
               "content": {"email": {"subject": "Your code", "text": "Your code is 123456"}}})
    };
    // Track's per-day counters are billed per stream batch (up to 100 records), with or
    // without the messages it carries, so here they go around the proxy.
    let direct = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(&moto).build(),
    );
    let counters = DynamoStore::new(direct, &prefix, backends.queue.clone());
    let tracking = Tracking {
        store: backends.store.as_ref(),
        counters: &counters,
        queue: backends.queue.as_ref(),
    };
    let pump = async |stream: &mut StreamSource| {
        handle_track(&tracking, stream.next_event().await).await.unwrap().forwarded
    };
    pump(&mut table_stream).await;
    proxy.reset();
    let one = email("bob@example.com");
    let (status, body) = call_router(&app, "POST", "/v1/notifications", Some(KEY), &one).await;
    assert_eq!(status, 202, "{body}");
    let medium = format!("{prefix}-dispatch-medium");
    assert_eq!(drain(&sqs, &medium, &backends, Stage::Dispatch).await, 0);
    assert_eq!(pump(&mut table_stream).await, 1, "medium priority: its send by the stream");
    assert_eq!(drain(&sqs, &email_queue, &backends, Stage::Send).await, 1);
    let units = proxy.write_units();
    report("one email, one request", 1, units, proxy.read_units(), &proxy.counts());
    assert!(
        units <= WRITE_UNITS_PER_EMAIL,
        "one email cost {units} write units; the budget is {WRITE_UNITS_PER_EMAIL}"
    );
    let reads = proxy.read_units();
    assert!(
        reads <= READ_UNITS_PER_EMAIL,
        "one email cost {reads} read units; the budget is {READ_UNITS_PER_EMAIL}"
    );

    // Ten of them, one request each: track sends their ten messages in one call.
    pump(&mut table_stream).await;
    proxy.reset();
    for i in 0..10 {
        let one = email(&format!("single{i}@example.com"));
        let (status, body) = call_router(&app, "POST", "/v1/notifications", Some(KEY), &one).await;
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(pump(&mut table_stream).await, 10);
    assert_eq!(drain(&sqs, &email_queue, &backends, Stage::Send).await, 10);
    let units = proxy.write_units();
    report("10 emails, one request each", 10, units, proxy.read_units(), &proxy.counts());
    assert!(units <= 10 * WRITE_UNITS_PER_EMAIL, "10 emails cost {units} write units");
    let sends = proxy.counts().get("sqs:SendMessageBatch").copied().unwrap_or(0);
    assert!(sends <= SQS_SENDS_PER_10_SINGLE, "{sends} SendMessageBatch calls for 10 emails");

    pump(&mut table_stream).await;
    proxy.reset();
    let items: Vec<Value> = (0..100).map(|i| email(&format!("user{i}@example.com"))).collect();
    let batch = json!({ "items": items });
    let (status, body) =
        call_router(&app, "POST", "/v1/notifications/batch", Some(KEY), &batch).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(100)), "{body}");
    assert_eq!(drain(&sqs, &medium, &backends, Stage::Dispatch).await, 0);
    assert_eq!(drain(&sqs, &email_queue, &backends, Stage::Send).await, 100);
    let units = proxy.write_units();
    report("100 emails, one batch request", 100, units, proxy.read_units(), &proxy.counts());
    let reads = proxy.read_units();
    assert!(
        reads <= 100.0 * READ_UNITS_PER_EMAIL,
        "100 emails cost {reads} read units; the budget is {READ_UNITS_PER_EMAIL} each"
    );
    let sends = proxy.counts().get("sqs:SendMessageBatch").copied().unwrap_or(0);
    assert!(sends <= SQS_SENDS_PER_100_BATCHED, "{sends} SendMessageBatch calls for 100 emails");
    assert!(
        units <= 100 * WRITE_UNITS_PER_EMAIL,
        "100 emails cost {units} write units; the budget is {WRITE_UNITS_PER_EMAIL} each"
    );

    // One large email to 40 addresses: its item is several KB, so its deliveries are
    // counted in a small item of their own, not by updates of the large one.
    proxy.reset();
    let to: Vec<Value> =
        (0..40).map(|i| json!({"email": format!("reader{i}@example.com")})).collect();
    let letter = "All the news of the week, at length. ".repeat(80);
    let large = json!({"to": to, "channels": ["email"],
                       "content": {"email": {"subject": "Weekly", "text": letter}}});
    let (status, body) = call_router(&app, "POST", "/v1/notifications", Some(KEY), &large).await;
    assert_eq!(status, 202, "{body}");
    let large_id = NotificationId::parse(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(drain(&sqs, &email_queue, &backends, Stage::Send).await, 40);
    let stored = backends.store.notification(&large_id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Sent);
    let units = proxy.write_units();
    report("one 3 KB email to 40 addresses", 1, units, proxy.read_units(), &proxy.counts());
    assert!(
        units <= WRITE_UNITS_LARGE_TO_40,
        "it cost {units} write units; the budget is {WRITE_UNITS_LARGE_TO_40}"
    );

    // A user with preferences: the api stores them (events/api), dispatch reads the user
    // with BatchGetItem and suppresses the SMS they turned off, send renders the email
    // in their locale and SES gets the RFC 8058 headers (read from the wire: moto keeps
    // no headers); the link then unsubscribes them through the api, with no key.
    assert_eq!(call_api(&app, "api/put-user.json").await.0, 201);
    assert_eq!(call_api(&app, "api/put-user-preferences.json").await.0, 200);
    proxy.reset();
    // High priority, so Ann's quiet hours (22:00-07:00 in Vienna) never hold it back
    // and the test does not depend on the time of day it runs at.
    let send = json!({
        "to": [{"user_id": "ann"}], "channels": ["email", "sms"], "category": "newsletter",
        "priority": "high",
        "content": {"email": {"subject": "News", "text": "Hi"}, "sms": {"text": "Hi"}}
    });
    let (status, accepted) = call_router(&app, "POST", "/v1/notifications", Some(KEY), &send).await;
    assert_eq!(status, 202, "{accepted}");
    let news_id = NotificationId::parse(accepted["id"].as_str().unwrap()).unwrap();
    let queue = format!("{prefix}-dispatch-high");
    let batch = receive_batch(&sqs, &queue, 10, 30).await;
    let response = handle_dispatch_batch(&backends.stages(), batch.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    finish_batch(&sqs, &queue, &batch, &response).await;
    assert_eq!(proxy.counts().get("dynamodb:BatchGetItem"), Some(&1));
    let batch = receive_batch(&sqs, &email_queue, 10, 30).await;
    assert_eq!(batch.records.len(), 1, "one email; the SMS was turned off");
    let response = handle_send_batch(&backends.stages(), batch.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    finish_batch(&sqs, &email_queue, &batch, &response).await;
    let deliveries = backends.store.deliveries(&news_id).await.unwrap();
    let mut outcome: Vec<_> =
        deliveries.iter().map(|d| (d.channel.as_str(), d.status, d.reason.as_deref())).collect();
    outcome.sort_by_key(|(channel, ..)| *channel);
    assert_eq!(
        outcome,
        [
            ("email", DeliveryStatus::Sent, None),
            ("sms", DeliveryStatus::Suppressed, Some("opted_out"))
        ]
    );
    let sent = proxy.bodies("ses:POST /v2/email/outbound-emails");
    assert_eq!(sent.len(), 1);
    let message: Value = serde_json::from_str(&sent[0]).unwrap();
    let headers = &message["Content"]["Simple"]["Headers"];
    assert_eq!(
        headers[1],
        json!({"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"})
    );
    let link = headers[0]["Value"].as_str().unwrap().trim_matches(|c| c == '<' || c == '>');
    let path = &link[link.find("/v1/unsubscribe/").unwrap()..];
    let form = json!(null);
    let (status, _) = call_router(&app, "POST", path, None, &form).await;
    assert_eq!(status, 200, "one click, no API key");
    let ann = backends.store.user("default", "ann").await.unwrap().unwrap();
    let email = herald_core::domain::Channel::Email;
    assert!(!ann.preferences.categories["newsletter"].channels[&email], "email turned off");

    // The link belongs to this Ann: deleted and made again, the new Ann is not
    // unsubscribed by it (410, nothing written), on DynamoDB as on SQLite.
    let (status, _) = call_router(&app, "DELETE", "/v1/users/ann", Some(KEY), &json!(null)).await;
    assert_eq!(status, 204);
    let profile = json!({"email": "ann@example.com"});
    let (status, _) = call_router(&app, "PUT", "/v1/users/ann", Some(KEY), &profile).await;
    assert_eq!(status, 201);
    let (status, problem) = call_router(&app, "POST", path, None, &form).await;
    assert_eq!(status, 410, "{problem}");
    let again = backends.store.user("default", "ann").await.unwrap().unwrap();
    assert!(again.preferences.categories.is_empty(), "the new Ann keeps her preferences");
}

#[derive(Clone, Copy)]
enum Stage {
    Dispatch,
    Send,
}

/// Runs `stage` on everything waiting on `queue`, batch by batch as Lambda would;
/// returns how many messages it handled.
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str, backends: &Backends, stage: Stage) -> usize {
    let mut handled = 0;
    loop {
        let batch = receive_batch(sqs, queue, 10, 30).await;
        if batch.records.is_empty() {
            return handled;
        }
        handled += batch.records.len();
        let response = match stage {
            Stage::Dispatch => handle_dispatch_batch(&backends.stages(), batch.clone()).await,
            Stage::Send => handle_send_batch(&backends.stages(), batch.clone()).await,
        };
        assert!(response.batch_item_failures.is_empty());
        finish_batch(sqs, queue, &batch, &response).await;
    }
}

/// Prints what `notifications` cost: write units and requests by operation, per
/// notification (docs/performance.md copies these lines).
fn report(
    what: &str,
    notifications: u64,
    units: u64,
    read_units: f64,
    requests: &std::collections::BTreeMap<String, u64>,
) {
    let per = |count: u64| count as f64 / notifications as f64;
    println!("BILL {what}: {:.2} DynamoDB write units per notification", per(units));
    let reads = read_units / notifications as f64;
    println!("BILL {what}: {reads:.2} DynamoDB read units per notification");
    for (operation, count) in requests {
        println!("BILL   {operation}: {:.2} per notification", per(*count));
    }
}

/// A request to the api's router as API Gateway would hand it over (JSON body, or none
/// for `null`), with `key` as the bearer token if given.
async fn call_router(
    app: &axum::Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let body = if body.is_null() {
        axum::body::Body::empty()
    } else {
        request = request.header("content-type", "application/json");
        axum::body::Body::from(body.to_string())
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sms_type_follows_priority() {
    use herald_core::channels::sms_type;
    use herald_core::domain::Priority;
    assert_eq!(sms_type(Priority::High), "Transactional");
    assert_eq!(sms_type(Priority::Medium), "Transactional");
    assert_eq!(sms_type(Priority::Low), "Promotional");
}

/// Every payload in events/ is what its function takes: the same files serve these
/// tests, `cargo lambda invoke --data-file` and `sam local invoke -e`.
#[test]
fn every_event_file_parses_as_its_function_input() {
    let root = format!("{}/../events", manifest_dir());
    let mut checked = 0;
    for function in ["api", "dispatch", "send", "track"] {
        for entry in std::fs::read_dir(format!("{root}/{function}")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.display();
            match function {
                "api" => {
                    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                "dispatch" | "send" => {
                    let batch: SqsEvent =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!batch.records.is_empty(), "{name}");
                    assert!(batch.records.iter().all(|r| r.event_source_arn.is_some()), "{name}");
                }
                _ => {
                    let event: Value = serde_json::from_str(&text).unwrap();
                    let records = event["Records"].as_array().unwrap_or_else(|| panic!("{name}"));
                    assert!(
                        records
                            .iter()
                            .all(|r| r["eventSource"] == "aws:dynamodb"
                                || r["EventSource"] == "aws:sns"),
                        "{name}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} event files");
}

/// The package's folder. Read at run time (cargo test sets it) rather than baked in at
/// build time: the build cache is shared by clones at different paths.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}
