//! Priority under a backlog, and crash safety: thousands of notifications through a real
//! server, counted at a loopback webhook receiver.

use herald_tests::herald::ADMIN_KEY;
use herald_tests::{Herald, WEBHOOK_SECRET, WebhookSink, eventually};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

fn webhook(url: &str, priority: &str, n: usize) -> Value {
    json!({"to": [{"webhook": {"url": url}}], "channels": ["webhook"], "priority": priority,
           "content": {"webhook": {"n": n}}})
}

/// Sends `bodies` with `concurrency` requests in flight; returns the accepted ids.
async fn send_all(herald: &Arc<Herald>, bodies: Vec<Value>, concurrency: usize) -> Vec<String> {
    let bodies = Arc::new(std::sync::Mutex::new(bodies));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (herald, bodies) = (herald.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let Some(body) = bodies.lock().unwrap().pop() else {
                    return ids;
                };
                ids.push(herald.send(ADMIN_KEY, &body).await);
            }
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_high_priority_notification_overtakes_a_low_backlog() {
    // 8 sends in flight, 20 ms each: 5,000 lows take over 12 s to drain.
    let herald = Arc::new(Herald::start(&[("HERALD_SEND_WORKERS", "1")]).await);
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let slow = sink.url("delay_ms=20");
    let lows: Vec<Value> = (0..5000).map(|n| webhook(&slow, "low", n)).collect();
    send_all(&herald, lows, 16).await;
    let delivered_before = sink.count();
    assert!(delivered_before < 2500, "the backlog must still be there ({delivered_before} done)");

    herald.send(ADMIN_KEY, &webhook(&sink.url("urgent=1"), "high", 0)).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            sink.received().iter().any(|r| r.body["priority"] == "high")
        })
        .await,
        "the high one arrives"
    );
    let received = sink.received();
    let position = received.iter().position(|r| r.body["priority"] == "high").unwrap();
    println!(
        "high delivered as #{} of 5001 (lows done when it was sent: {delivered_before})",
        position + 1
    );
    assert!(position < 2500, "high delivered at position {position}, after half the lows");
    // Only the sends already in flight when it arrived may finish in between.
    assert!(
        position < delivered_before + 100,
        "position {position}, lows done at send {delivered_before}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_and_duplicates_nothing() {
    // 16 sends in flight, 20 ms each: 2,000 take over 2.5 s, so the kill lands mid-way.
    let herald = Herald::start(&[("HERALD_SEND_WORKERS", "2")]).await;
    let mut herald = Arc::new(herald);
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    let url = sink.url("delay_ms=20");
    let bodies: Vec<Value> = (0..2000).map(|n| webhook(&url, "medium", n)).collect();
    let accepted = send_all(&herald, bodies, 16).await;
    assert_eq!(accepted.len(), 2000);

    let at_kill = sink.unique();
    Arc::get_mut(&mut herald).expect("sole owner").kill9().await;
    assert!(at_kill < 2000, "the kill must land while work is in flight ({at_kill} done)");
    println!("killed after {at_kill} of 2000 deliveries");

    Arc::get_mut(&mut herald).unwrap().restart().await;
    assert!(
        eventually(Duration::from_secs(60), || async { sink.unique() >= 2000 }).await,
        "only {} of 2000 delivered after restart",
        sink.unique()
    );
    // The receiver records a request before it answers, and Herald records the send
    // after the answer: wait for the last `sent` too.
    assert!(
        eventually(Duration::from_secs(60), || async { sent_count(&herald).await >= 2000 }).await,
        "only {} of 2000 read sent",
        sent_count(&herald).await
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // anything extra would show now

    // Every accepted notification reached the receiver under exactly one webhook-id.
    let mut ids_by_notification: HashMap<String, HashSet<String>> = HashMap::new();
    for r in sink.received() {
        let notification = r.body["notification_id"].as_str().unwrap().to_owned();
        ids_by_notification.entry(notification).or_default().insert(r.webhook_id);
    }
    let accepted: HashSet<String> = accepted.into_iter().collect();
    let delivered: HashSet<String> = ids_by_notification.keys().cloned().collect();
    assert_eq!(delivered, accepted, "delivered set equals accepted set");
    assert!(
        ids_by_notification.values().all(|ids| ids.len() == 1),
        "one delivery per notification"
    );
    assert_eq!(sink.unique(), 2000);
    // A request in flight at the kill may arrive twice under the same webhook-id (the
    // receiver drops the repeat, as Standard Webhooks asks); nothing else may repeat.
    let repeats = sink.count() - sink.unique();
    println!("repeated requests (in flight at the kill): {repeats}");
    assert!(repeats <= 16, "{repeats} repeats, more than the 16 sends in flight");

    // And the server agrees: every notification is `sent`.
    assert_eq!(sent_count(&herald).await, 2000);
}

/// How many notifications the server lists as `sent`, page by page.
async fn sent_count(herald: &Herald) -> usize {
    let mut sent = 0;
    let mut path = "/v1/notifications?status=sent&limit=200".to_owned();
    loop {
        let page = herald.get_json(ADMIN_KEY, &path).await;
        sent += page["data"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/notifications?status=sent&limit=200&cursor={c}"),
            None => return sent,
        }
    }
}
