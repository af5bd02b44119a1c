//! What an outside probe found (issue 9), each as a regression test against a real
//! `herald serve`: templates that reach other apps or blow up, private webhook
//! targets, slow clients, keys minted across apps, and sloppy input.

use herald_tests::Herald;
use herald_tests::herald::ADMIN_KEY;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, kind, response.json().await.unwrap_or(Value::Null))
}

/// The fields a 422 problem names.
fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["field"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

fn sms_template(id: &str, text: &str) -> Value {
    json!({"id": id, "name": id, "locales": {"default": {"sms": {"text": text}}}})
}

async fn preview(herald: &Herald, key: &str, id: &str) -> (u16, String, Value) {
    answer(herald.post(key, &format!("/v1/templates/{id}/preview"), &json!({"data": {}})).await)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_reaches_nothing_of_another_app() {
    let herald = Herald::start(&[]).await;
    let b = herald.key("b", &["manage", "read"]).await;
    let created = herald.post(ADMIN_KEY, "/v1/templates", &sms_template("t1", "SECRET-OF-A")).await;
    assert_eq!(created.status(), 201);
    assert_eq!(preview(&herald, ADMIN_KEY, "t1").await.0, 200, "compiled and cached");

    for (i, text) in [
        "{% include 'default/t1@1/default/sms.text' %}",
        "{% include 'sms.text' %}",
        "{% import 'sms.text' as other %}",
        "{% from 'sms.text' import x %}",
        "{% extends 'sms.text' %}",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, kind, problem) =
            answer(herald.post(&b, "/v1/templates", &sms_template(&format!("b{i}"), text)).await)
                .await;
        assert_eq!((status, kind.as_str()), (422, "application/problem+json"), "{text}: {problem}");
        assert!(problem.to_string().contains("may not include"), "{text}: {problem}");
    }
    // debug() listed every app's templates; it is gone.
    let created = herald.post(&b, "/v1/templates", &sms_template("dbg", "{{ debug() }}")).await;
    assert_eq!(created.status(), 201);
    let (status, _, problem) = preview(&herald, &b, "dbg").await;
    assert_eq!(status, 422, "{problem}");
    assert!(!problem.to_string().contains("SECRET-OF-A") && !problem.to_string().contains("t1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_template_costs_a_422_not_the_server() {
    let herald = Herald::start(&[("HERALD_RENDER_MAX_BYTES", "65536")]).await;
    for (id, text) in [
        ("indent", "{{ 'a\\nb' | indent(100000000000) }}"),
        ("wider", "{{ 'a\\nb' | indent(18446744073709551615) }}"),
        (
            "doubling",
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        ),
        ("raw", "{% for i in range(100000) %}0123456789{% endfor %}"),
    ] {
        assert_eq!(
            herald.post(ADMIN_KEY, "/v1/templates", &sms_template(id, text)).await.status(),
            201
        );
        let (status, kind, problem) = preview(&herald, ADMIN_KEY, id).await;
        assert_eq!((status, kind.as_str()), (422, "application/problem+json"), "{id}: {problem}");
        assert_eq!(fields(&problem), ["sms.text"], "{id}: the part is named: {problem}");
        assert!(problem.to_string().contains("65536 bytes"), "{id}: {problem}");
        // A send with it is refused the same way at intake.
        let send = json!({"to": [{"phone": "+14155552671"}], "channels": ["sms"],
                          "template": {"id": id, "data": {}}});
        assert_eq!(herald.post(ADMIN_KEY, "/v1/notifications", &send).await.status(), 422, "{id}");
    }
    // A constant that would be folded into 500 MB is refused when the template is saved.
    let bomb = sms_template("bomb", "{% set s = 'a' * 100000000 %}{{ s ~ s ~ s ~ s ~ s }}");
    let (status, _, problem) = answer(herald.post(ADMIN_KEY, "/v1/templates", &bomb).await).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem.to_string().contains("constant expression"), "{problem}");
    let health = herald.get(ADMIN_KEY, "/healthz").await;
    assert_eq!(health.status(), 200, "still serving");
}

async fn stale_text(herald: &Herald) -> Value {
    preview(herald, ADMIN_KEY, "stale").await.2["rendered"]["sms"]["text"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_template_renders_its_new_text() {
    let herald = Herald::start(&[]).await;
    assert_eq!(
        herald.post(ADMIN_KEY, "/v1/templates", &sms_template("stale", "old")).await.status(),
        201
    );
    assert_eq!(stale_text(&herald).await, "old");
    let deleted = reqwest::Client::new()
        .delete(herald.url("/v1/templates/stale"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        herald.post(ADMIN_KEY, "/v1/templates", &sms_template("stale", "new")).await.status(),
        201
    );
    assert_eq!(stale_text(&herald).await, "new");
    // A send renders the new text too (SMS goes to the log provider here).
    let id = herald
        .send(
            ADMIN_KEY,
            &json!({"to": [{"phone": "+14155552671"}], "channels": ["sms"],
                                 "template": {"id": "stale", "data": {}}}),
        )
        .await;
    herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    let logged = herald.get_json(ADMIN_KEY, "/v1/log-messages").await;
    let texts: Vec<&Value> =
        logged.as_array().unwrap().iter().map(|m| &m["content"]["text"]).collect();
    assert_eq!(texts, [&json!("new")], "{logged:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_targets_on_private_networks_are_refused_at_intake() {
    // No allow list: only public addresses.
    let herald = Herald::start(&[("HERALD_WEBHOOK_ALLOW_NETWORKS", "")]).await;
    let port = herald.url("").rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    for url in [
        "http://127.0.0.1:9/".to_owned(),
        format!("http://127.0.0.1:{port}/v1/keys"),
        "http://localhost/".into(),
        "http://0.0.0.0/".into(),
        "http://2130706433/".into(),
        "http://[::ffff:127.0.0.1]/".into(),
        "http://[::1]/".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.0.0.1/".into(),
        "http://100.64.0.1/".into(),
    ] {
        let send = json!({"to": [{"webhook": {"url": url}}], "channels": ["webhook"],
                          "content": {"webhook": {"x": 1}}});
        let (status, _, problem) =
            answer(herald.post(ADMIN_KEY, "/v1/notifications", &send).await).await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(fields(&problem), ["to[0].webhook.url"], "{url}: {problem}");
    }
    let user = reqwest::Client::new()
        .put(herald.url("/v1/users/u1"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"webhook_url": "http://0x7f000001/"}))
        .send()
        .await
        .unwrap();
    let (status, _, problem) = answer(user).await;
    assert_eq!((status, fields(&problem)), (422, vec!["webhook_url".to_owned()]), "{problem}");
}

/// The host and port of a running server.
fn address(herald: &Herald) -> String {
    herald.url("").trim_start_matches("http://").trim_end_matches('/').to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_cannot_starve_the_server() {
    let herald = Herald::start(&[("HERALD_HEADER_TIMEOUT_SECS", "2")]).await;
    let address = address(&herald);
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Slow: ").await.unwrap();
        slow.push(stream);
    }
    // An idle keep-alive connection, after one full exchange.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let health = tokio::time::timeout(
        Duration::from_secs(1),
        reqwest::Client::new().get(herald.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answers within a second while 300 clients hang")
    .unwrap();
    assert_eq!(health.status(), 200);

    // The server closes every one of them once the header timeout passes (the bound
    // here only stops a broken server from hanging the test).
    slow.push(idle);
    for mut stream in slow {
        let closed = tokio::time::timeout(Duration::from_secs(60), async {
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow connection stayed open");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_admin_acts_on_its_own_app_only() {
    let herald = Herald::start(&[]).await;
    let admin_a = herald.key("a", &["admin"]).await;
    let mint = |app: &str, scopes: &[&str]| json!({"app_id": app, "name": "k", "scopes": scopes});
    let (status, kind, problem) =
        answer(herald.post(&admin_a, "/v1/keys", &mint("b", &["send"])).await).await;
    assert_eq!((status, kind.as_str()), (403, "application/problem+json"), "{problem}");
    assert_eq!(herald.post(&admin_a, "/v1/keys", &mint("a", &["operator"])).await.status(), 403);
    assert_eq!(herald.post(&admin_a, "/v1/keys", &mint("a", &["send"])).await.status(), 201);
    assert_eq!(herald.get(&admin_a, "/v1/dead-letters").await.status(), 403);
    // The installation's key is the operator: any app, and what spans apps.
    assert_eq!(herald.post(ADMIN_KEY, "/v1/keys", &mint("b", &["send"])).await.status(), 201);
    assert_eq!(herald.get(ADMIN_KEY, "/v1/dead-letters").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sloppy_input_gets_a_problem_naming_the_field() {
    let herald = Herald::start(&[]).await;
    let client = reqwest::Client::new();
    let put_user = |id: &str, body: Value| {
        client.put(herald.url(&format!("/v1/users/{id}"))).bearer_auth(ADMIN_KEY).json(&body).send()
    };
    // A right-to-left override in an id.
    let (status, _, problem) =
        answer(put_user("ann%E2%80%AEcod.exe", json!({})).await.unwrap()).await;
    assert_eq!((status, fields(&problem)), (422, vec!["id".to_owned()]), "{problem}");
    for email in ["a@b", "a@[127.0.0.1]"] {
        let (status, _, problem) =
            answer(put_user("ann", json!({"email": email})).await.unwrap()).await;
        assert_eq!(
            (status, fields(&problem)),
            (422, vec!["email".to_owned()]),
            "{email}: {problem}"
        );
    }
    let send = |extra: &str| {
        let body = format!(
            r#"{{"to": [{{"phone": "+14155552671"}}], "channels": ["sms"],
                "content": {{"sms": {{"text": "hi"}}}}{extra}}}"#
        );
        client
            .post(herald.url("/v1/notifications"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, _, problem) =
        answer(send(r#", "metadata": {"order": 1, "order": 2}"#).await.unwrap()).await;
    assert_eq!((status, fields(&problem)), (422, vec!["metadata.order".to_owned()]), "{problem}");
    let (status, _, problem) =
        answer(send(r#", "expires_at": "9999-12-31T00:00:00Z""#).await.unwrap()).await;
    assert_eq!((status, fields(&problem)), (422, vec!["expires_at".to_owned()]), "{problem}");

    // Answers that used to be plain text or empty are problems too.
    let (status, kind, _) =
        answer(herald.get(ADMIN_KEY, "/v1/templates/t/versions/-1").await).await;
    assert_eq!((status, kind.as_str()), (400, "application/problem+json"));
    let rollback =
        herald.post(ADMIN_KEY, "/v1/templates/nope/rollback", &json!({"version": 1})).await;
    let (status, kind, _) = answer(rollback).await;
    assert_eq!((status, kind.as_str()), (404, "application/problem+json"));
    // A long filter value is not echoed whole.
    let long = "x".repeat(8000);
    let (status, _, problem) =
        answer(herald.get(ADMIN_KEY, &format!("/v1/notifications?category={long}")).await).await;
    assert_eq!(status, 422);
    assert!(problem.to_string().len() < 1000, "{} bytes echoed", problem.to_string().len());
    let (status, kind, _) = answer(
        client
            .get(herald.url("/v1/notifications"))
            .bearer_auth(ADMIN_KEY)
            .header("x-big", "y".repeat(1024 * 1024))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, kind.as_str()), (431, "application/problem+json"));
}
