//! `/v1/notifications`: send, read, list, cancel, resend.

use super::AppState;
use super::auth::{Caller, Scoped, scopes};
use super::guards::echo;
use super::json::decode;
use super::problem::{ApiResult, Problem};
use super::templates::render_version;
use super::validate::{self, Errors};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use herald_core::domain::{
    Channel, Content, Delivery, Notification, NotificationId, NotificationStatus, Priority,
    Recipient, Routing, TemplateUse, TimelineEvent,
};
use herald_core::pipeline::intake::{self, IntakeError};
use herald_core::pipeline::personalize::UNSUBSCRIBE_URL;
use herald_core::ports::{IdempotencyClaim, NotificationFilter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default)]
    pub priority: Priority,
    /// What kind of message this is (`password-reset`, `newsletter`, …).
    pub category: Option<String>,
    #[serde(deserialize_with = "herald_core::objects::objects")]
    pub to: Vec<Recipient>,
    /// In order: with `fallback` routing the first reachable one is tried first.
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub routing: Routing,
    /// What to send; or give `template` instead and Herald renders it.
    #[serde(deserialize_with = "herald_core::objects::optional_object", default)]
    pub content: Option<Content>,
    #[serde(deserialize_with = "herald_core::objects::optional_object", default)]
    pub template: Option<TemplateRequest>,
    /// Never send after this time; an expired notification ends `expired`.
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Render the content from a stored template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    pub id: String,
    /// Pin a version; without one, the latest.
    #[serde(default)]
    pub version: Option<u32>,
    /// The locale variant to pick (with fallback to `default`).
    #[serde(default)]
    pub locale: Option<String>,
    /// IANA time zone for dates in the template (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendResponse {
    #[schema(value_type = String)]
    pub id: NotificationId,
    pub status: NotificationStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationDetail {
    #[serde(flatten)]
    pub notification: Notification,
    pub deliveries: Vec<Delivery>,
    pub timeline: Vec<TimelineEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub data: Vec<Notification>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The request's content, given or rendered from its template; errors name the field.
pub(crate) async fn content_of(
    state: &AppState,
    app_id: &str,
    request: &mut SendRequest,
) -> ApiResult<(Content, Option<TemplateUse>)> {
    match (request.content.take(), request.template.take()) {
        (Some(content), None) => Ok((content, None)),
        (None, Some(t)) => {
            let field = |problem: Problem| problem.prefixed("template");
            let number = match t.version {
                Some(v) => v,
                None => {
                    state
                        .templates
                        .template(app_id, &t.id)
                        .await?
                        .ok_or_else(|| {
                            Problem::field("template.id", format!("no template '{}'", t.id))
                        })?
                        .latest_version
                }
            };
            let version =
                state.templates.template_version(app_id, &t.id, number).await?.ok_or_else(
                    || {
                        Problem::field(
                            "template.version",
                            format!("template '{}' has no version {number}", t.id),
                        )
                    },
                )?;
            // A direct address has no unsubscribe link: templates may still name it.
            let mut data = if t.data.is_null() { serde_json::json!({}) } else { t.data.clone() };
            if let Some(fields) = data.as_object_mut() {
                fields.entry(UNSUBSCRIBE_URL).or_insert_with(|| "".into());
            }
            let (locale, parts) = render_version(
                &state.renderer,
                &version,
                t.locale.as_deref(),
                t.time_zone.as_deref(),
                &data,
            )
            .map_err(field)?;
            if request.to.iter().any(Recipient::is_indirect) {
                every_variant_renders(state, &version, &data)?;
            }
            let used = TemplateUse {
                id: t.id,
                version: number,
                locale,
                requested_locale: t.locale,
                time_zone: t.time_zone,
                data: t.data,
            };
            Ok((parts.into(), Some(used)))
        }
        (Some(_), Some(_)) => Err(Problem::field("template", "give content or template, not both")),
        (None, None) => {
            Err(Problem::field("content", "give content, or a template to render it from"))
        }
    }
}

/// Users are rendered for at send time in their own locale: check now that every locale
/// variant renders with this data, so a user's delivery cannot fail on it later.
fn every_variant_renders(
    state: &AppState,
    version: &herald_core::templates::TemplateVersion,
    data: &serde_json::Value,
) -> ApiResult<()> {
    for locale in version.locales.keys() {
        let recipient = herald_core::templates::Recipient {
            locale: Some(locale.clone()),
            ..Default::default()
        };
        herald_core::templates::render_for(&state.renderer, version, &recipient, data)
            .map_err(|e| Problem::field("template.data", format!("for locale '{locale}': {e}")))?;
    }
    Ok(())
}

pub(crate) fn validated(
    request: SendRequest,
    (content, template): (Content, Option<TemplateUse>),
    app_id: &str,
    state: &AppState,
) -> ApiResult<Notification> {
    // Stored times have millisecond precision; keep the API's answers consistent.
    let now = Utc::now().trunc_subsecs(3);
    let mut errors = Errors::default();
    validate::recipients(&mut errors, &request.to, &state.limits);
    validate::channels(&mut errors, &request.channels, &content);
    validate::content(&mut errors, &content);
    validate::category(&mut errors, request.category.as_deref());
    validate::expiry(&mut errors, request.expires_at, now);
    validate::metadata(&mut errors, request.metadata.as_ref());
    if !errors.0.is_empty() {
        return Err(Problem::invalid(errors.0));
    }
    Ok(Notification {
        id: NotificationId::for_app(app_id),
        app_id: app_id.to_owned(),
        status: NotificationStatus::Accepted,
        priority: request.priority,
        category: request.category,
        to: request.to,
        channels: request.channels,
        routing: request.routing,
        content,
        expires_at: request.expires_at,
        metadata: request.metadata,
        resent_from: None,
        template,
        created_at: now,
        updated_at: now,
    })
}

fn idempotency_claim(headers: &HeaderMap, body: &[u8]) -> ApiResult<Option<IdempotencyClaim>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key =
        value.to_str().map_err(|_| Problem::field("Idempotency-Key", "must be printable ASCII"))?;
    validate::idempotency_key(key).map_err(|m| Problem::field("Idempotency-Key", m))?;
    let body_hash = hex::encode(Sha256::digest(body));
    Ok(Some(IdempotencyClaim { key: key.to_owned(), body_hash }))
}

