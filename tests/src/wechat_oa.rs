//! A WeChat Official Account (公众号, service account) server on loopback, written from
//! WeChat's developer documentation (developers.weixin.qq.com: "获取稳定版接口调用凭据"
//! getStableAccessToken, "发送模板消息" sendTemplateMessage and the template-message
//! guide with its TEMPLATESENDJOBFINISH event, "发送订阅通知" sendNewSubscribeMsg, and
//! the message-push guide's server verification), independently of Herald's code:
//! - `POST /cgi-bin/stable_token`: a JSON body with grant_type client_credential (else
//!   40002), appid (41002 missing, 40013 wrong) and secret (41004 missing, 40125 wrong).
//!   In the normal mode it answers the token still valid without issuing one;
//!   `force_refresh: true` issues a new one, which invalidates the last.
//! - `GET /cgi-bin/token`: the legacy call, whose new token would invalidate the one
//!   every other instance holds. Recorded as a rejection and refused with 50004.
//! - `POST /cgi-bin/message/template/send?access_token`: a valid token (41001 absent,
//!   40001 invalid), `touser` an openid (else 40003), `template_id` `TEMPLATE_ID` (else
//!   40037), `data` an object of `{"value": string}` (else 47003), optional `url`,
//!   `miniprogram {appid, pagepath}` and `client_msg_id`. Category templates' typed keys
//!   (`thing01`, `character_string2`, …) keep their documented limits (thing at most 20
//!   characters, character_string 32 without Chinese, …); historical keys (`first`,
//!   `keyword1`) take any string, as WeChat folds long ones. `NOT_FOLLOWING` is 43004.
//!   Success carries `msgid` = `FIRST_MSG_ID` + the message's index in `received()`.
//! - `POST /cgi-bin/message/subscribe/bizsend?access_token`: the same token and form
//!   checks, optional `page`, `miniprogram_state` and `lang`; `REFUSED_SUBSCRIBE` is
//!   43101. A user who does not follow still gets it (it goes to 服务通知), so
//!   `NOT_FOLLOWING` is accepted here.
//!
//! Scripted answers come after the form checks: `Code(c)` is `{"errcode": c}` (40001 also
//! invalidates the token), `Named` is errcode -1, `Status` a bare HTTP status.
//!
//! `verify_url` and `send_template_job_finish` play WeChat's side of the callback URL in
//! plaintext mode: query `signature`, `timestamp`, `nonce`, where signature is the hex
//! SHA-1 of token, timestamp and nonce sorted and concatenated.

use crate::vendor_fake::{Fake, Received, Scripted, Shared, now_ms, status_response};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const APP_ID: &str = "wx5f1c0e3b9a7d2468";
pub const APP_SECRET: &str = "3b7e9c1d5f2a4e6b8c0d2f4a6b8c0e1d";
/// The account's original ID (原始ID), the `ToUserName` of what WeChat pushes.
pub const ORIGINAL_ID: &str = "gh_7a3c9e1b5d2f";
/// The Token of the server configuration: 3 to 32 letters or digits.
pub const CALLBACK_TOKEN: &str = "HeraldCallbackToken2026";
pub const TEMPLATE_ID: &str = "Hrld7xTemplate_0123456789abcdefghijklmnopqr";
/// An openid that does not follow the account: template messages answer 43004.
pub const NOT_FOLLOWING: &str = "oNotFollowing_00000000000001";
/// An openid that refused the subscription: subscribe notifications answer 43101.
pub const REFUSED_SUBSCRIBE: &str = "oRefusedSubscribe_0000000001";
/// The `echostr` `verify_url` sends, which the server must answer verbatim.
pub const ECHO_STR: &str = "4375120948345356249";
/// The `msgid` of the first message accepted; later ones count up from it.
pub const FIRST_MSG_ID: i64 = 200163836;
/// TEMPLATESENDJOBFINISH `Status` values, as the template-message guide lists them.
pub const STATUS_SUCCESS: &str = "success";
pub const STATUS_USER_BLOCK: &str = "failed:user block";
pub const STATUS_SYSTEM_FAILED: &str = "failed: system failed";
const EXPIRED: i64 = 40001;

