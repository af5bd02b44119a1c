//! Chat channels end to end on a real `herald serve`, each against a loopback fake of
//! the vendor written from its documentation (`herald_tests::dingtalk`): templated
//! sends to users by their chat identity, signed robot messages, one token refresh on
//! an expired-token answer, pacing a burst to a robot's limit, and vendor errors on
//! the delivery.

use herald_tests::Herald;
use herald_tests::dingtalk::{self, DingTalkFake, Scripted};
use herald_tests::herald::ADMIN_KEY;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const LOOPBACK: (&str, &str) = ("HERALD_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(30);

async fn post(herald: &Herald, path: &str, body: Value) -> (u16, Value) {
    let response = herald.post(ADMIN_KEY, path, &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn integrate(herald: &Herald, body: Value) {
    let (status, created) = post(herald, "/v1/integrations", body).await;
    assert_eq!(status, 201, "{created}");
}

async fn dingtalk_robot(herald: &Herald, fake: &DingTalkFake, window: Option<Value>) {
    let mut body = json!({
        "channel": "dingtalk", "provider": "dingtalk_robot", "name": "ops",
        "config": {"base_url": fake.base_url},
        "secrets": {"access_token": dingtalk::ROBOT_TOKEN, "secret": dingtalk::ROBOT_SECRET},
    });
    if let Some(window) = window {
        body["window_limit"] = window;
    }
    integrate(herald, body).await;
}

async fn dingtalk_work(herald: &Herald, fake: &DingTalkFake) {
    integrate(
        herald,
        json!({
            "channel": "dingtalk", "provider": "dingtalk_work", "name": "hr-app",
            "config": {"base_url": fake.base_url, "agent_id": 2_000_123},
            "secrets": {"app_key": dingtalk::APP_KEY, "app_secret": dingtalk::APP_SECRET},
        }),
    )
    .await;
}

fn deliveries(notification: &Value) -> &Vec<Value> {
    notification["deliveries"].as_array().expect("deliveries")
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_work_notice_from_a_template_with_one_token_refresh() {
    let fake = DingTalkFake::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    dingtalk_work(&herald, &fake).await;
    let (status, user) = async {
        let response = herald
            .client
            .put(herald.url("/v1/users/ann"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"chat": {"dingtalk": "manager4521"}, "locale": "zh-CN"}))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
    .await;
    assert!(status == 200 || status == 201, "{user}");
    let template = json!({
        "id": "leave-approved", "name": "Leave approved",
        "locales": {"default": {"dingtalk": {"markdown": {
            "title": "请假已批准",
            "text": "### {{ name }} 的请假已批准\n\n{{ days }} 天"
        }}}}
    });
    let (status, created) = post(&herald, "/v1/templates", template).await;
    assert_eq!(status, 201, "{created}");

    // The first send fetches a token; the fake then calls it expired once.
    let send = |days: u32| {
        json!({"to": [{"user_id": "ann"}], "channels": ["dingtalk"],
               "template": {"id": "leave-approved", "data": {"name": "Ann", "days": days}}})
    };
    let first = herald.send(ADMIN_KEY, &send(3)).await;
    let first = herald.wait_final(ADMIN_KEY, &first, WAIT).await;
    assert_eq!(first["status"], "sent", "{first:#}");
    fake.script([Scripted::Code(42001)]);
    let second = herald.send(ADMIN_KEY, &send(5)).await;
    let second = herald.wait_final(ADMIN_KEY, &second, WAIT).await;
    assert_eq!(second["status"], "sent", "{second:#}");
    let delivery = &deliveries(&second)[0];
    assert_eq!(delivery["attempts"], 1, "the refresh is not a retry: {delivery:#}");
    assert_eq!(fake.tokens_issued(), 2, "one token, then exactly one refresh");

    let received = fake.received();
    assert_eq!(received.len(), 2, "{:?}", fake.rejected());
    let body = &received[1].body;
    assert_eq!(body["agent_id"], 2_000_123);
    assert_eq!(body["userid_list"], "manager4521");
    assert_eq!(body["msg"]["msgtype"], "markdown");
    assert_eq!(body["msg"]["markdown"]["title"], "请假已批准");
    assert_eq!(body["msg"]["markdown"]["text"], "### Ann 的请假已批准\n\n5 天");
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_to_a_robot_is_paced_to_its_window_and_nothing_is_dropped() {
    // The robot takes 20 in any second here (20 a minute on DingTalk, scaled down).
    let window = Duration::from_secs(1);
    let fake = DingTalkFake::start(20, window).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    dingtalk_robot(&herald, &fake, Some(json!({"max": 20, "window_seconds": 1}))).await;
    let items: Vec<Value> = (0..100)
        .map(|i| {
            json!({"to": [{"dingtalk": {"robot": "ops"}}], "channels": ["dingtalk"],
                   "priority": "low",
                   "content": {"dingtalk": {"text": format!("disk full on node {i}"),
                                            "mentions": {"mobiles": ["13800000000"]}}}})
        })
        .collect();
    let started = Instant::now();
    let (status, batch) = post(&herald, "/v1/notifications/batch", json!({"items": items})).await;
    assert_eq!(status, 200, "{batch}");
    let ids: Vec<String> = batch["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().expect("accepted").to_owned())
        .collect();
    for id in &ids {
        let n = herald.wait_final(ADMIN_KEY, id, WAIT).await;
        assert_eq!(n["status"], "sent", "{n:#}");
        assert_eq!(deliveries(&n)[0]["attempts"], 1, "pacing is not an attempt: {n:#}");
    }
    let received = fake.received();
    assert_eq!(received.len(), 100, "rejected: {:?}", fake.rejected());
    assert_eq!(fake.violations(), 0, "the robot was sent more than its limit");
    for (i, first) in received.iter().enumerate() {
        let within = received[i..].iter().filter(|r| r.at.duration_since(first.at) < window);
        assert!(within.count() <= 20);
    }
    // Five windows' worth: at least four whole windows passed.
    assert!(started.elapsed() >= 4 * window);
    let body = &received[0].body;
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["at"]["atMobiles"], json!(["13800000000"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_high_priority_message_overtakes_low_ones_waiting_for_the_robot() {
    let fake = DingTalkFake::start(5, Duration::from_secs(1)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    dingtalk_robot(&herald, &fake, Some(json!({"max": 5, "window_seconds": 1}))).await;
    let message = |priority: &str, text: &str| {
        json!({"to": [{"dingtalk": {"robot": "ops"}}], "channels": ["dingtalk"],
               "priority": priority, "content": {"dingtalk": {"text": text}}})
    };
    let items: Vec<Value> = (0..15).map(|i| message("low", &format!("low {i}"))).collect();
    let (status, _) = post(&herald, "/v1/notifications/batch", json!({"items": items})).await;
    assert_eq!(status, 200);
    // Wait until the first window's five are out, then send the urgent one.
    assert!(herald_tests::eventually(WAIT, || async { fake.received().len() >= 5 }).await);
    let urgent = herald.send(ADMIN_KEY, &message("high", "urgent")).await;
    herald.wait_final(ADMIN_KEY, &urgent, WAIT).await;
    assert!(herald_tests::eventually(WAIT, || async { fake.received().len() == 16 }).await);
    let order: Vec<String> = fake
        .received()
        .iter()
        .map(|r| r.body["text"]["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    let at = order.iter().position(|t| t == "urgent").unwrap();
    assert!(at <= 10, "the urgent message went out {at}th: {order:?}");
    assert_eq!(fake.violations(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_errors_fail_the_delivery_with_the_vendors_code() {
    let fake = DingTalkFake::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    dingtalk_robot(&herald, &fake, None).await;
    let message = json!({"to": [{"dingtalk": {"robot": "ops"}}], "channels": ["dingtalk"],
                         "content": {"dingtalk": {"card": {"title": "Deploy", "text": "**v2** is out",
                                                           "url": "https://example.com/d"}}}});
    // A permanent refusal: failed, with DingTalk's code on the delivery.
    fake.script([Scripted::Code(400013)]);
    let failed = herald.send(ADMIN_KEY, &message).await;
    let failed = herald.wait_final(ADMIN_KEY, &failed, WAIT).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let reason = deliveries(&failed)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("dingtalk error 400013"), "{reason}");
    // A 5xx is retried and then goes through.
    fake.script([Scripted::Status(503)]);
    let retried = herald.send(ADMIN_KEY, &message).await;
    let retried = herald.wait_final(ADMIN_KEY, &retried, WAIT).await;
    assert_eq!(retried["status"], "sent", "{retried:#}");
    assert_eq!(deliveries(&retried)[0]["attempts"], 2);
    let card = &fake.received()[0].body;
    assert_eq!(card["msgtype"], "actionCard");
    assert_eq!(card["actionCard"]["singleURL"], "https://example.com/d");
    // A robot the app does not have: failed, saying so.
    let mut unknown = message.clone();
    unknown["to"] = json!([{"dingtalk": {"robot": "nobody"}}]);
    let id = herald.send(ADMIN_KEY, &unknown).await;
    let n = herald.wait_final(ADMIN_KEY, &id, WAIT).await;
    assert_eq!(n["status"], "failed");
    let reason = deliveries(&n)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("no enabled dingtalk robot integration named 'nobody'"), "{reason}");
}
