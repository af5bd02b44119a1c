//! Black-box tests of the v1 API against a real `herald serve` process.

use herald_tests::herald::ADMIN_KEY;
use herald_tests::{Herald, WEBHOOK_SECRET, WebhookSink};
use serde_json::{Value, json};
use std::time::Duration;

fn email(to: &str) -> Value {
    json!({
        "to": [{"email": to}],
        "channels": ["email"],
        "content": {"email": {"subject": "Hello", "text": "Hi there"}}
    })
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    (status, response.json().await.unwrap())
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn send_then_follow_status_to_sent() {
    let herald = Herald::start(&[]).await;
    let id = herald.send(ADMIN_KEY, &email("ann@example.com")).await;
    assert!(id.starts_with("ntf_"));
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    assert_eq!(n["status"], "sent");
    assert_eq!(n["priority"], "medium");
    let deliveries = n["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0]["id"].as_str().unwrap().starts_with("dlv_"));
    assert_eq!(deliveries[0]["status"], "sent");
    assert_eq!(deliveries[0]["provider"], "log", "no SMTP configured: the log provider sends");
    let events: Vec<&str> =
        n["timeline"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["accepted", "dispatched", "queued", "sent", "sent"]);

    // The log provider shows what it would have sent.
    let logged = herald.get_json(ADMIN_KEY, "/v1/log-messages").await;
    let logged = logged.as_array().unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["content"]["subject"], "Hello");
    assert_eq!(logged[0]["to"], "a***@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_and_paginates() {
    let herald = Herald::start(&[]).await;
    let mut high = Vec::new();
    for i in 0..5 {
        let mut body = email("ann@example.com");
        body["priority"] = json!(if i % 2 == 0 { "high" } else { "low" });
        body["category"] = json!(if i < 3 { "alerts" } else { "news" });
        let id = herald.send(ADMIN_KEY, &body).await;
        if i % 2 == 0 {
            high.push(id);
        }
    }
    let sms = json!({"to": [{"phone": "+14155552671"}], "channels": ["sms"], "content": {"sms": {"text": "code 1234"}}});
    let sms_id = herald.send(ADMIN_KEY, &sms).await;

    let page = herald.get_json(ADMIN_KEY, "/v1/notifications?priority=high").await;
    let ids: Vec<&str> =
        page["data"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = high.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);

    let alerts = herald.get_json(ADMIN_KEY, "/v1/notifications?category=alerts").await;
    assert_eq!(alerts["data"].as_array().unwrap().len(), 3);
    let by_channel = herald.get_json(ADMIN_KEY, "/v1/notifications?channel=sms").await;
    assert_eq!(by_channel["data"][0]["id"], sms_id.as_str());
    assert_eq!(by_channel["data"].as_array().unwrap().len(), 1);

    herald.wait_final(ADMIN_KEY, &sms_id, Duration::from_secs(10)).await;
    let sent = herald.get_json(ADMIN_KEY, "/v1/notifications?status=sent&channel=sms").await;
    assert_eq!(sent["data"].as_array().unwrap().len(), 1);

    // Cursor pagination walks every notification exactly once.
    let mut seen = Vec::new();
    let mut path = "/v1/notifications?limit=2".to_owned();
    loop {
        let page = herald.get_json(ADMIN_KEY, &path).await;
        seen.extend(
            page["data"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/notifications?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats");

    // Time range: nothing was created in the future, everything after an hour ago.
    let future =
        herald.get_json(ADMIN_KEY, "/v1/notifications?created_after=2100-01-01T00:00:00Z").await;
    assert!(future["data"].as_array().unwrap().is_empty());
    let before_now = herald
        .get_json(ADMIN_KEY, "/v1/notifications?created_before=2100-01-01T00:00:00Z&limit=200")
        .await;
    assert_eq!(before_now["data"].as_array().unwrap().len(), 6);

    let (status, p) =
        problem(herald.get(ADMIN_KEY, "/v1/notifications?status=nope&limit=0&colour=red").await)
            .await;
    assert_eq!(status, 422);
    let mut f = fields(&p);
    f.sort();
    assert_eq!(f, ["colour", "limit", "status"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_replays_and_conflicts() {
    let herald = Herald::start(&[]).await;
    let body = email("ann@example.com");
    let send = |body: Value| {
        herald
            .client
            .post(herald.url("/v1/notifications"))
            .bearer_auth(ADMIN_KEY)
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let (status, p) = problem(send(email("bob@example.com")).await.unwrap()).await;
    assert_eq!(status, 409);
    assert!(p["type"].as_str().unwrap().ends_with("/idempotency-key-reused"));

    let list = herald.get_json(ADMIN_KEY, "/v1/notifications").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let bad_key = herald
        .client
        .post(herald.url("/v1/notifications"))
        .bearer_auth(ADMIN_KEY)
        .header("idempotency-key", "has space")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, p) = problem(bad_key).await;
    assert_eq!((status, fields(&p)), (422, vec!["Idempotency-Key".to_owned()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_requests_with_one_key_make_one_notification() {
    let herald = Herald::start(&[]).await;
    let body = email("ann@example.com");
    let requests = (0..50).map(|_| {
        herald
            .client
            .post(herald.url("/v1/notifications"))
            .bearer_auth(ADMIN_KEY)
            .header("idempotency-key", "same-key")
            .json(&body)
            .send()
    });
    let responses = futures_join_all(requests).await;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        ids.insert(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every response names the same notification");
    let list = herald.get_json(ADMIN_KEY, "/v1/notifications?limit=200").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "exactly one notification exists");
    let id = ids.into_iter().next().unwrap();
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    assert_eq!(n["deliveries"].as_array().unwrap().len(), 1, "and it is delivered once");
}

/// Runs futures concurrently on the runtime (no extra crate needed).
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_before_sending_and_not_after() {
    // Retries are an hour apart, so a failed first attempt leaves the delivery queued.
    // Webhooks follow their own schedule, not the base and maximum delay.
    let herald = Herald::start(&[("HERALD_WEBHOOK_RETRY_SCHEDULE", "1h")]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let body = json!({"to": [{"webhook": {"url": sink.url("status=503")}}], "channels": ["webhook"], "content": {"webhook": {"x": 1}}});
    let id = herald.send(ADMIN_KEY, &body).await;
    assert!(
        herald_tests::eventually(Duration::from_secs(10), || async {
            herald.notification(ADMIN_KEY, &id).await["deliveries"][0]["attempts"] == 1
        })
        .await,
        "first attempt made"
    );
    let response =
        herald.post(ADMIN_KEY, &format!("/v1/notifications/{id}/cancel"), &json!({})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "canceled");
    let n = herald.notification(ADMIN_KEY, &id).await;
    assert_eq!(n["status"], "canceled");
    assert_eq!(n["deliveries"][0]["status"], "canceled");
    // Canceling twice is fine.
    let again = herald.post(ADMIN_KEY, &format!("/v1/notifications/{id}/cancel"), &json!({})).await;
    assert_eq!(again.status(), 200);

    let sent = herald.send(ADMIN_KEY, &email("ann@example.com")).await;
    herald.wait_final(ADMIN_KEY, &sent, Duration::from_secs(10)).await;
    let (status, p) = problem(
        herald.post(ADMIN_KEY, &format!("/v1/notifications/{sent}/cancel"), &json!({})).await,
    )
    .await;
    assert_eq!(status, 409);
    assert!(p["type"].as_str().unwrap().ends_with("/not-cancelable"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resend_makes_a_new_notification() {
    let herald = Herald::start(&[]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let body = json!({"to": [{"webhook": {"url": sink.url("")}}], "channels": ["webhook"], "content": {"webhook": {"n": 7}}});
    let id = herald.send(ADMIN_KEY, &body).await;
    herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    let response =
        herald.post(ADMIN_KEY, &format!("/v1/notifications/{id}/resend"), &json!({})).await;
    assert_eq!(response.status(), 202);
    let resent: Value = response.json().await.unwrap();
    let new_id = resent["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(resent["resent_from"], id.as_str());
    let n = herald.wait_final(ADMIN_KEY, new_id, Duration::from_secs(10)).await;
    assert_eq!(n["status"], "sent");
    assert_eq!(n["resent_from"], id.as_str());
    assert_eq!(sink.unique(), 2, "the resend is a new delivery with its own webhook-id");
    assert!(sink.received().iter().all(|r| r.body["data"]["n"] == 7));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_scopes_and_app_isolation() {
    let herald = Herald::start(&[]).await;
    let (status, _) =
        problem(herald.client.get(herald.url("/v1/notifications")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let (status, _) = problem(herald.get("hk_wrong", "/v1/notifications").await).await;
    assert_eq!(status, 401);

    let a_send = herald.key("app-a", &["send"]).await;
    let a_read = herald.key("app-a", &["read"]).await;
    let b_all = herald.key("app-b", &["send", "read"]).await;

    let id = herald.send(&a_send, &email("ann@example.com")).await;
    // A send-only key cannot read; a read-only key cannot send or mint keys.
    let (status, p) = problem(herald.get(&a_send, &format!("/v1/notifications/{id}")).await).await;
    assert_eq!(status, 403);
    assert!(p["detail"].as_str().unwrap().contains("'read'"));
    let (status, _) =
        problem(herald.post(&a_read, "/v1/notifications", &email("x@example.com")).await).await;
    assert_eq!(status, 403);
    let (status, _) = problem(
        herald
            .post(
                &a_read,
                "/v1/keys",
                &json!({"app_id": "app-a", "name": "x", "scopes": ["admin"]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(herald.get(&a_read, &format!("/v1/notifications/{id}")).await.status(), 200);

    // App B sees nothing of app A: not by id, not in lists, cannot cancel or resend it.
    let (status, _) = problem(herald.get(&b_all, &format!("/v1/notifications/{id}")).await).await;
    assert_eq!(status, 404);
    let list = herald.get_json(&b_all, "/v1/notifications").await;
    assert!(list["data"].as_array().unwrap().is_empty());
    for action in ["cancel", "resend"] {
        let (status, _) = problem(
            herald.post(&b_all, &format!("/v1/notifications/{id}/{action}"), &json!({})).await,
        )
        .await;
        assert_eq!(status, 404, "{action}");
    }
    let b_id = herald.send(&b_all, &email("bob@example.com")).await;
    let a_list = herald.get_json(&a_read, "/v1/notifications").await;
    let a_ids: Vec<&str> =
        a_list["data"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(a_ids, [id.as_str()]);
    assert!(!a_ids.contains(&b_id.as_str()));
    // The log provider's record is per app too.
    herald.wait_final(&b_all, &b_id, Duration::from_secs(10)).await;
    let b_log = herald.get_json(&b_all, "/v1/log-messages").await;
    assert!(b_log.as_array().unwrap().iter().all(|m| m["app_id"] == "app-b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_validation_error_names_its_field() {
    let herald =
        Herald::start(&[("HERALD_MAX_RECIPIENTS", "3"), ("HERALD_MAX_BODY_BYTES", "65536")]).await;
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({"channels": ["email"], "content": {}}), &["to"]),
        (json!({"to": [], "channels": [], "content": {}}), &["channels", "to"]),
        (
            json!({"to": [{"email": "nope"}], "channels": ["email"], "content": {"email": {"subject": "s", "text": "t"}}}),
            &["to[0].email"],
        ),
        (
            json!({"to": [{"phone": "555-1234"}], "channels": ["sms"], "content": {"sms": {"text": "t"}}}),
            &["to[0].phone"],
        ),
        (
            json!({"to": [{"webhook": {"url": "ftp://x"}}], "channels": ["webhook"], "content": {"webhook": {}}}),
            &["to[0].webhook.url"],
        ),
        (
            json!({"to": [{}], "channels": ["email"], "content": {"email": {"subject": "s", "text": "t"}}}),
            &["to[0]"],
        ),
        (json!({"to": [{"fax": "1"}], "channels": ["email"], "content": {}}), &["to[0].fax"]),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["pigeon"], "content": {}}),
            &["channels[0]"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email", "email"], "content": {"email": {"subject": "s", "text": "t"}}}),
            &["channels[1]"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "content": {}}),
            &["content.email"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "content": {"email": {"subject": "", "text": "t"}}}),
            &["content.email.subject"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "content": {"email": {"subject": "s"}}}),
            &["content.email"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "content": {"email": {"text": "t"}}}),
            &["content.email.subject"],
        ),
        (
            json!({"to": [{"phone": "+14155552671"}], "channels": ["sms"], "content": {"sms": {"text": ""}}}),
            &["content.sms.text"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "priority": "urgent", "content": {"email": {"subject": "s", "text": "t"}}}),
            &["priority"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "routing": "random", "content": {"email": {"subject": "s", "text": "t"}}}),
            &["routing"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "category": "Has Spaces", "content": {"email": {"subject": "s", "text": "t"}}}),
            &["category"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "expires_at": "2001-01-01T00:00:00Z", "content": {"email": {"subject": "s", "text": "t"}}}),
            &["expires_at"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "expires_at": "tomorrow", "content": {"email": {"subject": "s", "text": "t"}}}),
            &["expires_at"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "colour": "red", "content": {"email": {"subject": "s", "text": "t"}}}),
            &["colour"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}, {"email": "b@b.co"}, {"email": "c@b.co"}, {"email": "d@b.co"}], "channels": ["email"], "content": {"email": {"subject": "s", "text": "t"}}}),
            &["to"],
        ),
        (
            json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "metadata": {"big": "x".repeat(9000)}, "content": {"email": {"subject": "s", "text": "t"}}}),
            &["metadata"],
        ),
    ];
    for (body, expected) in cases {
        let (status, p) = problem(herald.post(ADMIN_KEY, "/v1/notifications", &body).await).await;
        assert_eq!(status, 422, "{body}: {p}");
        let mut got = fields(&p);
        got.sort();
        assert_eq!(got, expected, "{body}: {p}");
        assert!(p["type"].as_str().unwrap().ends_with("/validation"));
        assert!(!p["detail"].as_str().unwrap().is_empty());
    }

    // Not JSON, wrong media type, too large, unknown route: problems too, never 500.
    let raw = |body: &'static str, content_type: &'static str| {
        herald
            .client
            .post(herald.url("/v1/notifications"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, p) = problem(raw("{not json", "application/json").await.unwrap()).await;
    assert_eq!((status, fields(&p)), (422, vec!["(body)".to_owned()]));
    let (status, _) = problem(raw("{}", "text/plain").await.unwrap()).await;
    assert_eq!(status, 415);
    let huge = json!({"to": [{"email": "a@b.co"}], "channels": ["email"], "content": {"email": {"subject": "s", "text": "x".repeat(70000)}}});
    let (status, p) = problem(herald.post(ADMIN_KEY, "/v1/notifications", &huge).await).await;
    assert_eq!(status, 413, "{p}");
    let (status, _) = problem(herald.get(ADMIN_KEY, "/v1/nothing-here").await).await;
    assert_eq!(status, 404);
    let (status, _) = problem(herald.get(ADMIN_KEY, "/v1/notifications/ntf_garbage").await).await;
    assert_eq!(status, 404);
    let (status, _) = problem(
        herald
            .client
            .delete(herald.url("/v1/notifications"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    // Nothing invalid was stored.
    let list = herald.get_json(ADMIN_KEY, "/v1/notifications").await;
    assert!(list["data"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_notifications_are_never_sent_late() {
    let herald = Herald::start(&[("HERALD_WEBHOOK_RETRY_SCHEDULE", "4s")]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    // Two seconds leave dispatch ample time even on a loaded machine; the retry comes
    // after the deadline.
    let expires = chrono_like_now_plus(2);
    let body = json!({"to": [{"webhook": {"url": sink.url("status=500")}}], "channels": ["webhook"],
        "expires_at": expires, "content": {"webhook": {}}});
    let id = herald.send(ADMIN_KEY, &body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    let delivery = &n["deliveries"][0];
    assert_eq!(delivery["status"], "expired", "{n:#}");
    assert_eq!(n["status"], "failed");
    // The first attempt reached the sink (and got its 500); the retry, due after the
    // deadline, never did. (The sink's `count` holds only 2xx answers, so it could not
    // tell.)
    assert_eq!(sink.requests(), 1);
}

/// An RFC 3339 time `seconds` from now, without pulling chrono into the tests.
fn chrono_like_now_plus(seconds: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(seconds);
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let output = std::process::Command::new("date")
        .arg("-u")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg("+%Y-%m-%dT%H:%M:%SZ")
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_health_and_readiness() {
    let herald = Herald::start(&[]).await;
    let health: Value =
        herald.client.get(herald.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = herald.client.get(herald.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let doc: Value =
        herald.client.get(herald.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/notifications",
        "/v1/notifications/{id}",
        "/v1/notifications/{id}/cancel",
        "/v1/notifications/{id}/resend",
        "/v1/keys",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"].get("SendRequest").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_stops_start_up_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in [
        ("HERALD_SMTP_HOST", "127.0.0.1", "HERALD_SMTP_FROM"),
        ("HERALD_WEBHOOK_SECRET", "plain", "HERALD_WEBHOOK_SECRET"),
        ("HERALD_ADDR", "not-an-address", "HERALD_ADDR"),
        ("HERALD_ADMIN_KEY", "short", "HERALD_ADMIN_KEY"),
        ("HERALD_WORKER_NICE", "20", "HERALD_WORKER_NICE"),
    ] {
        let output = std::process::Command::new(herald_tests::herald::herald_binary())
            .arg("serve")
            .env("HERALD_DATA_DIR", dir.path())
            .env(name, value)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

/// Each thread of the server by name, with its niceness (the 19th field of its stat).
#[cfg(target_os = "linux")]
fn thread_niceness(pid: u32) -> Vec<(String, i32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap().trim().to_owned();
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // The name, in parentheses, may hold spaces: count fields after its end.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        threads.push((name, nice));
    }
    threads
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn workers_run_below_the_api_in_priority() {
    let herald = Herald::start(&[("HERALD_WORKER_NICE", "7")]).await;
    let threads = thread_niceness(herald.pid());
    let workers: Vec<i32> =
        threads.iter().filter(|(name, _)| name == "herald-worker").map(|t| t.1).collect();
    let api: Vec<i32> =
        // tokio's default thread name (`tokio-rt-worker`, once `tokio-runtime-worker`).
        threads.iter().filter(|(name, _)| name.starts_with("tokio-r")).map(|t| t.1).collect();
    assert!(!workers.is_empty() && !api.is_empty(), "{threads:?}");
    assert!(workers.iter().all(|&nice| nice == 7), "{threads:?}");
    // The API and the SQLite writer keep the niceness the server started with (ours).
    let ours = thread_niceness(std::process::id())[0].1;
    assert!(api.iter().all(|&nice| nice == ours), "{threads:?}");
    let writer = threads.iter().find(|(name, _)| name.starts_with("herald-sqlite-w"));
    assert_eq!(writer.map(|t| t.1), Some(ours), "{threads:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_create_mints_a_working_key_and_serve_prints_a_bootstrap_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(herald_tests::herald::herald_binary())
        .args(["keys", "create", "--app", "cli-app", "--scopes", "send,read"])
        .env("HERALD_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("hk_"));

    // Start on that data directory without HERALD_ADMIN_KEY: keys exist, so no
    // bootstrap key is printed, and the CLI key works.
    let mut child = tokio::process::Command::new(herald_tests::herald::herald_binary())
        .arg("serve")
        .env("HERALD_ADDR", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first
        .strip_prefix("herald: listening on ")
        .expect("no bootstrap key when keys exist")
        .to_owned();
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/notifications"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    child.kill().await.unwrap();

    // A fresh data directory gets an admin key, printed once.
    let fresh = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(herald_tests::herald::herald_binary())
        .arg("serve")
        .env("HERALD_ADDR", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", fresh.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let done = line.starts_with("herald: listening on ");
        printed.push(line);
        if done {
            break;
        }
    }
    let admin = printed
        .iter()
        .find_map(|l| l.strip_prefix("herald: admin key: "))
        .expect("admin key printed")
        .to_owned();
    let url = printed.last().unwrap().strip_prefix("herald: listening on ").unwrap().to_owned();
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"app_id": "x", "name": "y", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    child.kill().await.unwrap();
}
