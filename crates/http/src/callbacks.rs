//! `/v1/callbacks/{vendor}/{app}/{integration}`: where vendors report on messages
//! after the send. It takes no API key: each request is checked with the vendor's own
//! signature, keyed with the integration's secret. Twilio's status callback
//! (`X-Twilio-Signature` over the URL it called and its form) moves the delivery named
//! in the URL to `delivered` or `bounced`. WeChat's server URL answers its
//! verification (`echostr`) and turns `TEMPLATESENDJOBFINISH` into the same statuses,
//! finding the delivery by WeChat's `msgid` (the send remembered it). Aliyun and
//! Tencent push SMS delivery reports unsigned, so their URLs carry the integration's
//! `callback_token` (`?token=`); each report names the vendor's message id.

use super::AppState;
use super::problem::{ApiResult, Problem};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use herald_core::channels::Feedback;
use herald_core::channels::sms::{reports, twilio};
use herald_core::channels::wechat::callback as wechat;
use herald_core::domain::DeliveryId;
use herald_core::integrations::Integration;
use serde_json::{Value, json};
use std::collections::HashMap;

fn refused() -> Problem {
    Problem::forbidden("the callback's signature does not match")
}

#[utoipa::path(post, path = "/v1/callbacks/twilio/{app}/{integration}", tag = "callbacks",
    params(("app" = String, Path), ("integration" = String, Path),
           ("delivery" = String, Query, description = "The delivery the message carried")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
                 description = "Twilio's status callback"),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn twilio_status(
    State(state): State<AppState>,
    Path((app, integration_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let (_, token) = secret_of(&state, &app, &integration_id, "twilio", "auth_token").await?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    // Twilio signs the URL it was given, which is the public URL and this path.
    let url = format!("{}{}", state.links.public_url(), uri);
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let expected = twilio::callback_signature(&token, &url, &params);
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(refused());
    }
    let delivery = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "delivery")
        .and_then(|(_, id)| DeliveryId::parse(id.as_ref()).ok())
        .ok_or_else(|| Problem::not_found("delivery"))?;
    let sid = params.iter().find(|(k, _)| k == "MessageSid").map(|(_, v)| v.clone());
    let feedback = twilio::status_feedback(&params);
    herald_core::pipeline::feedback::apply(&*state.store, &delivery, "twilio", sid, feedback)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The integration `id` of `app`, if it is a `provider` one, with its secret `name`.
async fn secret_of(
    state: &AppState,
    app: &str,
    id: &str,
    provider: &str,
    name: &str,
) -> ApiResult<(Integration, String)> {
    let set = state.integrations.integrations(app).await?;
    let integration = set
        .get(id)
        .filter(|i| i.provider == provider)
        .cloned()
        .ok_or_else(|| Problem::not_found("integration"))?;
    let secrets = state
        .router
        .vault()
        .open(app, &integration.id, &integration.sealed)
        .await
        .map_err(|_| refused())?;
    let secret = secrets.get(name).cloned().ok_or_else(refused)?;
    Ok((integration, secret))
}

/// Whether WeChat signed this push with the account's callback token.
fn wechat_signed(token: &str, query: &HashMap<String, String>) -> bool {
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let expected = wechat::signature(token, get("timestamp"), get("nonce"));
    constant_time_eq(get("signature").as_bytes(), expected.as_bytes())
}

#[utoipa::path(get, path = "/v1/callbacks/wechat/{app}/{integration}", tag = "callbacks",
    params(("app" = String, Path), ("integration" = String, Path),
           ("signature" = String, Query), ("timestamp" = String, Query),
           ("nonce" = String, Query), ("echostr" = String, Query)),
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn wechat_verify(
    State(state): State<AppState>,
    Path((app, integration)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<String> {
    let (_, token) = secret_of(&state, &app, &integration, "wechat_oa", "callback_token").await?;
    if !wechat_signed(&token, &query) {
        return Err(refused());
    }
    Ok(query.get("echostr").cloned().unwrap_or_default())
}

#[utoipa::path(post, path = "/v1/callbacks/wechat/{app}/{integration}", tag = "callbacks",
    params(("app" = String, Path), ("integration" = String, Path),
           ("signature" = String, Query), ("timestamp" = String, Query), ("nonce" = String, Query)),
    request_body(content = String, content_type = "text/xml", description = "WeChat's push"),
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn wechat_push(
    State(state): State<AppState>,
    Path((app, integration)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<&'static str> {
    let (_, token) = secret_of(&state, &app, &integration, "wechat_oa", "callback_token").await?;
    if !wechat_signed(&token, &query) {
        return Err(refused());
    }
    // Anything but a template job's result is acknowledged and left alone.
    if let Some(report) = wechat::job_finish(&String::from_utf8_lossy(&body)) {
        apply_reports(&state, &app, "wechat_oa", vec![report]).await?;
    }
    // WeChat takes "success" (or nothing) as received.
    Ok("success")
}

/// Applies each report to the delivery whose message id it names, if that delivery is
/// `app`'s: a report naming another app's message changes nothing.
async fn apply_reports(
    state: &AppState,
    app: &str,
    provider: &str,
    reports: Vec<(String, Feedback)>,
) -> ApiResult<()> {
    for (message_id, feedback) in reports {
        let Some(id) = state.store.receipt_delivery(provider, &message_id).await? else {
            continue;
        };
        let Some(delivery) = state.store.delivery(&id).await? else { continue };
        let owner = state.store.notification(&delivery.notification_id).await?;
        if owner.is_some_and(|n| n.app_id == app) {
            let store = &*state.store;
            herald_core::pipeline::feedback::apply(
                store,
                &id,
                provider,
                Some(message_id),
                feedback,
            )
            .await?;
        }
    }
    Ok(())
}

/// A vendor's unsigned report push: checks the URL's `token` against the
/// integration's `callback_token`, reads the reports with `parse`, applies them.
async fn take_reports(
    state: &AppState,
    (app, integration): (String, String),
    provider: &str,
    query: &HashMap<String, String>,
    body: &[u8],
    parse: fn(&[u8]) -> Result<reports::Reports, String>,
) -> ApiResult<()> {
    let (_, token) = secret_of(state, &app, &integration, provider, "callback_token").await?;
    let given = query.get("token").map(String::as_str).unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return Err(Problem::forbidden("the report URL's token does not match"));
    }
    let reports = parse(body).map_err(|m| Problem::field("body", m))?;
    apply_reports(state, &app, provider, reports).await
}

#[utoipa::path(post, path = "/v1/callbacks/aliyun_sms/{app}/{integration}", tag = "callbacks",
    params(("app" = String, Path), ("integration" = String, Path),
           ("token" = String, Query, description = "The integration's callback_token")),
    request_body(content = String, content_type = "application/json",
                 description = "Aliyun's SmsReport batch push: a JSON array of reports"),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn aliyun_reports(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    take_reports(&state, path, "aliyun_sms", &query, &body, reports::aliyun).await?;
    Ok(Json(json!({"code": 0, "msg": "success"})))
}

#[utoipa::path(post, path = "/v1/callbacks/tencent_sms/{app}/{integration}", tag = "callbacks",
    params(("app" = String, Path), ("integration" = String, Path),
           ("token" = String, Query, description = "The integration's callback_token")),
    request_body(content = String, content_type = "application/json",
                 description = "Tencent's SMS status callback: a JSON array of reports"),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn tencent_reports(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    take_reports(&state, path, "tencent_sms", &query, &body, reports::tencent).await?;
    Ok(Json(json!({"result": 0, "errmsg": "OK"})))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