pub async fn start() -> Fake {
    let shared = Shared::new(usize::MAX, Duration::from_secs(1));
    let router = Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/token", get(legacy_token))
        .route("/cgi-bin/message/template/send", post(template_send))
        .route("/cgi-bin/message/subscribe/bizsend", post(subscribe_send))
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

/// Records an accepted message and returns its index in `received()`, under one lock so
/// that concurrent sends get distinct ids.
fn accept_numbered(shared: &Shared, path: &str, body: Value) -> i64 {
    let mut record = shared.record.lock().unwrap();
    record.received.push(Received { path: path.into(), body, at: Instant::now() });
    record.received.len() as i64 - 1
}

async fn stable_token(State(shared): State<Shared>, raw: Bytes) -> Response {
    // The docs: "该接口仅支持 POST JSON 形式的调用".
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        return reject(&shared, "stable_token body is not JSON".into(), 47001);
    };
    if body["grant_type"] != "client_credential" {
        return reject(&shared, "invalid grant_type".into(), 40002);
    }
    let Some(appid) = body["appid"].as_str() else {
        return reject(&shared, "appid missing".into(), 41002);
    };
    if appid != APP_ID {
        return reject(&shared, "invalid appid".into(), 40013);
    }
    let Some(secret) = body["secret"].as_str() else {
        return reject(&shared, "appsecret missing".into(), 41004);
    };
    if secret != APP_SECRET {
        return reject(&shared, "invalid appsecret".into(), 40125);
    }
    let force_refresh = match body["force_refresh"] {
        Value::Null => false,
        Value::Bool(force) => force,
        _ => return reject(&shared, "force_refresh must be a boolean".into(), 47001),
    };
    // Checked and issued under one lock: instances asking at once in the normal mode
    // must all get the same token (`Shared::issue_token` would take the lock again).
    let token = {
        let mut record = shared.record.lock().unwrap();
        match record.valid_token.clone() {
            Some(token) if !force_refresh => token,
            _ => {
                record.tokens_issued += 1;
                let token = format!("access-token-{}", record.tokens_issued);
                record.valid_token = Some(token.clone());
                token
            }
        }
    };
    // The normal mode really answers the seconds left; Herald should not care which.
    Json(json!({"access_token": token, "expires_in": 7200})).into_response()
}

async fn legacy_token(State(shared): State<Shared>) -> Response {
    // The docs' table for getAccessToken lists 50004 "禁止使用 token 接口".
    reject(&shared, "legacy token call".into(), 50004)
}

/// The `access_token` query parameter: absent is 41001 (a request built wrong), one not
/// currently valid is 40001, as after expiry or a forced refresh elsewhere.
fn token_refused(shared: &Shared, query: &HashMap<String, String>) -> Option<Response> {
    match query.get("access_token") {
        None => Some(reject(shared, "access_token missing".into(), 41001)),
        Some(token) if !shared.token_valid(Some(token.as_str())) => {
            Some(answer(EXPIRED, "invalid credential, access_token is invalid or not latest"))
        }
        Some(_) => None,
    }
}

/// A template field's value, by the type its key names (category templates' keys are
/// the type plus digits). The subscribe-notification docs type number.DATA as a number.
fn value_valid(key: &str, value: &Value, numbers: bool) -> bool {
    let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
    if numbers && kind == "number" && value.is_number() {
        return true;
    }
    let Some(text) = value.as_str() else { return false };
    let length = text.chars().count();
    let within = |max: usize| (1..=max).contains(&length);
    match kind {
        "thing" => within(20),
        "number" => within(32) && text.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "letter" => within(32) && text.chars().all(|c| c.is_ascii_alphabetic()),
        "symbol" => within(5) && !text.chars().any(char::is_alphanumeric),
        "character_string" => within(32) && text.is_ascii(),
        "phone_number" => within(17) && text.is_ascii(),
        "car_number" => within(8),
        "phrase" => within(5) && !text.chars().any(|c| c.is_ascii_alphanumeric()),
        // 10 Chinese characters, or 20 letters when there are none.
        "name" => within(if text.is_ascii() { 20 } else { 10 }),
        // Historical keys (first, keyword1, remark) and types whose rules are formats
        // (time, date, amount) or undocumented (short_thing, const).
        _ => true,
    }
}

