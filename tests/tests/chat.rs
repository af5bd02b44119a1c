//! Chat channels end to end on a real `herald serve`, each vendor against a loopback
//! fake written from its documentation (`herald_tests::<vendor>`): a templated message
//! to a user by their chat identity with exactly one token refresh when the vendor
//! calls the token expired, a burst of 100 to a robot paced to its limit with none
//! dropped, and vendor errors on the delivery.

use herald_core::domain::Channel;
use herald_core::ports::{QueueName, QueueStats};
use herald_tests::Herald;
use herald_tests::herald::ADMIN_KEY;
use herald_tests::vendor_fake::{Fake, Scripted};
use herald_tests::{dingtalk, feishu, onebot, slack, wechat_oa, wecom};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

const LOOPBACK: (&str, &str) = ("HERALD_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(30);

type Start = fn(usize, Duration) -> Pin<Box<dyn Future<Output = Fake> + Send>>;

/// One vendor under test: its fake and how an app integrates it.
struct Vendor {
    channel: &'static str,
    start: Start,
    /// The robot integration's provider, config and secrets.
    robot: fn(&Fake) -> Value,
    /// The app integration's provider, config and secrets.
    app: fn(&Fake) -> Value,
    /// The vendor's code for an expired token; an answer it documents as permanent,
    /// and how the delivery's reason names it.
    expired: i64,
    permanent: Scripted,
    permanent_reason: &'static str,
    /// The text of a robot's text message as the fake received it.
    robot_text: fn(&Value) -> &str,
}

const DINGTALK: Vendor = Vendor {
    channel: "dingtalk",
    start: |max, window| Box::pin(dingtalk::start(max, window)),
    robot: |fake| {
        json!({"provider": "dingtalk_robot", "config": {"base_url": fake.base_url},
               "secrets": {"access_token": dingtalk::ROBOT_TOKEN, "secret": dingtalk::ROBOT_SECRET}})
    },
    app: |fake| {
        json!({"provider": "dingtalk_work",
               "config": {"base_url": fake.base_url, "agent_id": 2_000_123},
               "secrets": {"app_key": dingtalk::APP_KEY, "app_secret": dingtalk::APP_SECRET}})
    },
    expired: 42001,
    permanent: Scripted::Code(400013),
    permanent_reason: "dingtalk error 400013",
    robot_text: |body| body["text"]["content"].as_str().unwrap_or_default(),
};

const WECOM: Vendor = Vendor {
    channel: "wecom",
    start: |max, window| Box::pin(wecom::start(max, window)),
    robot: |fake| {
        json!({"provider": "wecom_robot", "config": {"base_url": fake.base_url},
               "secrets": {"key": wecom::ROBOT_KEY}})
    },
    app: |fake| {
        json!({"provider": "wecom_app",
               "config": {"base_url": fake.base_url, "corp_id": wecom::CORP_ID, "agent_id": 1_000_002},
               "secrets": {"corp_secret": wecom::CORP_SECRET}})
    },
    expired: 42001,
    permanent: Scripted::Code(44004),
    permanent_reason: "wecom error 44004",
    robot_text: |body| body["text"]["content"].as_str().unwrap_or_default(),
};

const FEISHU: Vendor = Vendor {
    channel: "feishu",
    start: |max, window| Box::pin(feishu::start(max, window)),
    robot: |fake| {
        json!({"provider": "feishu_bot", "config": {"base_url": fake.base_url},
               "secrets": {"hook_token": feishu::HOOK_TOKEN, "secret": feishu::BOT_SECRET}})
    },
    app: |fake| {
        json!({"provider": "feishu_app", "config": {"base_url": fake.base_url, "domain": "lark"},
               "secrets": {"app_id": feishu::APP_ID, "app_secret": feishu::APP_SECRET}})
    },
    expired: 99991663,
    permanent: Scripted::Code(9499),
    permanent_reason: "feishu error 9499",
    robot_text: |body| body["content"]["text"].as_str().unwrap_or_default(),
};

/// Slack has no token exchange (`app` is the bot-token API, `expired` unused).
const SLACK: Vendor = Vendor {
    channel: "slack",
    start: |max, window| Box::pin(slack::start(max, window)),
    robot: |fake| {
        json!({"provider": "slack_webhook",
               "secrets": {"url": format!("{}{}", fake.base_url, slack::WEBHOOK_PATH)}})
    },
    app: |fake| {
        json!({"provider": "slack_api", "config": {"base_url": fake.base_url},
               "secrets": {"bot_token": slack::BOT_TOKEN}})
    },
    expired: 0,
    permanent: Scripted::Named("invalid_payload"),
    permanent_reason: "slack error invalid_payload",
    robot_text: |body| body["text"].as_str().unwrap_or_default(),
};

async fn post(herald: &Herald, path: &str, body: Value) -> (u16, Value) {
    let response = herald.post(ADMIN_KEY, path, &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn integrate(herald: &Herald, vendor: &Vendor, name: &str, mut body: Value) {
    body["channel"] = json!(vendor.channel);
    body["name"] = json!(name);
    let (status, created) = post(herald, "/v1/integrations", body).await;
    assert_eq!(status, 201, "{created}");
}

async fn put_user(herald: &Herald, id: &str, profile: Value) {
    let response = herald
        .client
        .put(herald.url(&format!("/v1/users/{id}")))
        .bearer_auth(ADMIN_KEY)
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
}

fn deliveries(notification: &Value) -> &Vec<Value> {
    notification["deliveries"].as_array().expect("deliveries")
}

fn to_robot(vendor: &Vendor, robot: &str, priority: &str, text: &str) -> Value {
    json!({"to": [{vendor.channel: {"robot": robot}}], "channels": [vendor.channel],
           "priority": priority, "content": {vendor.channel: {"text": text}}})
}

/// Sends a templated markdown message to a user by their identity, then again after
/// the vendor calls the token expired; returns the two bodies the fake received.
async fn app_message_with_one_token_refresh(vendor: &Vendor, user_id: &str) -> Vec<Value> {
    let fake = (vendor.start)(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, vendor, "app", (vendor.app)(&fake)).await;
    put_user(&herald, "ann", json!({"chat": {vendor.channel: user_id}, "locale": "zh-CN"})).await;
    let template = json!({
        "id": "leave-approved", "name": "Leave approved",
        "locales": {"default": {vendor.channel: {"markdown": {
            "title": "请假已批准",
            "text": "### {{ name }} 的请假已批准\n\n{{ days }} 天"
        }}}}
    });
    let (status, created) = post(&herald, "/v1/templates", template).await;
    assert_eq!(status, 201, "{created}");
    let send = |days: u32| {
        json!({"to": [{"user_id": "ann"}], "channels": [vendor.channel],
               "template": {"id": "leave-approved", "data": {"name": "Ann", "days": days}}})
    };
    let first = herald.send(ADMIN_KEY, &send(3)).await;
    let first = herald.wait_final(ADMIN_KEY, &first, WAIT).await;
    assert_eq!(first["status"], "sent", "{first:#}");
    fake.script([Scripted::Code(vendor.expired)]);
    let second = herald.send(ADMIN_KEY, &send(5)).await;
    let second = herald.wait_final(ADMIN_KEY, &second, WAIT).await;
    assert_eq!(second["status"], "sent", "{second:#}");
    let delivery = &deliveries(&second)[0];
    assert_eq!(delivery["attempts"], 1, "the refresh is not a retry: {delivery:#}");
    assert_eq!(fake.tokens_issued(), 2, "one token, then exactly one refresh");
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
    fake.received().into_iter().map(|r| r.body).collect()
}

/// 100 messages to one robot that takes 20 a second (20 a minute, scaled down): all
/// delivered, none past the limit in any window, none retried.
async fn burst_paced_to_the_robots_window(vendor: &Vendor) {
    let window = Duration::from_secs(1);
    let fake = (vendor.start)(20, window).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    let mut robot = (vendor.robot)(&fake);
    robot["window_limit"] = json!({"max": 20, "window_seconds": 1});
    integrate(&herald, vendor, "ops", robot).await;
    let items: Vec<Value> = (0..100)
        .map(|i| to_robot(vendor, "ops", "low", &format!("disk full on node {i}")))
        .collect();
    let started = Instant::now();
    let (status, batch) = post(&herald, "/v1/notifications/batch", json!({"items": items})).await;
    assert_eq!(status, 200, "{batch}");
    for item in batch["items"].as_array().unwrap() {
        let n = herald.wait_final(ADMIN_KEY, item["id"].as_str().expect("accepted"), WAIT).await;
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
    let mut texts: Vec<&str> = received.iter().map(|r| (vendor.robot_text)(&r.body)).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 100, "each message once");
}

/// A permanent code fails the delivery with the vendor's code; a 5xx is retried; a
/// robot the app does not have fails saying so.
async fn vendor_errors_on_the_delivery(vendor: &Vendor) {
    let fake = (vendor.start)(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, vendor, "ops", (vendor.robot)(&fake)).await;
    fake.script([vendor.permanent.clone()]);
    let failed = herald.send(ADMIN_KEY, &to_robot(vendor, "ops", "high", "one")).await;
    let failed = herald.wait_final(ADMIN_KEY, &failed, WAIT).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let reason = deliveries(&failed)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains(vendor.permanent_reason), "{reason}");
    fake.script([Scripted::Status(503)]);
    let retried = herald.send(ADMIN_KEY, &to_robot(vendor, "ops", "high", "two")).await;
    let retried = herald.wait_final(ADMIN_KEY, &retried, WAIT).await;
    assert_eq!(retried["status"], "sent", "{retried:#}");
    assert_eq!(deliveries(&retried)[0]["attempts"], 2);
    let unknown = herald.send(ADMIN_KEY, &to_robot(vendor, "nobody", "high", "three")).await;
    let n = herald.wait_final(ADMIN_KEY, &unknown, WAIT).await;
    assert_eq!(n["status"], "failed");
    let reason = deliveries(&n)[0]["reason"].as_str().unwrap_or_default().to_owned();
    let expected = format!("no enabled {} robot integration named 'nobody'", vendor.channel);
    assert!(reason.contains(&expected), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_work_notice_from_a_template() {
    let bodies = app_message_with_one_token_refresh(&DINGTALK, "manager4521").await;
    let body = &bodies[1];
    assert_eq!(body["agent_id"], 2_000_123);
    assert_eq!(body["userid_list"], "manager4521");
    assert_eq!(body["msg"]["msgtype"], "markdown");
    assert_eq!(body["msg"]["markdown"]["title"], "请假已批准");
    assert_eq!(body["msg"]["markdown"]["text"], "### Ann 的请假已批准\n\n5 天");
}

/// Polls `id` until `done` holds for it and its first delivery; returns it.
async fn wait_delivery(herald: &Herald, id: &str, done: impl Fn(&Value, &Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let n = herald.notification(ADMIN_KEY, id).await;
        if done(&n, &deliveries(&n)[0]) {
            return n;
        }
        assert!(Instant::now() < deadline, "not reached: {n:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events(notification: &Value) -> Vec<String> {
    let timeline = notification["timeline"].as_array().expect("timeline");
    timeline.iter().filter_map(|e| e["event"].as_str().map(str::to_owned)).collect()
}

/// DingTalk answers a work notification with a task id only; `getsendresult`, polled
/// on the schedule (scaled down here), turns read, unread and failed users into
/// delivery statuses, and polling stops at the schedule's end.
#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_work_receipts_are_polled() {
    let fake = dingtalk::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, &DINGTALK, "app", (DINGTALK.app)(&fake)).await;
    fake.fates("reader", &["pending", "unread", "read"]);
    fake.fates("gone", &["failed"]);
    fake.fates("busy", &["forbidden"]);
    let send = |user: &str| {
        json!({"to": [{"dingtalk": {"id": user}}], "channels": ["dingtalk"],
               "content": {"dingtalk": {"text": format!("hello {user}")}}})
    };
    let reader = herald.send(ADMIN_KEY, &send("reader")).await;
    let gone = herald.send(ADMIN_KEY, &send("gone")).await;
    let busy = herald.send(ADMIN_KEY, &send("busy")).await;
    let silent = herald.send(ADMIN_KEY, &send("silent")).await;

    let n = wait_delivery(&herald, &reader, |n, _| events(n).contains(&"read".to_owned())).await;
    assert_eq!(deliveries(&n)[0]["status"], "delivered", "{n:#}");
    let delivered = events(&n).iter().filter(|e| *e == "delivered").count();
    assert_eq!(delivered, 1, "unread then read is one delivery: {n:#}");

    let n = wait_delivery(&herald, &gone, |_, d| d["status"] == "bounced").await;
    let reason = deliveries(&n)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("dingtalk: the send to this user failed"), "{reason}");
    let n = wait_delivery(&herald, &busy, |_, d| d["status"] == "bounced").await;
    let reason = deliveries(&n)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("flow-controlled, code 143106"), "{reason}");

    // Never read: delivered, then asked once per step of the schedule and no more.
    wait_delivery(&herald, &silent, |_, d| d["status"] == "delivered").await;
    let reader_polls = 3;
    let polls = reader_polls + 1 + 1 + 4;
    let deadline = Instant::now() + WAIT;
    while fake.receipt_queries() < polls {
        assert!(Instant::now() < deadline, "{} polls", fake.receipt_queries());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopped, Herald's queue holds no further poll, and none ran past the schedule.
    let mut herald = herald;
    assert!(herald.terminate().await);
    let backend = herald_sqlite::SqliteBackend::open(&herald.data_dir().join("herald.db")).unwrap();
    let queue = QueueName::Send(Channel::Dingtalk);
    assert_eq!(backend.depth(queue).await.unwrap(), 0, "a poll is still queued");
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
    assert_eq!(fake.receipt_queries(), polls);
}

/// Five lows to a robot that takes 2 in any 4 s: once two have gone and three wait, a
/// high is sent; it takes the first slot that frees. At most one low (one whose slot
/// frees at the same moment) goes between, however the queue orders their returns.
#[tokio::test(flavor = "multi_thread")]
async fn a_high_priority_message_overtakes_queued_low_ones() {
    let window = Duration::from_secs(4);
    let fake = dingtalk::start(2, window).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    let mut robot = (DINGTALK.robot)(&fake);
    robot["window_limit"] = json!({"max": 2, "window_seconds": 4});
    integrate(&herald, &DINGTALK, "ops", robot).await;
    let lows: Vec<Value> =
        (0..5).map(|i| to_robot(&DINGTALK, "ops", "low", &format!("low {i}"))).collect();
    let (status, batch) = post(&herald, "/v1/notifications/batch", json!({"items": lows})).await;
    assert_eq!(status, 200, "{batch}");
    // The window is full: the other three lows wait for its slots.
    let deadline = Instant::now() + WAIT;
    while fake.received().len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let high = herald.send(ADMIN_KEY, &to_robot(&DINGTALK, "ops", "high", "HIGH")).await;
    herald.wait_final(ADMIN_KEY, &high, WAIT).await;
    for item in batch["items"].as_array().unwrap() {
        herald.wait_final(ADMIN_KEY, item["id"].as_str().unwrap(), WAIT).await;
    }
    let received = fake.received();
    let texts: Vec<&str> = received.iter().map(|r| (DINGTALK.robot_text)(&r.body)).collect();
    assert_eq!(received.len(), 6, "{texts:?}");
    assert_eq!(fake.violations(), 0);
    let high_at = texts.iter().position(|t| *t == "HIGH").unwrap();
    assert!(high_at <= 3, "lows went first: {texts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_robot_burst_is_paced() {
    burst_paced_to_the_robots_window(&DINGTALK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_errors() {
    vendor_errors_on_the_delivery(&DINGTALK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dingtalk_robot_signs_cards_and_mentions() {
    let fake = dingtalk::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, &DINGTALK, "ops", (DINGTALK.robot)(&fake)).await;
    let card = json!({"to": [{"dingtalk": {"robot": "ops"}}], "channels": ["dingtalk"],
        "content": {"dingtalk": {"card": {"title": "Deploy", "text": "**v2** is out",
                                          "url": "https://example.com/d"},
                                 "mentions": {"mobiles": ["13800000000"], "all": false}}}});
    let id = herald.send(ADMIN_KEY, &card).await;
    assert_eq!(herald.wait_final(ADMIN_KEY, &id, WAIT).await["status"], "sent");
    let body = &fake.received()[0].body;
    assert_eq!(body["msgtype"], "actionCard");
    assert_eq!(body["actionCard"]["singleURL"], "https://example.com/d");
    assert_eq!(body["actionCard"]["singleTitle"], "Details");
    assert_eq!(body["at"]["atMobiles"], json!(["13800000000"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_app_message_from_a_template() {
    let bodies = app_message_with_one_token_refresh(&WECOM, "zhangsan").await;
    let body = &bodies[1];
    assert_eq!(body["agentid"], 1_000_002);
    assert_eq!(body["touser"], "zhangsan");
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["content"], "**请假已批准**\n### Ann 的请假已批准\n\n5 天");
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_robot_burst_is_paced() {
    burst_paced_to_the_robots_window(&WECOM).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_errors() {
    vendor_errors_on_the_delivery(&WECOM).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wecom_member_the_app_cannot_reach_fails_as_an_invalid_address() {
    let fake = wecom::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, &WECOM, "app", (WECOM.app)(&fake)).await;
    let send = json!({"to": [{"wecom": {"id": wecom::UNKNOWN_MEMBER}}], "channels": ["wecom"],
        "content": {"wecom": {"card": {"title": "Payslip", "text": "December", "url": "https://example.com/p"}}}});
    let id = herald.send(ADMIN_KEY, &send).await;
    let n = herald.wait_final(ADMIN_KEY, &id, WAIT).await;
    assert_eq!(n["status"], "failed", "{n:#}");
    let reason = deliveries(&n)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("invaliduser"), "{reason}");
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_app_message_from_a_template() {
    let bodies =
        app_message_with_one_token_refresh(&FEISHU, "ou_7d8a6e6df7621556ce0d21922b676706").await;
    let body = &bodies[1];
    assert_eq!(body["receive_id"], "ou_7d8a6e6df7621556ce0d21922b676706");
    assert_eq!(body["msg_type"], "interactive");
    let card: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
    assert_eq!(card["header"]["title"]["content"], "请假已批准");
    assert_eq!(card["elements"][0]["content"], "### Ann 的请假已批准\n\n5 天");
    assert!(body["uuid"].as_str().is_some_and(|u| u.starts_with("dlv_")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_bot_burst_is_paced() {
    burst_paced_to_the_robots_window(&FEISHU).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_errors() {
    vendor_errors_on_the_delivery(&FEISHU).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_webhook_burst_is_paced() {
    burst_paced_to_the_robots_window(&SLACK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_errors() {
    vendor_errors_on_the_delivery(&SLACK).await;
}

/// A templated card to a member by their Slack id through chat.postMessage, with the
/// template's values escaped for mrkdwn; a 429 is retried after its Retry-After.
#[tokio::test(flavor = "multi_thread")]
async fn slack_api_message_from_a_template() {
    let fake = slack::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, &SLACK, "workspace", (SLACK.app)(&fake)).await;
    put_user(&herald, "ann", json!({"chat": {"slack": "U0123ABCD"}})).await;
    let template = json!({
        "id": "deploy", "name": "Deploy",
        "locales": {"default": {"slack": {"card": {
            "title": "Deploy {{ version }}",
            "text": "*{{ service }}* is live",
            "url": "https://example.com/deploys/{{ version }}",
            "button": "Open"
        }}}}
    });
    let (status, created) = post(&herald, "/v1/templates", template).await;
    assert_eq!(status, 201, "{created}");
    fake.script([Scripted::Status(429)]);
    let id = herald
        .send(
            ADMIN_KEY,
            &json!({"to": [{"user_id": "ann"}], "channels": ["slack"],
                    "template": {"id": "deploy", "data": {"version": "v2", "service": "a<b>&c"}}}),
        )
        .await;
    let n = herald.wait_final(ADMIN_KEY, &id, WAIT).await;
    assert_eq!(n["status"], "sent", "{n:#}");
    assert_eq!(deliveries(&n)[0]["attempts"], 2);
    let body = &fake.received()[0].body;
    assert_eq!(body["channel"], "U0123ABCD");
    assert_eq!(body["blocks"][0]["text"]["text"], "Deploy v2");
    assert_eq!(body["blocks"][1]["text"]["text"], "*a&lt;b&gt;&amp;c* is live");
    assert_eq!(body["blocks"][1]["accessory"]["url"], "https://example.com/deploys/v2");
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

/// A templated WeChat template message to a follower by openid; WeChat then calls the
/// token invalid once: one new token, one send. The account's server URL answers
/// WeChat's verification and turns TEMPLATESENDJOBFINISH into `delivered`. A user who
/// does not follow the account fails with WeChat's code; the legacy token call is
/// never made.
#[tokio::test(flavor = "multi_thread")]
async fn wechat_template_message_from_a_template() {
    let fake = wechat_oa::start().await;
    let herald = Herald::start(&[LOOPBACK]).await;
    let integration = json!({"channel": "wechat", "provider": "wechat_oa", "name": "service",
        "config": {"base_url": fake.base_url, "app_id": wechat_oa::APP_ID},
        "secrets": {"app_secret": wechat_oa::APP_SECRET, "callback_token": wechat_oa::CALLBACK_TOKEN}});
    let (status, created) = post(&herald, "/v1/integrations", integration).await;
    assert_eq!(status, 201, "{created}");
    let callback =
        herald.url(&format!("/v1/callbacks/wechat/default/{}", created["id"].as_str().unwrap()));
    put_user(&herald, "ann", json!({"chat": {"wechat": "oAnn_0123456789abcdefghijkl"}})).await;
    put_user(&herald, "bob", json!({"chat": {"wechat": wechat_oa::NOT_FOLLOWING}})).await;
    let template = json!({
        "id": "shipped", "name": "Shipped",
        "locales": {"default": {"wechat": {
            "template_id": wechat_oa::TEMPLATE_ID,
            "data": {"thing1": "{{ item }}", "character_string2": "{{ order }}"},
            "url": "https://example.com/orders/{{ order }}"
        }}}
    });
    let (status, created) = post(&herald, "/v1/templates", template).await;
    assert_eq!(status, 201, "{created}");
    let send = |user: &str| {
        json!({"to": [{"user_id": user}], "channels": ["wechat"],
               "template": {"id": "shipped", "data": {"item": "Blue mug", "order": "A1001"}}})
    };
    let first = herald.send(ADMIN_KEY, &send("ann")).await;
    assert_eq!(herald.wait_final(ADMIN_KEY, &first, WAIT).await["status"], "sent");
    fake.script([Scripted::Code(40001)]);
    let second = herald.send(ADMIN_KEY, &send("ann")).await;
    let second = herald.wait_final(ADMIN_KEY, &second, WAIT).await;
    assert_eq!(second["status"], "sent", "{second:#}");
    assert_eq!(deliveries(&second)[0]["attempts"], 1);
    assert_eq!(fake.tokens_issued(), 2, "one token, then exactly one refresh");
    let body = &fake.received()[1].body;
    assert_eq!(body["touser"], "oAnn_0123456789abcdefghijkl");
    assert_eq!(body["data"]["thing1"]["value"], "Blue mug");
    assert_eq!(body["url"], "https://example.com/orders/A1001");
    assert!(body["client_msg_id"].as_str().is_some_and(|id| id.starts_with("dlv_")));
    // WeChat checks the server URL, then reports the message delivered; a push signed
    // with another token changes nothing.
    let (status, echoed) = wechat_oa::verify_url(&callback, wechat_oa::CALLBACK_TOKEN).await;
    assert_eq!((status.as_u16(), echoed.as_str()), (200, wechat_oa::ECHO_STR));
    assert_eq!(wechat_oa::verify_url(&callback, "another-token").await.0, 403);
    let msg_id: i64 =
        deliveries(&second)[0]["provider_message_id"].as_str().unwrap().parse().unwrap();
    let openid = "oAnn_0123456789abcdefghijkl";
    let forged = wechat_oa::send_template_job_finish(
        &callback,
        "another-token",
        openid,
        msg_id,
        wechat_oa::STATUS_USER_BLOCK,
    )
    .await;
    assert_eq!(forged, 403);
    let pushed = wechat_oa::send_template_job_finish(
        &callback,
        wechat_oa::CALLBACK_TOKEN,
        openid,
        msg_id,
        wechat_oa::STATUS_SUCCESS,
    )
    .await;
    assert_eq!(pushed, 200);
    let n = herald.notification(ADMIN_KEY, second["id"].as_str().unwrap()).await;
    assert_eq!(deliveries(&n)[0]["status"], "delivered", "{n:#}");
    let bob = herald.send(ADMIN_KEY, &send("bob")).await;
    let bob = herald.wait_final(ADMIN_KEY, &bob, WAIT).await;
    assert_eq!(bob["status"], "failed");
    let reason = deliveries(&bob)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("wechat error 43004"), "{reason}");
    assert!(fake.rejected().is_empty(), "never the legacy token call: {:?}", fake.rejected());
}

/// QQ through a OneBot bridge: a private message to a user's QQ number and a group
/// message with a mention, as segments; the bridge's failure code on the delivery.
#[tokio::test(flavor = "multi_thread")]
async fn qq_through_a_onebot_bridge() {
    let fake = onebot::start().await;
    let herald = Herald::start(&[LOOPBACK]).await;
    let integration = json!({"channel": "qq", "provider": "onebot", "name": "bridge",
        "config": {"base_url": fake.base_url}, "secrets": {"access_token": onebot::ACCESS_TOKEN}});
    let (status, created) = post(&herald, "/v1/integrations", integration).await;
    assert_eq!(status, 201, "{created}");
    put_user(&herald, "ann", json!({"chat": {"qq": "10001"}})).await;
    let private = json!({"to": [{"user_id": "ann"}], "channels": ["qq"],
                         "content": {"qq": {"text": "[CQ:face,id=1] is text here"}}});
    let id = herald.send(ADMIN_KEY, &private).await;
    assert_eq!(herald.wait_final(ADMIN_KEY, &id, WAIT).await["status"], "sent");
    let group = json!({"to": [{"qq": {"id": "group:20002"}}], "channels": ["qq"],
                       "content": {"qq": {"text": "standup", "mentions": {"user_ids": ["10001"]}}}});
    let id = herald.send(ADMIN_KEY, &group).await;
    assert_eq!(herald.wait_final(ADMIN_KEY, &id, WAIT).await["status"], "sent");
    let received = fake.received();
    assert_eq!(received.len(), 2, "{:?}", fake.rejected());
    assert_eq!(received[0].path, "/send_private_msg");
    assert_eq!(received[0].body["user_id"], 10001);
    assert_eq!(received[0].body["message"][0]["data"]["text"], "[CQ:face,id=1] is text here");
    assert_eq!(received[1].path, "/send_group_msg");
    assert_eq!(received[1].body["group_id"], 20002);
    assert_eq!(received[1].body["message"][0], json!({"type": "at", "data": {"qq": "10001"}}));
    fake.script([Scripted::Code(100)]);
    let id = herald.send(ADMIN_KEY, &private).await;
    let n = herald.wait_final(ADMIN_KEY, &id, WAIT).await;
    assert_eq!(n["status"], "failed");
    let reason = deliveries(&n)[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("onebot error 100"), "{reason}");
}

/// WeCom drops, without saying so, more than 30 messages a minute to one member: the
/// 31st waits for the minute instead of being sent (and lost), and is not failed.
#[tokio::test(flavor = "multi_thread")]
async fn wecom_paces_each_member_to_thirty_a_minute() {
    let fake = wecom::start(20, Duration::from_secs(60)).await;
    let herald = Herald::start(&[LOOPBACK]).await;
    integrate(&herald, &WECOM, "app", (WECOM.app)(&fake)).await;
    let items: Vec<Value> = (0..31)
        .map(|i| {
            json!({"to": [{"wecom": {"id": "zhangsan"}}], "channels": ["wecom"],
                   "content": {"wecom": {"text": format!("step {i} done")}}})
        })
        .collect();
    let (status, batch) = post(&herald, "/v1/notifications/batch", json!({"items": items})).await;
    assert_eq!(status, 200, "{batch}");
    let ids: Vec<&str> =
        batch["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    // Herald records a send after WeCom's answer, so the fake holding 30 messages does
    // not mean 30 notifications read `sent` yet: wait for the notifications themselves.
    let read_all = || async {
        let mut all = Vec::new();
        for id in &ids {
            all.push(herald.notification(ADMIN_KEY, id).await);
        }
        all
    };
    assert!(
        herald_tests::eventually(WAIT, || async {
            read_all().await.iter().filter(|n| n["status"] == "sent").count() >= 30
        })
        .await
    );
    let mut sent = 0;
    let mut waiting = 0;
    for n in read_all().await {
        match n["status"].as_str() {
            Some("sent") => sent += 1,
            Some("dispatched") => {
                assert_eq!(deliveries(&n)[0]["status"], "queued");
                assert_eq!(deliveries(&n)[0]["attempts"], 0, "waiting is not an attempt");
                waiting += 1;
            }
            other => panic!("{other:?}: {n:#}"),
        }
    }
    assert_eq!((sent, waiting), (30, 1));
    assert_eq!(fake.received().len(), 30);
}
