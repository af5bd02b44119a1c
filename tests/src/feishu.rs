//! A Feishu/Lark server on loopback, written from Feishu's open platform documentation
//! (custom bot "自定义机器人使用指南", `tenant_access_token/internal`, "发送消息"),
//! independently of Herald's code:
//! - `POST /open-apis/bot/v2/hook/{token}`: the bot's token; `timestamp` (seconds,
//!   within an hour) and `sign` = base64(HMAC-SHA256 keyed with timestamp + "\n" +
//!   secret, over nothing) in the body (else 19021); `msg_type` text (`content.text`)
//!   or interactive (`card` with elements); the body at most 20 KB. Past the bot's
//!   limit it answers 11232 and counts a violation.
//! - `POST /open-apis/auth/v3/tenant_access_token/internal` with `app_id` and
//!   `app_secret`: a new tenant token (`expire` 7200).
//! - `POST /open-apis/im/v1/messages?receive_id_type`: `Bearer` with a valid token
//!   (else 99991663), a known `receive_id_type`, `receive_id`, `msg_type`, and
//!   `content` as a string holding JSON; a repeated `uuid` is answered with the first
//!   message's id and not delivered again.

use crate::vendor_fake::{Fake, Scripted, Shared, status_response, text_within};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;

pub const HOOK_TOKEN: &str = "2b4c6d8e-1a3f-4e5d-9c7b-0f1e2d3c4b5a";
pub const BOT_SECRET: &str = "feishu-bot-secret-0123456789";
pub const APP_ID: &str = "cli_a1b2c3d4e5f60718";
pub const APP_SECRET: &str = "feishu-app-secret-0123456789abcdef";
const EXPIRED: i64 = 99991663;

pub async fn start(robot_max: usize, robot_window: Duration) -> Fake {
    let shared = Shared::new(robot_max, robot_window);
    let router = Router::new()
        .route("/open-apis/bot/v2/hook/{token}", post(bot_send))
        .route("/open-apis/auth/v3/tenant_access_token/internal", post(tenant_token))
        .route("/open-apis/im/v1/messages", post(app_send))
        .with_state(shared.clone());
    Fake::serve(router, shared).await
}

fn answer(code: i64, message: &str) -> Response {
    Json(json!({"code": code, "msg": message, "data": {}})).into_response()
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

/// `msg_type` and its part: text, or an interactive card with at least one element.
fn check_message(kind: &str, content: &Value) -> Result<(), String> {
    match kind {
        "text" => text_within(&content["text"], "content.text", 150 * 1024),
        "interactive" => match content["elements"].as_array() {
            Some(elements) if !elements.is_empty() => Ok(()),
            _ => Err("a card needs elements".into()),
        },
        other => Err(format!("msg_type {other} is not one this fake knows")),
    }
}

fn check_sign(body: &Value) -> Result<(), String> {
    let timestamp = body["timestamp"].as_str().ok_or("timestamp missing (a string)")?;
    let sign = body["sign"].as_str().ok_or("sign missing")?;
    let seconds: i64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    let now = crate::vendor_fake::now_ms() / 1000;
    if (now - seconds).abs() > 3600 {
        return Err("timestamp outside the hour".into());
    }
    let key = format!("{timestamp}\n{BOT_SECRET}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    let given = STANDARD.decode(sign).map_err(|_| "sign is not base64")?;
    mac.verify_slice(&given).map_err(|_| "sign match fail".to_owned())
}

async fn bot_send(
    State(shared): State<Shared>,
    Path(token): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if token != HOOK_TOKEN {
        return reject(&shared, "bot token unknown".into(), 19001);
    }
    if body.to_string().len() > 20 * 1024 {
        return reject(&shared, "request body over 20 KB".into(), 9499);
    }
    if let Err(why) = check_sign(&body) {
        return reject(&shared, why, 19021);
    }
    let kind = body["msg_type"].as_str().unwrap_or_default();
    let part = if kind == "interactive" { &body["card"] } else { &body["content"] };
    if let Err(why) = check_message(kind, part) {
        return reject(&shared, why, 9499);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    if !shared.robot_admits() {
        return answer(11232, "frequency limited");
    }
    shared.accept("/open-apis/bot/v2/hook", body);
    answer(0, "success")
}

async fn tenant_token(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    if body["app_id"] != APP_ID || body["app_secret"] != APP_SECRET {
        return reject(&shared, "app_id or app_secret wrong".into(), 10014);
    }
    let token = shared.issue_token();
    Json(json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200}))
        .into_response()
}

async fn app_send(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !shared.token_valid(bearer) {
        return answer(EXPIRED, "Invalid access token for authorization");
    }
    let id_type = query.get("receive_id_type").map(String::as_str).unwrap_or_default();
    if !["open_id", "user_id", "union_id", "email", "chat_id"].contains(&id_type) {
        return reject(&shared, format!("receive_id_type '{id_type}' unknown"), 99992402);
    }
    if body["receive_id"].as_str().is_none_or(str::is_empty) {
        return reject(&shared, "receive_id missing".into(), 99992402);
    }
    let Some(content) = body["content"].as_str() else {
        return reject(&shared, "content must be a string of JSON".into(), 230001);
    };
    let Ok(content) = serde_json::from_str::<Value>(content) else {
        return reject(&shared, "content is not JSON".into(), 230001);
    };
    let kind = body["msg_type"].as_str().unwrap_or_default();
    if let Err(why) = check_message(kind, &content) {
        return reject(&shared, why, 230001);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    let uuid = body["uuid"].as_str().unwrap_or_default().to_owned();
    let earlier = shared
        .record
        .lock()
        .unwrap()
        .received
        .iter()
        .position(|r| !uuid.is_empty() && r.body["uuid"] == uuid.as_str());
    let position = match earlier {
        Some(position) => position,
        None => {
            shared.accept("/open-apis/im/v1/messages", body);
            shared.accepted_count() - 1
        }
    };
    Json(json!({"code": 0, "msg": "success", "data": {"message_id": format!("om_{position}")}}))
        .into_response()
}
