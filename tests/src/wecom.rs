//! A WeCom server on loopback, written from WeCom's developer documentation (group
//! robot "群机器人配置说明", `gettoken`, "发送应用消息"), independently of Herald's code:
//! - `POST /cgi-bin/webhook/send?key`: the robot's key (else 93000); `msgtype` text
//!   (content at most 2,048 bytes), markdown (4,096) or news (1 to 8 articles with a
//!   title and url). Past the robot's limit it answers 45009 and counts a violation.
//! - `GET /cgi-bin/gettoken?corpid&corpsecret`: a new access token.
//! - `POST /cgi-bin/message/send?access_token`: a valid token (else 42001), `touser`, an
//!   integer `agentid`, `msgtype` text, markdown or textcard. A member listed in
//!   `UNKNOWN_MEMBER` comes back in `invaliduser` with errcode 0, as WeCom does.

use crate::vendor_fake::{Fake, Scripted, Shared, status_response, text_within};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

pub const ROBOT_KEY: &str = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa";
pub const CORP_ID: &str = "ww0123456789abcdef";
pub const CORP_SECRET: &str = "corp-secret-for-the-fake-0123456789";
pub const UNKNOWN_MEMBER: &str = "left-the-company";
const EXPIRED: i64 = 42001;

pub async fn start(robot_max: usize, robot_window: Duration) -> Fake {
    let shared = Shared::new(robot_max, robot_window);
    let router = Router::new()
        .route("/cgi-bin/webhook/send", post(robot_send))
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/message/send", post(app_send))
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

fn check_message(msg: &Value, app: bool) -> Result<(), String> {
    match msg["msgtype"].as_str().ok_or("msgtype missing")? {
        "text" => text_within(&msg["text"]["content"], "text.content", 2048),
        "markdown" => text_within(&msg["markdown"]["content"], "markdown.content", 4096),
        "news" if !app => {
            let articles = msg["news"]["articles"].as_array().ok_or("news.articles missing")?;
            if articles.is_empty() || articles.len() > 8 {
                return Err("news takes 1 to 8 articles".into());
            }
            for article in articles {
                text_within(&article["title"], "article title", 128)?;
                text_within(&article["url"], "article url", 2048)?;
            }
            Ok(())
        }
        "textcard" if app => {
            text_within(&msg["textcard"]["title"], "textcard.title", 128)?;
            text_within(&msg["textcard"]["description"], "textcard.description", 512)?;
            text_within(&msg["textcard"]["url"], "textcard.url", 2048)
        }
        other => Err(format!("msgtype {other} is not one this fake knows")),
    }
}

async fn robot_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if query.get("key").map(String::as_str) != Some(ROBOT_KEY) {
        return reject(&shared, "invalid webhook url".into(), 93000);
    }
    if let Err(why) = check_message(&body, false) {
        return reject(&shared, why, 40008);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    if !shared.robot_admits() {
        return answer(45009, "api freq out of limit");
    }
    shared.accept("/cgi-bin/webhook/send", body);
    answer(0, "ok")
}

async fn gettoken(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if query.get("corpid").map(String::as_str) != Some(CORP_ID)
        || query.get("corpsecret").map(String::as_str) != Some(CORP_SECRET)
    {
        return reject(&shared, "invalid credential".into(), 40001);
    }
    let token = shared.issue_token();
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
        .into_response()
}

async fn app_send(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if !shared.token_valid(query.get("access_token").map(String::as_str)) {
        return answer(EXPIRED, "access_token expired");
    }
    if !body["agentid"].is_i64() {
        return reject(&shared, "agentid must be an integer".into(), 40056);
    }
    let Some(touser) = body["touser"].as_str().filter(|t| !t.is_empty()) else {
        return reject(&shared, "touser missing".into(), 40031);
    };
    if let Err(why) = check_message(&body, true) {
        return reject(&shared, why, 40008);
    }
    if let Some(response) = scripted(&shared) {
        return response;
    }
    if touser.split('|').any(|u| u == UNKNOWN_MEMBER) {
        return Json(json!({"errcode": 0, "errmsg": "ok", "invaliduser": UNKNOWN_MEMBER}))
            .into_response();
    }
    let id = format!("msg-{}", shared.accepted_count());
    shared.accept("/cgi-bin/message/send", body);
    Json(json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": id})).into_response()
}