/// What an intake failure tells the caller: a reused key is theirs, a store error ours.
pub(crate) fn intake_problem(error: IntakeError) -> Problem {
    match error {
        IntakeError::KeyReused => Problem::conflict("idempotency-key-reused", error.to_string()),
        IntakeError::Store(e) => Problem::internal(&e),
    }
}

async fn accept(
    state: &AppState,
    notification: Notification,
    claim: Option<IdempotencyClaim>,
) -> ApiResult<Response> {
    let accepted =
        intake::accept(&*state.store, notification, claim).await.map_err(intake_problem)?;
    let body = SendResponse { id: accepted.id, status: accepted.status };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if accepted.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Send a notification.
#[utoipa::path(post, path = "/v1/notifications", tag = "notifications",
    request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key, kept 24 h")),
    responses(
        (status = 202, body = SendResponse, description = "Accepted and queued"),
        (status = 409, body = Problem, description = "Idempotency-Key reused with another body"),
        (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["send"])))]
pub async fn send(
    State(state): State<AppState>,
    caller: Scoped<scopes::Send>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (mut request, raw): (SendRequest, Bytes) = decode(&headers, body)?;
    let claim = idempotency_claim(&headers, &raw)?;
    let content = content_of(&state, caller.app_id(), &mut request).await?;
    let notification = validated(request, content, caller.app_id(), &state)?;
    accept(&state, notification, claim).await
}

