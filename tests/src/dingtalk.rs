//! A DingTalk server on loopback, written from DingTalk's open platform documentation
//! (custom robot "自定义机器人发送群消息", work notification `asyncsend_v2`, `gettoken`),
//! independently of Herald's code. It checks what DingTalk checks and answers as it
//! answers:
//! - `POST /robot/send?access_token&timestamp&sign`: the robot's token; with a secret,
//!   `sign` must be base64(HMAC-SHA256(secret, timestamp + "\n" + secret)) and the
//!   timestamp (ms) within an hour of now; the body's `msgtype` and its part
//!   (`text.content`, `markdown.title/text`, `actionCard`), at most 20,000 bytes. A robot
//!   takes 20 messages a minute: past that it answers 130101 and records a violation.
//! - `GET /gettoken?appkey&appsecret`: a new access token (`expires_in` 7200).
//! - `POST /topapi/message/corpconversation/asyncsend_v2?access_token`: a valid token,
//!   an integer `agent_id`, a `userid_list` string and a `msg`.
//!
//! A test scripts the next answers (`script`): an error code once, a 5xx.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scripted answer to the next send.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// `{"errcode": code, "errmsg": …}` with HTTP 200; 42001 also invalidates the
    /// current access token, as an expiry would.
    Code(i64),
    /// This HTTP status with no JSON body.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct Record {
    received: Vec<Received>,
    rejected: Vec<String>,
    script: VecDeque<Scripted>,
    tokens_issued: u64,
    valid_token: Option<String>,
    robot_sends: VecDeque<Instant>,
    violations: u64,
}

#[derive(Clone)]
struct Config {
    robot_token: String,
    robot_secret: Option<String>,
    app_key: String,
    app_secret: String,
    /// The robot's limit: this many in any window.
    robot_max: usize,
    robot_window: Duration,
}

#[derive(Clone)]
struct FakeState {
    config: Arc<Config>,
    record: Arc<Mutex<Record>>,
}

pub struct DingTalkFake {
    pub base_url: String,
    state: FakeState,
}

pub const ROBOT_TOKEN: &str = "robot-access-token-0123456789";
pub const ROBOT_SECRET: &str = "SECf0e1d2c3b4a5968778695a4b3c2d1e0f";
pub const APP_KEY: &str = "dingappkey0001";
pub const APP_SECRET: &str = "app-secret-for-the-fake-0123456789";

impl DingTalkFake {
    /// A fake whose robots take `robot_max` messages in any `robot_window`.
    pub async fn start(robot_max: usize, robot_window: Duration) -> DingTalkFake {
        let config = Config {
            robot_token: ROBOT_TOKEN.into(),
            robot_secret: Some(ROBOT_SECRET.into()),
            app_key: APP_KEY.into(),
            app_secret: APP_SECRET.into(),
            robot_max,
            robot_window,
        };
        let state = FakeState { config: Arc::new(config), record: Arc::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/robot/send", post(robot_send))
            .route("/gettoken", get(gettoken))
            .route("/topapi/message/corpconversation/asyncsend_v2", post(work_send))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("fake serves") });
        DingTalkFake { base_url, state }
    }

    /// Answers the next sends with these, in order, then normally again.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.record.lock().unwrap().script.extend(answers);
    }

    /// The messages accepted (answered errcode 0), in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.record.lock().unwrap().received.clone()
    }

    /// Requests refused for their form or signature, with why.
    pub fn rejected(&self) -> Vec<String> {
        self.state.record.lock().unwrap().rejected.clone()
    }

    pub fn tokens_issued(&self) -> u64 {
        self.state.record.lock().unwrap().tokens_issued
    }

    /// Robot messages that arrived past the robot's limit.
    pub fn violations(&self) -> u64 {
        self.state.record.lock().unwrap().violations
    }
}

fn answer(code: i64, message: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": message})).into_response()
}

fn reject(state: &FakeState, why: String, code: i64) -> Response {
    state.record.lock().unwrap().rejected.push(why.clone());
    answer(code, &why)
}

/// The next scripted answer, if any.
fn scripted(state: &FakeState) -> Option<Response> {
    let mut record = state.record.lock().unwrap();
    match record.script.pop_front()? {
        Scripted::Code(code) => {
            if code == 42001 {
                record.valid_token = None;
            }
            Some(answer(code, "scripted"))
        }
        Scripted::Status(status) => {
            Some((StatusCode::from_u16(status).unwrap(), "scripted").into_response())
        }
    }
}

