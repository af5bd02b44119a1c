//! Delivery over real protocols on loopback: SMTP to a real SMTP server, webhooks to a
//! receiver that verifies Standard Webhooks signatures; retries, dead letters, fallback.

use herald_tests::herald::ADMIN_KEY;
use herald_tests::{Herald, SmtpSink, WEBHOOK_SECRET, WebhookSink};
use serde_json::{Value, json};
use std::time::Duration;

async fn smtp_herald(smtp: &SmtpSink, extra: &[(&str, &str)]) -> Herald {
    let port = smtp.port.to_string();
    let mut env = vec![
        ("HERALD_SMTP_HOST", "127.0.0.1"),
        ("HERALD_SMTP_PORT", port.as_str()),
        ("HERALD_SMTP_TLS", "none"),
        ("HERALD_SMTP_FROM", "Herald <noreply@herald.test>"),
        ("HERALD_SMTP_LIST_UNSUBSCRIBE", "<https://herald.test/unsubscribe/{delivery_id}>"),
    ];
    env.extend_from_slice(extra);
    Herald::start(&env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn email_reaches_a_real_smtp_server() {
    let smtp = SmtpSink::start().await;
    let herald = smtp_herald(&smtp, &[]).await;
    let body = json!({
        "to": [{"email": "ann@example.com"}],
        "channels": ["email"],
        "content": {"email": {"subject": "Your code", "text": "Code: 123456", "html": "<p>Code: <b>123456</b></p>"}}
    });
    let id = herald.send(ADMIN_KEY, &body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "sent", "{n:#}");
    let delivery = &n["deliveries"][0];
    assert_eq!(delivery["provider"], "smtp");
    assert!(delivery["provider_message_id"].as_str().unwrap().contains("queued as sink-1"));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(message.contains("X-Envelope-To: ann@example.com"));
    assert!(message.contains("Subject: Your code"));
    assert!(message.contains("From: Herald <noreply@herald.test>"));
    assert!(message.contains("Code: 123456"));
    assert!(message.contains("<b>123456</b>"));
    assert!(message.contains("multipart/alternative"));
    let dlv = delivery["id"].as_str().unwrap();
    assert!(
        message.contains(&format!("List-Unsubscribe: <https://herald.test/unsubscribe/{dlv}>")),
        "{message}"
    );
    assert!(message.contains(&format!("Message-ID: <{dlv}@herald.test>")));
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_rejections_fail_permanently_and_busy_servers_are_retried() {
    let smtp = SmtpSink::start().await;
    let herald = smtp_herald(&smtp, &[("HERALD_MAX_ATTEMPTS", "3")]).await;
    let send = |to: &str| json!({"to": [{"email": to}], "channels": ["email"], "content": {"email": {"subject": "s", "text": "t"}}});
    let rejected = herald.send(ADMIN_KEY, &send("reject@example.com")).await;
    let busy = herald.send(ADMIN_KEY, &send("busy@example.com")).await;
    let n = herald.wait_final(ADMIN_KEY, &rejected, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "failed");
    assert_eq!(n["deliveries"][0]["attempts"], 1, "a 550 is not retried");
    assert!(n["deliveries"][0]["reason"].as_str().unwrap().contains("550"));
    let n = herald.wait_final(ADMIN_KEY, &busy, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "failed");
    assert_eq!(n["deliveries"][0]["attempts"], 3, "a 451 is retried until attempts run out");
    assert!(smtp.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_and_carry_the_payload() {
    let herald = Herald::start(&[]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let body = json!({
        "to": [{"webhook": {"url": sink.url("")}}],
        "channels": ["webhook"],
        "category": "order-shipped",
        "priority": "high",
        "content": {"webhook": {"order": 42, "items": ["a", "b"]}},
        "metadata": {"tenant": "acme"}
    });
    let id = herald.send(ADMIN_KEY, &body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    assert_eq!(n["status"], "sent");
    assert_eq!(sink.bad_signatures(), 0);
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let dlv = n["deliveries"][0]["id"].as_str().unwrap();
    assert_eq!(received[0].webhook_id, dlv, "webhook-id is the delivery id");
    let payload = &received[0].body;
    assert_eq!(payload["type"], "notification");
    assert_eq!(payload["data"], json!({"order": 42, "items": ["a", "b"]}));
    assert_eq!(payload["notification_id"], id.as_str());
    assert_eq!(payload["category"], "order-shipped");
    assert_eq!(payload["metadata"]["tenant"], "acme");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_with_another_secret_rejects_the_signature() {
    // Proves the sink's check can fail: Herald signs with a secret the sink doesn't have.
    let herald = Herald::start(&[("HERALD_MAX_ATTEMPTS", "1")]).await;
    let sink = WebhookSink::start("whsec_b3RoZXItc2VjcmV0LW5vdC1oZXJhbGRzLXRlc3Qta2V5").await;
    let body = json!({"to": [{"webhook": {"url": sink.url("")}}], "channels": ["webhook"], "content": {"webhook": {}}});
    let id = herald.send(ADMIN_KEY, &body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    assert_eq!(n["status"], "failed");
    assert_eq!(sink.bad_signatures(), 1);
    assert!(n["deliveries"][0]["reason"].as_str().unwrap().contains("401"));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_dead_lettered() {
    let herald = Herald::start(&[("HERALD_MAX_ATTEMPTS", "4")]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let body = json!({"to": [{"webhook": {"url": sink.url("status=500")}}], "channels": ["webhook"], "content": {"webhook": {}}});
    let id = herald.send(ADMIN_KEY, &body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "failed");
    let delivery = &n["deliveries"][0];
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts"], 4);
    assert!(delivery["reason"].as_str().unwrap().starts_with("gave up after 4 attempts"));
    assert_eq!(sink.requests(), 4, "exactly four requests reached the sink");
    let retries =
        n["timeline"].as_array().unwrap().iter().filter(|e| e["event"] == "attempt_failed").count();
    assert_eq!(retries, 3);
    // The job is dead-lettered just after the delivery is marked failed, in a write of
    // its own: the notification can read `failed` a moment before the dead letter exists.
    let dead_letters = || async {
        let dead: Value = herald.get_json(ADMIN_KEY, "/v1/dead-letters").await;
        dead.as_array().unwrap().clone()
    };
    assert!(
        herald_tests::eventually(Duration::from_secs(10), || async {
            !dead_letters().await.is_empty()
        })
        .await
    );
    let dead = dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["queue"], "send.webhook");
    assert_eq!(dead[0]["payload"], delivery["id"]);
    assert_eq!(dead[0]["attempts"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_fail_at_once_and_timeouts_are_retried() {
    let herald =
        Herald::start(&[("HERALD_MAX_ATTEMPTS", "2"), ("HERALD_WEBHOOK_TIMEOUT_MS", "200")]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let gone = json!({"to": [{"webhook": {"url": sink.url("status=410")}}], "channels": ["webhook"], "content": {"webhook": {}}});
    let slow = json!({"to": [{"webhook": {"url": sink.url("delay_ms=1000")}}], "channels": ["webhook"], "content": {"webhook": {}}});
    let gone = herald.send(ADMIN_KEY, &gone).await;
    let slow = herald.send(ADMIN_KEY, &slow).await;
    let n = herald.wait_final(ADMIN_KEY, &gone, Duration::from_secs(10)).await;
    assert_eq!(
        (n["status"].as_str(), n["deliveries"][0]["attempts"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert!(n["deliveries"][0]["reason"].as_str().unwrap().contains("410"));
    let n = herald.wait_final(ADMIN_KEY, &slow, Duration::from_secs(10)).await;
    assert_eq!(n["deliveries"][0]["attempts"], 2);
    assert!(n["deliveries"][0]["reason"].as_str().unwrap().contains("timed out"), "{n:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fallback_routing_moves_to_the_next_channel_on_failure() {
    let herald = Herald::start(&[("HERALD_MAX_ATTEMPTS", "1")]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let body = json!({
        "to": [
            {"webhook": {"url": sink.url("status=400")}, "email": "ann@example.com"},
            {"email": "bob@example.com"}
        ],
        "channels": ["webhook", "email"],
        "routing": "fallback",
        "content": {"webhook": {}, "email": {"subject": "s", "text": "t"}}
    });
    let id = herald.send(ADMIN_KEY, &body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    assert_eq!(n["status"], "sent");
    let outcome: Vec<(u64, &str, &str)> = n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["recipient_index"].as_u64().unwrap(),
                d["channel"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    let mut outcome = outcome;
    outcome.sort();
    assert_eq!(
        outcome,
        [
            (0, "email", "sent"),
            (0, "webhook", "failed"),
            (1, "email", "sent"),
            (1, "webhook", "suppressed"),
        ]
    );
    let suppressed =
        n["deliveries"].as_array().unwrap().iter().find(|d| d["status"] == "suppressed").unwrap();
    assert_eq!(suppressed["reason"], "no_address");
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_finishes_in_flight_sends() {
    let mut herald = Herald::start(&[]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let body = json!({"to": [{"webhook": {"url": sink.url("delay_ms=800")}}], "channels": ["webhook"], "content": {"webhook": {}}});
    let id = herald.send(ADMIN_KEY, &body).await;
    assert!(
        herald_tests::eventually(Duration::from_secs(10), || async { sink.started() > 0 }).await
    );
    assert_eq!(sink.count(), 0, "the request is in flight");
    assert!(herald.terminate().await, "clean exit on SIGTERM");
    assert_eq!(sink.count(), 1, "the in-flight send completed before exit");
    let wal = herald.data_dir().join("herald.db-wal");
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_bytes, 0, "the WAL is copied into the database and emptied at the stop");
    herald.restart().await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(10)).await;
    assert_eq!(n["status"], "sent");
    assert_eq!(sink.count(), 1, "and it is not sent again after restart");
}