fn is_openid(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The checks both sends share: `touser`, `template_id` and `data`.
fn check_common(body: &Value, numbers: bool) -> Result<(), (i64, String)> {
    if !body["touser"].as_str().is_some_and(is_openid) {
        return Err((40003, "invalid openid: touser must be an openid".into()));
    }
    if body["template_id"] != TEMPLATE_ID {
        return Err((40037, "invalid template_id".into()));
    }
    let data = body["data"].as_object().filter(|data| !data.is_empty());
    let data = data.ok_or((47003, "argument invalid! data must be an object".to_string()))?;
    for (key, item) in data {
        if !value_valid(key, &item["value"], numbers) {
            return Err((47003, format!("argument invalid! data.{key}.value invalid")));
        }
    }
    Ok(())
}

fn optional_string(body: &Value, field: &str) -> Result<(), (i64, String)> {
    match body[field] {
        Value::Null | Value::String(_) => Ok(()),
        _ => Err((47003, format!("argument invalid! {field} must be a string"))),
    }
}

fn optional_one_of(body: &Value, field: &str, allowed: &[&str]) -> Result<(), (i64, String)> {
    match &body[field] {
        Value::Null => Ok(()),
        Value::String(value) if allowed.contains(&value.as_str()) => Ok(()),
        _ => Err((47003, format!("argument invalid! {field} must be one of {allowed:?}"))),
    }
}

fn check_template(body: &Value) -> Result<(), (i64, String)> {
    check_common(body, false)?;
    optional_string(body, "url")?;
    optional_string(body, "client_msg_id")?;
    if !body["miniprogram"].is_null() {
        if body["miniprogram"]["appid"].as_str().is_none_or(str::is_empty) {
            return Err((47003, "argument invalid! miniprogram.appid missing".into()));
        }
        optional_string(&body["miniprogram"], "pagepath")?;
    }
    Ok(())
}

fn check_subscribe(body: &Value) -> Result<(), (i64, String)> {
    check_common(body, true)?;
    optional_string(body, "page")?;
    optional_one_of(body, "miniprogram_state", &["developer", "trial", "formal"])?;
    optional_one_of(body, "lang", &["zh_CN", "en_US", "zh_HK", "zh_TW"])
}

async fn template_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    if let Some(response) = token_refused(&shared, &query) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        return reject(&shared, "data format error".into(), 47001);
    };
    if let Err((code, why)) = check_template(&body) {
        return reject(&shared, why, code);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    if body["touser"] == NOT_FOLLOWING {
        return answer(43004, "require subscribe");
    }
    let msgid = FIRST_MSG_ID + accept_numbered(&shared, "/cgi-bin/message/template/send", body);
    Json(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid})).into_response()
}

async fn subscribe_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    if let Some(response) = token_refused(&shared, &query) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        return reject(&shared, "data format error".into(), 47001);
    };
    if let Err((code, why)) = check_subscribe(&body) {
        return reject(&shared, why, code);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    if body["touser"] == REFUSED_SUBSCRIBE {
        return answer(43101, "user refuse to accept the msg");
    }
    accept_numbered(&shared, "/cgi-bin/message/subscribe/bizsend", body);
    answer(0, "ok")
}

/// WeChat's signature over what it pushes: the hex SHA-1 of token, timestamp and nonce,
/// sorted lexicographically and concatenated.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// A timestamp in seconds and a nonce of digits that no other push repeats.
fn timestamp_and_nonce() -> (String, String) {
    static PUSHES: AtomicU64 = AtomicU64::new(0);
    let ms = now_ms();
    let nonce = format!("{}{:04}", ms % 1_000_000, PUSHES.fetch_add(1, Ordering::Relaxed) % 10_000);
    ((ms / 1000).to_string(), nonce)
}

/// WeChat's check of a server URL: a GET with signature, timestamp, nonce and `ECHO_STR`
/// as echostr. A server that accepts answers `ECHO_STR` verbatim. Returns the status and
/// body.
pub async fn verify_url(callback_url: &str, token: &str) -> (reqwest::StatusCode, String) {
    let (timestamp, nonce) = timestamp_and_nonce();
    let signature = signature(token, &timestamp, &nonce);
    let response = reqwest::Client::new()
        .get(callback_url)
        .query(&[
            ("signature", signature.as_str()),
            ("timestamp", timestamp.as_str()),
            ("nonce", nonce.as_str()),
            ("echostr", ECHO_STR),
        ])
        .send()
        .await
        .expect("callback URL reachable");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// The TEMPLATESENDJOBFINISH event WeChat pushes once a template message is delivered
/// or not (`status` one of the `STATUS_*` values), in plaintext mode: the XML of the
/// template-message guide, and in the query signature, timestamp, nonce, and the openid
/// that real pushes also carry. Returns the server's status.
pub async fn send_template_job_finish(
    callback_url: &str,
    token: &str,
    to_openid: &str,
    msg_id: i64,
    status: &str,
) -> reqwest::StatusCode {
    let (timestamp, nonce) = timestamp_and_nonce();
    let signature = signature(token, &timestamp, &nonce);
    let xml = format!(
        "<xml>\n\
         <ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>\n\
         <FromUserName><![CDATA[{to_openid}]]></FromUserName>\n\
         <CreateTime>{timestamp}</CreateTime>\n\
         <MsgType><![CDATA[event]]></MsgType>\n\
         <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>\n\
         <MsgID>{msg_id}</MsgID>\n\
         <Status><![CDATA[{status}]]></Status>\n\
         </xml>"
    );
    reqwest::Client::new()
        .post(callback_url)
        .query(&[
            ("signature", signature.as_str()),
            ("timestamp", timestamp.as_str()),
            ("nonce", nonce.as_str()),
            ("openid", to_openid),
        ])
        .header("Content-Type", "text/xml")
        .body(xml)
        .send()
        .await
        .expect("callback URL reachable")
        .status()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_the_docs_example() {
        // The message-push guide's worked example: Token "AAAAA".
        let signature = super::signature("AAAAA", "1714036504", "1514711492");
        assert_eq!(signature, "f464b24fc39322e44b38aa78f5edd27bd1441696");
    }
}