/// Loads a notification of the caller's app; another app's looks the same as none.
async fn owned(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Notification> {
    let found = state.store.notification(&notification_id(id)?).await?;
    callers(found, caller, |n| &n.app_id)
}

/// A malformed id is a notification that does not exist.
fn notification_id(id: &str) -> ApiResult<NotificationId> {
    NotificationId::parse(id).map_err(|_| Problem::not_found("notification"))
}

/// What was `found`, if it belongs to the caller's app: another app's looks the same as
/// none.
fn callers<T>(found: Option<T>, caller: &Caller, app_of: impl Fn(&T) -> &str) -> ApiResult<T> {
    found.filter(|f| app_of(f) == caller.app_id()).ok_or_else(|| Problem::not_found("notification"))
}

/// A notification with its deliveries and status timeline.
#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = NotificationDetail), (status = 404, body = Problem)),
    security(("api_key" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationDetail>> {
    let found = state.store.notification_detail(&notification_id(&id)?).await?;
    let d = callers(found, &caller, |d| &d.notification.app_id)?;
    Ok(Json(NotificationDetail {
        notification: d.notification,
        deliveries: d.deliveries,
        timeline: d.timeline,
    }))
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

fn parse_filter(query: &HashMap<String, String>) -> ApiResult<NotificationFilter> {
    let mut errors = Errors::default();
    let mut filter = NotificationFilter { limit: DEFAULT_PAGE, ..Default::default() };
    for (name, value) in query {
        // Neither a long value nor a long name is echoed whole.
        let bad = |errors: &mut Errors, m: String| errors.add(echo(name), echo(&m));
        match name.as_str() {
            "status" => match value.parse() {
                Ok(s) => filter.status = Some(s),
                Err(m) => bad(&mut errors, m),
            },
            "priority" => match value.parse() {
                Ok(p) => filter.priority = Some(p),
                Err(m) => bad(&mut errors, m),
            },
            "channel" => match value.parse() {
                Ok(c) => filter.channel = Some(c),
                Err(m) => bad(&mut errors, m),
            },
            "category" if value.is_empty() || value.len() > validate::MAX_CATEGORY => {
                bad(&mut errors, format!("1 to {} characters", validate::MAX_CATEGORY))
            }
            "category" => filter.category = Some(value.clone()),
            "created_after" | "created_before" => match DateTime::parse_from_rfc3339(value) {
                Ok(t) if name == "created_after" => filter.created_after = Some(t.to_utc()),
                Ok(t) => filter.created_before = Some(t.to_utc()),
                Err(_) => bad(&mut errors, "an RFC 3339 time, e.g. 2026-01-31T12:00:00Z".into()),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => filter.limit = n,
                _ => bad(&mut errors, format!("a number from 1 to {MAX_PAGE}")),
            },
            "cursor" => match NotificationId::parse(value) {
                Ok(id) => filter.before_id = Some(id),
                Err(_) => bad(&mut errors, "not a cursor returned by this API".into()),
            },
            _ => bad(&mut errors, "unknown query parameter".into()),
        }
    }
    if errors.0.is_empty() { Ok(filter) } else { Err(Problem::invalid(errors.0)) }
}

/// List notifications, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications",
    params(
        ("status" = Option<NotificationStatus>, Query), ("priority" = Option<Priority>, Query),
        ("channel" = Option<Channel>, Query), ("category" = Option<String>, Query),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
        ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = NotificationPage), (status = 422, body = Problem)),
    security(("api_key" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<NotificationPage>> {
    let mut filter = parse_filter(&query)?;
    let limit = filter.limit;
    filter.limit += 1; // one more tells whether another page exists
    let listed = state.store.list_notifications(caller.app_id(), &filter).await?;
    let mut data = listed.items;
    let next_cursor = if data.len() > limit {
        data.truncate(limit);
        data.last().map(|n| n.id.to_string())
    } else {
        listed.resume_before.map(|id| id.to_string())
    };
    Ok(Json(NotificationPage { data, next_cursor }))
}

/// Cancel a notification that has not been sent yet.
#[utoipa::path(post, path = "/v1/notifications/{id}/cancel", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = SendResponse), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Already sent or finished")),
    security(("api_key" = ["send"])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Scoped<scopes::Send>,
    Path(id): Path<String>,
) -> ApiResult<Json<SendResponse>> {
    let notification = owned(&state, &caller, &id).await?;
    let status = notification.status;
    if status == NotificationStatus::Canceled {
        return Ok(Json(SendResponse { id: notification.id, status }));
    }
    let not_cancelable = |why: &str| Problem::conflict("not-cancelable", why.to_owned());
    if status.is_final() {
        return Err(not_cancelable(&format!("the notification is already {status}")));
    }
    let deliveries = state.store.deliveries(&notification.id).await?;
    if deliveries.iter().any(|d| d.status.reached_recipient()) {
        return Err(not_cancelable("some deliveries have already been sent"));
    }
    let moved = state
        .store
        .transition_notification(&notification.id, NotificationStatus::Canceled, None)
        .await?;
    if !moved {
        return Err(not_cancelable("the notification changed status meanwhile; read it again"));
    }
    Ok(Json(SendResponse { id: notification.id, status: NotificationStatus::Canceled }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResendResponse {
    #[schema(value_type = String)]
    pub id: NotificationId,
    pub status: NotificationStatus,
    #[schema(value_type = String)]
    pub resent_from: NotificationId,
}

/// Send a finished notification again, as a new notification.
#[utoipa::path(post, path = "/v1/notifications/{id}/resend", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 202, body = ResendResponse), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Still in progress")),
    security(("api_key" = ["send"])))]
pub async fn resend(
    State(state): State<AppState>,
    caller: Scoped<scopes::Send>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let original = owned(&state, &caller, &id).await?;
    if !original.status.is_final() {
        return Err(Problem::conflict(
            "not-resendable",
            format!(
                "the notification is still {}; resend it once it has finished",
                original.status
            ),
        ));
    }
    let now = Utc::now().trunc_subsecs(3);
    let copy = Notification {
        id: NotificationId::for_app(&original.app_id),
        status: NotificationStatus::Accepted,
        // The original deadline has passed or may pass: a resend is a fresh request.
        expires_at: None,
        resent_from: Some(original.id.clone()),
        created_at: now,
        updated_at: now,
        ..original.clone()
    };
    let id = copy.id.clone();
    intake::accept(&*state.store, copy, None).await.map_err(|e| Problem::internal(&e))?;
    let body =
        ResendResponse { id, status: NotificationStatus::Accepted, resent_from: original.id };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
