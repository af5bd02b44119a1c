//! A OneBot v11 HTTP API endpoint on loopback, as NapCat or Lagrange.OneBot serve it,
//! written from the OneBot 11 specification (github.com/botuniverse/onebot-11:
//! communication/http.md, communication/authorization.md, api/public.md, message/),
//! independently of Herald's code:
//! - `/send_private_msg` and `/send_group_msg` (also with a trailing `/`), by POST or
//!   GET, their parameters in the query string and a JSON or urlencoded-form body. A body
//!   of another `Content-Type` is HTTP 406, one that does not parse 400.
//! - The access token in `Authorization: Bearer …` (or `?access_token=`, which the spec
//!   allows where headers cannot be set): none is HTTP 401, a wrong one 403.
//! - `user_id` / `group_id` a positive integer, as a JSON number or a string of digits
//!   (the spec has OneBot parse string values into their types); `message` a non-empty
//!   string (CQ codes), one message segment `{type, data}` or a non-empty array of them
//!   (a `text` segment needs `data.text`); `auto_escape` a boolean. Otherwise HTTP 200,
//!   status failed, retcode 100: the spec only says a failure's retcode is neither 0 nor
//!   1, and its CQHTTP predecessor's table (which NapCat and go-cqhttp keep) has 100 for
//!   missing or invalid parameters and 102 for an action that failed.
//! - Success is `{"status":"ok","retcode":0,"data":{"message_id":<int32>}}`, the id being
//!   `FIRST_MESSAGE_ID` + the message's index in `received()`.
//!
//! Scripted answers come after the checks: `Code(c)` fails with retcode c, `Named` with
//! 102, `Status` is a bare HTTP status. Accepted messages are recorded under their path
//! with all their parameters as one JSON object.

use crate::vendor_fake::{Fake, Received, Scripted, Shared, status_response};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const ACCESS_TOKEN: &str = "onebot-access-token-for-herald";
/// The `message_id` of the first message accepted; later ones count up from it.
pub const FIRST_MESSAGE_ID: i64 = 1000;
const BAD_PARAMS: i64 = 100;
const ACTION_FAILED: i64 = 102;
/// OneBot's access token never expires, so no scripted code invalidates it.
const NO_EXPIRY: i64 = i64::MIN;

pub async fn start() -> Fake {
    let shared = Shared::new(usize::MAX, Duration::from_secs(1));
    let router = Router::new()
        .route("/send_private_msg", get(private_msg).post(private_msg))
        .route("/send_private_msg/", get(private_msg).post(private_msg))
        .route("/send_group_msg", get(group_msg).post(group_msg))
        .route("/send_group_msg/", get(group_msg).post(group_msg))
        .with_state(shared.clone());
    Fake::serve(router, shared).await
}

async fn private_msg(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(&shared, "/send_private_msg", "user_id", query, &headers, &body)
}

async fn group_msg(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(&shared, "/send_group_msg", "group_id", query, &headers, &body)
}

fn failed(retcode: i64) -> Response {
    Json(json!({"status": "failed", "retcode": retcode, "data": null})).into_response()
}

/// An HTTP-level refusal (401, 403, 400, 406), recorded with why.
fn refuse(shared: &Shared, status: StatusCode, why: &str) -> Response {
    shared.reject(format!("{status}: {why}"));
    status.into_response()
}

fn send(
    shared: &Shared,
    path: &str,
    target: &str,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned())
        }
        None => query.get("access_token").cloned(),
    };
    match token {
        None => return refuse(shared, StatusCode::UNAUTHORIZED, "no access token"),
        Some(token) if token != ACCESS_TOKEN => {
            return refuse(shared, StatusCode::FORBIDDEN, "wrong access token");
        }
        Some(_) => {}
    }
    let params = match parameters(query, headers, body) {
        Ok(params) => params,
        Err(status) => return refuse(shared, status, "unsupported or malformed body"),
    };
    if let Err(why) = check(&params, target) {
        shared.reject(why);
        return failed(BAD_PARAMS);
    }
    if let Some(answer) = shared.scripted(NO_EXPIRY) {
        return match answer {
            Scripted::Code(code) => failed(code),
            Scripted::Named(_) => failed(ACTION_FAILED),
            Scripted::Status(status) => status_response(status),
        };
    }
    let id = FIRST_MESSAGE_ID + accept_numbered(shared, path, Value::Object(params));
    Json(json!({"status": "ok", "retcode": 0, "data": {"message_id": id}})).into_response()
}

/// The action's parameters: the query string's, then the body's.
fn parameters(
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, StatusCode> {
    let mut params: Map<String, Value> = query
        .into_iter()
        .filter(|(name, _)| name != "access_token")
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mime = content_type.unwrap_or_default().split(';').next().unwrap_or_default();
    match mime.trim().to_ascii_lowercase().as_str() {
        "application/json" => match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            _ => return Err(StatusCode::BAD_REQUEST),
        },
        "application/x-www-form-urlencoded" => {
            let form = std::str::from_utf8(body).map_err(|_| StatusCode::BAD_REQUEST)?;
            // Form decoding as the url crate does it, through reqwest's re-export.
            let mut url = reqwest::Url::parse("http://form.invalid/").expect("a valid URL");
            url.set_query(Some(form));
            let pairs = url.query_pairs().into_owned();
            params.extend(pairs.map(|(name, value)| (name, Value::String(value))));
        }
        _ => return Err(StatusCode::NOT_ACCEPTABLE),
    }
    Ok(params)
}

fn check(params: &Map<String, Value>, target: &str) -> Result<(), String> {
    if !params.get(target).is_some_and(id_valid) {
        return Err(format!("{target} must be a positive integer"));
    }
    message_valid(params.get("message").unwrap_or(&Value::Null))?;
    match params.get("auto_escape") {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(Value::String(flag)) if flag == "true" || flag == "false" => Ok(()),
        _ => Err("auto_escape must be a boolean".into()),
    }
}

/// A QQ or group number: an integer above zero, or a string of its digits.
fn id_valid(value: &Value) -> bool {
    match value {
        Value::Number(number) => number.as_i64().is_some_and(|n| n > 0),
        Value::String(digits) => {
            digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<i64>().is_ok_and(|n| n > 0)
        }
        _ => false,
    }
}

/// The spec's `message` type: a string, one segment, or an array of segments.
fn message_valid(message: &Value) -> Result<(), String> {
    match message {
        Value::String(text) if !text.is_empty() => Ok(()),
        Value::Array(segments) if !segments.is_empty() => {
            segments.iter().try_for_each(segment_valid)
        }
        Value::Object(_) => segment_valid(message),
        _ => Err("message must be a non-empty string, a segment or an array of them".into()),
    }
}

/// A message segment: a `type`, and `data` an object or null.
fn segment_valid(segment: &Value) -> Result<(), String> {
    let kind = segment["type"].as_str().filter(|kind| !kind.is_empty());
    let kind = kind.ok_or("message segment without a type")?;
    if !matches!(segment["data"], Value::Object(_) | Value::Null) {
        return Err(format!("{kind} segment: data must be an object or null"));
    }
    if kind == "text" && segment["data"]["text"].as_str().is_none_or(str::is_empty) {
        return Err("text segment without data.text".into());
    }
    Ok(())
}

/// Records an accepted message and returns its index in `received()`, under one lock so
/// that concurrent sends get distinct ids.
fn accept_numbered(shared: &Shared, path: &str, body: Value) -> i64 {
    let mut record = shared.record.lock().unwrap();
    record.received.push(Received { path: path.into(), body, at: Instant::now() });
    record.received.len() as i64 - 1
}
