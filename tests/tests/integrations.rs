//! Integrations through the HTTP API of a real `herald serve`: CRUD with write-only
//! secrets, secrets encrypted at rest in the SQLite file, test sends and checks, and a
//! send that fails over from a refused SMTP account to a working one (a real SMTP
//! server on loopback), with the timeline naming the integration used.

use herald_tests::{Herald, SmtpSink, WebhookSink};
use serde_json::{Value, json};
use std::time::Duration;

const LOOPBACK: (&str, &str) = ("HERALD_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8");
/// A second signing secret, the app's own (the installation's is WEBHOOK_SECRET).
const APP_SECRET: &str = "whsec_YXBwLW93bi1zZWNyZXQtZm9yLWludGVncmF0aW9ucw==";

async fn post(herald: &Herald, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = herald.post(key, path, &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn patch(herald: &Herald, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response =
        herald.client.patch(herald.url(path)).bearer_auth(key).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn smtp_integration(name: &str, port: u16, from: &str, priority: i32) -> Value {
    json!({
        "channel": "email", "provider": "smtp", "name": name, "priority": priority,
        "config": {"host": "127.0.0.1", "port": port, "tls": "none", "from": from},
        "secrets": {"password": "never-used-without-auth-0001"}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn integrations_are_managed_per_app_with_write_only_secrets() {
    let herald = Herald::start(&[LOOPBACK]).await;
    let shop = herald.key("shop", &["manage", "read", "send"]).await;
    let reader = herald.key("shop", &["read"]).await;
    let other = herald.key("other", &["manage"]).await;
    let secret = "correct-horse-battery-staple-7f3a";
    let body = json!({
        "channel": "email", "provider": "smtp", "name": "primary",
        "config": {"host": "smtp.example.com", "from": "Shop <shop@example.com>"},
        "secrets": {"password": secret}
    });
    let (status, created) = post(&herald, &shop, "/v1/integrations", body.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("int_"));
    assert_eq!(created["secrets"], json!({"password": "…7f3a"}));
    assert_eq!(created["enabled"], true);
    assert!(!created.to_string().contains("correct-horse"));

    let got = herald.get_json(&shop, &format!("/v1/integrations/{id}")).await;
    assert_eq!(got, created);
    let list = herald.get_json(&shop, "/v1/integrations").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("correct-horse"));
    // Managing integrations takes `manage`; another app sees none of them.
    assert_eq!(herald.get(&reader, "/v1/integrations").await.status(), 403);
    assert_eq!(herald.get(&other, &format!("/v1/integrations/{id}")).await.status(), 404);
    assert_eq!(herald.get_json(&other, "/v1/integrations").await["data"], json!([]));

    // Names are unique per app; fields are checked against the provider's schema.
    let (status, _) = post(&herald, &shop, "/v1/integrations", body.clone()).await;
    assert_eq!(status, 409);
    let (status, problem) = post(&herald, &other, "/v1/integrations", body.clone()).await;
    assert_eq!(status, 201, "another app may use the name: {problem}");
    let cases = [
        (
            json!({"channel": "email", "provider": "smtp", "name": "x", "config": {"host": "h"}}),
            "config.from",
        ),
        (
            json!({"channel": "email", "provider": "smtp", "name": "x", "config": {"host": "h", "from": "a@b.example", "pasword": "x"}}),
            "config.pasword",
        ),
        (
            json!({"channel": "webhook", "provider": "webhook", "name": "x"}),
            "secrets.signing_secret",
        ),
        (
            json!({"channel": "webhook", "provider": "webhook", "name": "x", "secrets": {"signing_secret": "nope"}}),
            "secrets.signing_secret",
        ),
        (json!({"channel": "sms", "provider": "smtp", "name": "x"}), "provider"),
        (json!({"channel": "email", "provider": "carrier-pigeon", "name": "x"}), "provider"),
        (
            json!({"channel": "email", "provider": "smtp", "name": "x", "config": {"host": "169.254.169.254", "from": "a@b.example"}}),
            "config.host",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = post(&herald, &shop, "/v1/integrations", body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert!(problem.to_string().contains(field), "{body}: {problem}");
    }

    // An update merges secrets by name and keeps the others; config is replaced whole.
    let (status, updated) = patch(
        &herald,
        &shop,
        &format!("/v1/integrations/{id}"),
        json!({"name": "main", "priority": 5, "enabled": false,
               "config": {"host": "smtp2.example.com", "from": "shop@example.com"}}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["name"].clone(), updated["priority"].clone()), (json!("main"), json!(5)));
    assert_eq!(updated["secrets"], json!({"password": "…7f3a"}), "secrets kept");
    let (status, updated) = patch(
        &herald,
        &shop,
        &format!("/v1/integrations/{id}"),
        json!({"secrets": {"password": "short"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["secrets"], json!({"password": "…"}), "short secrets show nothing");

    let providers = herald.get_json(&reader, "/v1/integration-providers").await;
    let ids: Vec<&str> =
        providers["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"smtp") && ids.contains(&"webhook"), "{ids:?}");

    let delete =
        herald.client.delete(herald.url(&format!("/v1/integrations/{id}"))).bearer_auth(&shop);
    assert_eq!(delete.send().await.unwrap().status(), 204);
    assert_eq!(herald.get(&shop, &format!("/v1/integrations/{id}")).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_encrypted_at_rest() {
    let mut herald = Herald::start(&[LOOPBACK]).await;
    let shop = herald.key("shop", &["manage"]).await;
    let secret = "sk-live-THIS-MUST-NOT-BE-IN-THE-FILE-0042";
    let body = json!({"channel": "email", "provider": "smtp", "name": "mail",
        "config": {"host": "smtp.example.com", "from": "shop@example.com"},
        "secrets": {"password": secret}});
    let (status, created) = post(&herald, &shop, "/v1/integrations", body).await;
    assert_eq!(status, 201, "{created}");
    // Stop the server so that every page is in the database file, then read it all.
    assert!(herald.terminate().await);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(herald.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("herald.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    let needle = secret.as_bytes();
    assert!(!bytes.windows(needle.len()).any(|w| w == needle), "the secret is in the database");
    assert!(
        !bytes.windows(16).any(|w| w == &needle[..16]),
        "part of the secret is in the database"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = herald.data_dir().join("master.key");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // After a restart the same key opens the secrets: the integration still checks out.
    herald.restart().await;
    let got = herald
        .get_json(&shop, &format!("/v1/integrations/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["secrets"]["password"], "…0042");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_sends_and_checks_answer_with_the_provider_result() {
    let smtp = SmtpSink::start().await;
    let herald = Herald::start(&[LOOPBACK]).await;
    let shop = herald.key("shop", &["manage"]).await;
    let (_, created) = post(
        &herald,
        &shop,
        "/v1/integrations",
        smtp_integration("mail", smtp.port, "shop@herald.test", 0),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let (status, result) = post(
        &herald,
        &shop,
        &format!("/v1/integrations/{id}/test"),
        json!({"to": {"email": "ann@example.com"}}),
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["ok"], true, "{result}");
    assert!(result["provider_message_id"].as_str().unwrap().contains("queued as sink-1"));
    assert!(smtp.messages()[0].contains("Subject: Herald test"));
    let (_, result) = post(
        &herald,
        &shop,
        &format!("/v1/integrations/{id}/test"),
        json!({"to": {"email": "reject@example.com"}}),
    )
    .await;
    assert_eq!(
        (result["ok"].clone(), result["error_class"].clone()),
        (json!(false), json!("invalid_address")),
        "{result}"
    );
    let (status, problem) = post(
        &herald,
        &shop,
        &format!("/v1/integrations/{id}/test"),
        json!({"to": {"phone": "+14155552671"}}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (_, check) = post(&herald, &shop, &format!("/v1/integrations/{id}/check"), json!({})).await;
    assert_eq!(check["ok"], true, "{check}");
    // Nothing listens on the dead port: the check says so.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_, created) = post(
        &herald,
        &shop,
        "/v1/integrations",
        smtp_integration("dead", dead, "shop@herald.test", 1),
    )
    .await;
    let dead_id = created["id"].as_str().unwrap();
    let (_, check) =
        post(&herald, &shop, &format!("/v1/integrations/{dead_id}/check"), json!({})).await;
    assert_eq!(
        (check["ok"].clone(), check["error_class"].clone()),
        (json!(false), json!("transient")),
        "{check}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_account_fails_over_to_the_next_integration() {
    let smtp = SmtpSink::start().await;
    let herald = Herald::start(&[LOOPBACK]).await;
    let shop = herald.key("shop", &["manage", "send", "read"]).await;
    let suspended = smtp_integration("suspended-account", smtp.port, "suspended@herald.test", 0);
    let (status, _) = post(&herald, &shop, "/v1/integrations", suspended).await;
    assert_eq!(status, 201);
    let working = smtp_integration("backup", smtp.port, "Shop <shop@herald.test>", 1);
    let (status, _) = post(&herald, &shop, "/v1/integrations", working).await;
    assert_eq!(status, 201);
    let id = herald
        .send(
            &shop,
            &json!({"to": [{"email": "ann@example.com"}], "channels": ["email"],
            "content": {"email": {"subject": "Order shipped", "text": "On its way."}}}),
        )
        .await;
    let n = herald.wait_final(&shop, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "sent", "{n:#}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("From: Shop <shop@herald.test>"), "{}", messages[0]);
    let timeline = &n["timeline"];
    let text = timeline.to_string();
    assert!(text.contains("integration \\\"suspended-account\\\" failed: SMTP"), "{timeline:#}");
    assert!(text.contains("smtp via integration \\\"backup\\\""), "{timeline:#}");

    // An app without integrations still uses the installation's default (log) provider;
    // an app's own webhook integration signs with the app's own secret.
    let sink = WebhookSink::start(APP_SECRET).await;
    let hooks = herald.key("hooks", &["manage", "send", "read"]).await;
    let body = json!({"channel": "webhook", "provider": "webhook", "name": "signed",
        "secrets": {"signing_secret": APP_SECRET}});
    assert_eq!(post(&herald, &hooks, "/v1/integrations", body).await.0, 201);
    let id = herald
        .send(
            &hooks,
            &json!({"to": [{"webhook": {"url": sink.url("")}}], "channels": ["webhook"],
            "content": {"webhook": {"event": "order.shipped"}}}),
        )
        .await;
    let n = herald.wait_final(&hooks, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "sent", "{n:#}");
    assert_eq!((sink.count(), sink.bad_signatures()), (1, 0));
}