/// What DingTalk documents for a message body, with the robot's or app's field names.
fn check_message(msg: &Value) -> Result<(), String> {
    let kind = msg["msgtype"].as_str().ok_or("msgtype missing")?;
    let within = |v: &Value, what: &str| -> Result<(), String> {
        let text = v.as_str().ok_or(format!("{what} missing"))?;
        if text.is_empty() || text.len() > 20_000 {
            return Err(format!("{what} must be 1 to 20000 bytes"));
        }
        Ok(())
    };
    match kind {
        "text" => within(&msg["text"]["content"], "text.content"),
        "markdown" => {
            within(&msg["markdown"]["title"], "markdown.title")?;
            within(&msg["markdown"]["text"], "markdown.text")
        }
        "actionCard" => {
            within(&msg["actionCard"]["title"], "actionCard.title")?;
            within(&msg["actionCard"]["text"], "actionCard.text")
        }
        "action_card" => {
            within(&msg["action_card"]["title"], "action_card.title")?;
            within(&msg["action_card"]["markdown"], "action_card.markdown")
        }
        other => Err(format!("msgtype {other} is not one this fake knows")),
    }
}

async fn robot_send(
    State(state): State<FakeState>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let config = &state.config;
    if query.get("access_token") != Some(&config.robot_token) {
        return reject(&state, "robot token unknown".into(), 300001);
    }
    if let Some(secret) = &config.robot_secret {
        let (Some(timestamp), Some(sign)) = (query.get("timestamp"), query.get("sign")) else {
            return reject(&state, "sign missing".into(), 310000);
        };
        let Ok(ms) = timestamp.parse::<i64>() else {
            return reject(&state, "timestamp not a number".into(), 310000);
        };
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                as i64;
        if (now - ms).abs() > 3_600_000 {
            return reject(&state, "timestamp outside the hour".into(), 310000);
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b"\n");
        mac.update(secret.as_bytes());
        // axum's Query has already percent-decoded `sign`.
        let Ok(given) = STANDARD.decode(sign) else {
            return reject(&state, "sign is not base64".into(), 310000);
        };
        if mac.verify_slice(&given).is_err() {
            return reject(&state, "sign not match".into(), 310000);
        }
    }
    if let Err(why) = check_message(&body) {
        return reject(&state, why, 400013);
    }
    if let Some(response) = scripted(&state) {
        return response;
    }
    let now = Instant::now();
    let mut record = state.record.lock().unwrap();
    while record.robot_sends.front().is_some_and(|t| now.duration_since(*t) >= config.robot_window)
    {
        record.robot_sends.pop_front();
    }
    if record.robot_sends.len() >= config.robot_max {
        record.violations += 1;
        return answer(130101, "send too fast, exceed 20 times per minute");
    }
    record.robot_sends.push_back(now);
    record.received.push(Received { path: "/robot/send".into(), body, at: now });
    answer(0, "ok")
}

async fn gettoken(
    State(state): State<FakeState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let config = &state.config;
    if query.get("appkey") != Some(&config.app_key)
        || query.get("appsecret") != Some(&config.app_secret)
    {
        return reject(&state, "appkey or appsecret wrong".into(), 40089);
    }
    let mut record = state.record.lock().unwrap();
    record.tokens_issued += 1;
    let token = format!("access-token-{}", record.tokens_issued);
    record.valid_token = Some(token.clone());
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
        .into_response()
}

async fn work_send(
    State(state): State<FakeState>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let valid = state.record.lock().unwrap().valid_token.clone();
    if valid.is_none() || query.get("access_token") != valid.as_ref() {
        return answer(42001, "access_token expired");
    }
    if !body["agent_id"].is_i64() {
        return reject(&state, "agent_id must be an integer".into(), 400002);
    }
    if body["userid_list"].as_str().is_none_or(str::is_empty) {
        return reject(&state, "userid_list must be a string of user ids".into(), 400002);
    }
    if let Err(why) = check_message(&body["msg"]) {
        return reject(&state, why, 400002);
    }
    if let Some(response) = scripted(&state) {
        return response;
    }
    let mut record = state.record.lock().unwrap();
    let task = record.received.len() as i64 + 1000;
    record.received.push(Received {
        path: "/topapi/message/corpconversation/asyncsend_v2".into(),
        body,
        at: Instant::now(),
    });
    Json(json!({"errcode": 0, "errmsg": "ok", "task_id": task, "request_id": "fake"}))
        .into_response()
}
