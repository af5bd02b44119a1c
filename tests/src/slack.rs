//! A Slack server on loopback, written from Slack's documentation (incoming webhooks,
//! `chat.postMessage`, rate limits), independently of Herald's code:
//! - `POST /services/T0/B0/{secret}`: an incoming webhook; JSON with `text` (or
//!   `blocks` with a fallback `text`); answers `ok`, or a status with Slack's plain-text
//!   reason (400 `invalid_payload`, 404 `no_service`). Past its limit it answers 429
//!   with `Retry-After` and counts a violation.
//! - `POST /api/chat.postMessage`: `Bearer` with the bot token (else `invalid_auth`),
//!   `channel`, and `text` or `blocks` (header text at most 150 characters, section
//!   text at most 3,000); answers `{"ok": true, "ts"}` or `{"ok": false, "error"}`.

use crate::vendor_fake::{Fake, Scripted, Shared, status_response};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::time::Duration;

pub const WEBHOOK_PATH: &str = "/services/T0000001/B0000001/hooksecret0123456789";
pub const BOT_TOKEN: &str = "xoxb-0000000001-0000000002-fakefakefakefake";

pub async fn start(robot_max: usize, robot_window: Duration) -> Fake {
    let shared = Shared::new(robot_max, robot_window);
    let router = Router::new()
        .route("/services/{team}/{bot}/{secret}", post(webhook))
        .route("/api/chat.postMessage", post(post_message))
        .with_state(shared.clone());
    Fake::serve(router, shared).await
}

fn check_blocks(body: &Value) -> Result<(), String> {
    let Some(blocks) = body.get("blocks") else {
        return match body["text"].as_str() {
            Some(text) if !text.is_empty() => Ok(()),
            _ => Err("no_text".into()),
        };
    };
    let blocks = blocks.as_array().ok_or("invalid_blocks")?;
    for block in blocks {
        let text = block["text"]["text"].as_str().unwrap_or_default();
        match block["type"].as_str() {
            Some("header")
                if block["text"]["type"] == "plain_text" && text.chars().count() <= 150 => {}
            Some("section") if text.chars().count() <= 3000 => {}
            _ => return Err("invalid_blocks".into()),
        }
    }
    Ok(())
}

fn json_content(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn webhook(
    State(shared): State<Shared>,
    Path((team, bot, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if format!("/services/{team}/{bot}/{secret}") != WEBHOOK_PATH {
        shared.reject("no_service");
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    if !json_content(&headers) {
        shared.reject("not JSON");
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    }
    if let Err(why) = check_blocks(&body) {
        shared.reject(why.clone());
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    match shared.scripted(0) {
        Some(Scripted::Named(name)) => return (StatusCode::NOT_FOUND, name).into_response(),
        Some(Scripted::Status(status)) => return status_response(status),
        Some(Scripted::Code(code)) => {
            return (StatusCode::BAD_REQUEST, code.to_string()).into_response();
        }
        None => {}
    }
    if !shared.robot_admits() {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate_limited")
            .into_response();
    }
    shared.accept("/services", body);
    (StatusCode::OK, "ok").into_response()
}

async fn post_message(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let failed = |error: &str| Json(json!({"ok": false, "error": error})).into_response();
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {BOT_TOKEN}")) {
        shared.reject("invalid_auth");
        return failed("invalid_auth");
    }
    if body["channel"].as_str().is_none_or(str::is_empty) {
        shared.reject("channel_not_found");
        return failed("channel_not_found");
    }
    if let Err(why) = check_blocks(&body) {
        shared.reject(why.clone());
        return failed(&why);
    }
    match shared.scripted(0) {
        Some(Scripted::Named(name)) => return failed(name),
        Some(Scripted::Status(429)) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
        }
        Some(Scripted::Status(status)) => return status_response(status),
        Some(Scripted::Code(_)) => return failed("fatal_error"),
        None => {}
    }
    let ts = format!("1700000000.{:06}", shared.accepted_count());
    shared.accept("/api/chat.postMessage", body);
    Json(json!({"ok": true, "channel": "D0", "ts": ts})).into_response()
}
