//! A DingTalk server on loopback, written from DingTalk's open platform documentation
//! (custom robot "自定义机器人发送群消息", work notification `asyncsend_v2`, `gettoken`),
//! independently of Herald's code. It checks what DingTalk checks and answers as it
//! answers:
//! - `POST /robot/send?access_token&timestamp&sign`: the robot's token; with a secret,
//!   `sign` must be base64(HMAC-SHA256(secret, timestamp + "\n" + secret)) and the
//!   timestamp (ms) within an hour of now; the body's `msgtype` and its part, at most
//!   20,000 bytes. Past the robot's limit it answers 130101 and counts a violation.
//! - `GET /gettoken?appkey&appsecret`: a new access token (`expires_in` 7200).
//! - `POST /topapi/message/corpconversation/asyncsend_v2?access_token`: a valid token
//!   (else 42001), an integer `agent_id`, a `userid_list` string and a `msg`.
//! - `POST /topapi/message/corpconversation/getsendresult?access_token`: `agent_id` and
//!   a `task_id` it issued, both integers; `send_result` puts the task's user in the
//!   list the test scripted (`Fake::fates`: read, unread, failed, invalid, forbidden,
//!   or pending for none), unread by default.

use crate::vendor_fake::{Fake, Scripted, Shared, now_ms, status_response, text_within};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;

pub const ROBOT_TOKEN: &str = "robot-access-token-0123456789";
pub const ROBOT_SECRET: &str = "SECf0e1d2c3b4a5968778695a4b3c2d1e0f";
pub const APP_KEY: &str = "dingappkey0001";
pub const APP_SECRET: &str = "app-secret-for-the-fake-0123456789";
const EXPIRED: i64 = 42001;

/// A fake whose robots take `robot_max` messages in any `robot_window`.
pub async fn start(robot_max: usize, robot_window: Duration) -> Fake {
    let shared = Shared::new(robot_max, robot_window);
    let router = Router::new()
        .route("/robot/send", post(robot_send))
        .route("/gettoken", get(gettoken))
        .route("/topapi/message/corpconversation/asyncsend_v2", post(work_send))
        .route("/topapi/message/corpconversation/getsendresult", post(send_result))
        .with_state(shared.clone());
    Fake::serve(router, shared).await
}

fn answer(code: i64, message: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": message})).into_response()
}

fn reject(shared: &Shared, why: String, code: i64) -> Response {
    shared.reject(why.clone());
    answer(code, &why)
}

fn scripted(shared: &Shared) -> Option<Response> {
    Some(match shared.scripted(EXPIRED)? {
        Scripted::Code(code) => answer(code, "scripted"),
        Scripted::Named(name) => answer(-1, name),
        Scripted::Status(status) => status_response(status),
    })
}

/// What DingTalk documents for a message body (robot and work notice field names).
fn check_message(msg: &Value) -> Result<(), String> {
    match msg["msgtype"].as_str().ok_or("msgtype missing")? {
        "text" => text_within(&msg["text"]["content"], "text.content", 20_000),
        "markdown" => {
            text_within(&msg["markdown"]["title"], "markdown.title", 20_000)?;
            text_within(&msg["markdown"]["text"], "markdown.text", 20_000)
        }
        "actionCard" => {
            text_within(&msg["actionCard"]["title"], "actionCard.title", 20_000)?;
            text_within(&msg["actionCard"]["text"], "actionCard.text", 20_000)
        }
        "action_card" => {
            text_within(&msg["action_card"]["title"], "action_card.title", 20_000)?;
            text_within(&msg["action_card"]["markdown"], "action_card.markdown", 20_000)
        }
        other => Err(format!("msgtype {other} is not one this fake knows")),
    }
}

fn check_sign(query: &HashMap<String, String>) -> Result<(), String> {
    let (Some(timestamp), Some(sign)) = (query.get("timestamp"), query.get("sign")) else {
        return Err("sign missing".into());
    };
    let ms: i64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    if (now_ms() - ms).abs() > 3_600_000 {
        return Err("timestamp outside the hour".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(ROBOT_SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(ROBOT_SECRET.as_bytes());
    // axum's Query has already percent-decoded `sign`.
    let given = STANDARD.decode(sign).map_err(|_| "sign is not base64")?;
    mac.verify_slice(&given).map_err(|_| "sign not match".to_owned())
}

async fn robot_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if query.get("access_token").map(String::as_str) != Some(ROBOT_TOKEN) {
        return reject(&shared, "robot token unknown".into(), 300001);
    }
    if let Err(why) = check_sign(&query) {
        return reject(&shared, why, 310000);
    }
    if let Err(why) = check_message(&body) {
        return reject(&shared, why, 400013);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    if !shared.robot_admits() {
        return answer(130101, "send too fast, exceed 20 times per minute");
    }
    shared.accept("/robot/send", body);
    answer(0, "ok")
}

async fn gettoken(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if query.get("appkey").map(String::as_str) != Some(APP_KEY)
        || query.get("appsecret").map(String::as_str) != Some(APP_SECRET)
    {
        return reject(&shared, "appkey or appsecret wrong".into(), 40089);
    }
    let token = shared.issue_token();
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
        .into_response()
}

async fn work_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if !shared.token_valid(query.get("access_token").map(String::as_str)) {
        return answer(EXPIRED, "access_token expired");
    }
    if !body["agent_id"].is_i64() {
        return reject(&shared, "agent_id must be an integer".into(), 400002);
    }
    if body["userid_list"].as_str().is_none_or(str::is_empty) {
        return reject(&shared, "userid_list must be a string of user ids".into(), 400002);
    }
    if let Err(why) = check_message(&body["msg"]) {
        return reject(&shared, why, 400002);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    let task = shared.accepted_count() as i64 + 1000;
    let user = body["userid_list"].as_str().unwrap_or_default().to_owned();
    shared.record.lock().unwrap().issued.insert(task.to_string(), user);
    shared.accept("/topapi/message/corpconversation/asyncsend_v2", body);
    Json(json!({"errcode": 0, "errmsg": "ok", "task_id": task, "request_id": "fake"}))
        .into_response()
}

async fn send_result(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if !shared.token_valid(query.get("access_token").map(String::as_str)) {
        return answer(EXPIRED, "access_token expired");
    }
    let (Some(_), Some(task)) = (body["agent_id"].as_i64(), body["task_id"].as_i64()) else {
        return reject(&shared, "agent_id and task_id must be integers".into(), 400002);
    };
    let user = shared.record.lock().unwrap().issued.get(&task.to_string()).cloned();
    let Some(user) = user else {
        return reject(&shared, format!("task {task} unknown"), 400002);
    };
    let mut result = json!({
        "invalid_user_id_list": [], "forbidden_user_id_list": [], "failed_user_id_list": [],
        "read_user_id_list": [], "unread_user_id_list": [], "invalid_dept_id_list": [],
        "forbidden_list": []
    });
    match shared.fate(&user, "unread") {
        "pending" => {}
        "forbidden" => {
            result["forbidden_user_id_list"] = json!([user]);
            result["forbidden_list"] = json!([{"code": "143106", "count": 1, "userid": user}]);
        }
        list => result[format!("{list}_user_id_list")] = json!([user]),
    }
    Json(json!({"errcode": 0, "errmsg": "ok", "send_result": result, "request_id": "fake"}))
        .into_response()
}
