//! `POST /v1/notifications/batch`: up to 100 notifications in one request. Each item is
//! the body of `POST /v1/notifications` with its own optional `idempotency_key`, and is
//! decoded, validated and accepted on its own: one bad item is reported with the path of
//! its field (`items[3].to[0].email`) and does not stop the others. A batch that is not
//! 1 to 100 objects is refused whole. The answer is one
//! 200 with a result per item, in order.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::{decode, from_value};
use super::notifications::{SendRequest, content_of, intake_problem, validated};
use super::problem::{ApiResult, FieldError, Problem};
use super::validate;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use futures::StreamExt;
use herald_core::domain::{Notification, NotificationId, NotificationStatus};
use herald_core::pipeline::intake::{self, Accepted};
use herald_core::ports::IdempotencyClaim;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The most notifications one batch may hold.
pub const MAX_ITEMS: usize = 100;
/// A batch's body: room for 100 full-size sends would be 25 MB, more than API Gateway
/// and Lambda carry (6 MB), so a batch is held to what both backends can take.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 100 notifications, each an object with the fields of `SendRequest` (the
    /// body of `POST /v1/notifications`) and an optional `idempotency_key`, which works
    /// as that endpoint's `Idempotency-Key` header. Each is checked on its own: one
    /// that is not a valid send is refused in its result, the others go on.
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 100)]
    pub items: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// How many items were accepted (new or replayed).
    pub accepted: usize,
    /// How many were refused, each with its problem.
    pub rejected: usize,
    /// One result per item, in the order given.
    pub items: Vec<BatchResult>,
}

/// An item's outcome: its notification, or the problem that refused it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The item's position in `items`.
    pub index: usize,
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<NotificationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<NotificationStatus>,
    /// True when the item's idempotency key returned an earlier notification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Why the item was refused; its field paths start at `items[index]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

impl BatchResult {
    fn of(index: usize, outcome: ApiResult<Accepted>) -> Self {
        match outcome {
            Ok(accepted) => BatchResult {
                index,
                id: Some(accepted.id),
                status: Some(accepted.status),
                replayed: accepted.replayed,
                problem: None,
            },
            Err(problem) => BatchResult {
                index,
                id: None,
                status: None,
                replayed: false,
                problem: Some(problem.prefixed(&format!("items[{index}]"))),
            },
        }
    }
}

/// Send up to 100 notifications.
#[utoipa::path(post, path = "/v1/notifications/batch", tag = "notifications",
    request_body = BatchRequest,
    responses(
        (status = 200, body = BatchResponse,
         description = "A result per item: accepted items are queued, refused ones carry a problem"),
        (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["send"])))]
pub async fn send_batch(
    State(state): State<AppState>,
    caller: Scoped<scopes::Send>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BatchResponse>> {
    let (request, _): (BatchRequest, Bytes) = decode(&headers, body)?;
    if request.items.is_empty() || request.items.len() > MAX_ITEMS {
        return Err(Problem::field("items", format!("1 to {MAX_ITEMS} notifications")));
    }
    // An item that is not even an object makes the request malformed, not the item bad.
    let (mut items, mut errors) = (Vec::with_capacity(request.items.len()), Vec::new());
    for (i, item) in request.items.into_iter().enumerate() {
        match item {
            Value::Object(item) => items.push(item),
            _ => errors
                .push(FieldError { field: format!("items[{i}]"), message: "a JSON object".into() }),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let (state, app) = (&state, caller.app_id());
    let in_flight = state.limits.batch_in_flight.max(1);
    // Each item is checked on its own, then the valid ones are accepted together, so
    // that a backend can queue their messages in as few calls as it can.
    let prepared: Vec<ApiResult<(Notification, Option<IdempotencyClaim>)>> =
        futures::stream::iter(items)
            .map(|item| async move { prepare_item(state, app, item).await })
            .buffered(in_flight)
            .collect()
            .await;
    let mut valid = Vec::new();
    let mut results: Vec<Option<ApiResult<Accepted>>> = Vec::with_capacity(prepared.len());
    for item in prepared {
        match item {
            Ok(item) => {
                valid.push(item);
                results.push(None);
            }
            Err(problem) => results.push(Some(Err(problem))),
        }
    }
    let mut outcomes = intake::accept_many(&*state.store, valid, in_flight).await.into_iter();
    let items: Vec<BatchResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| {
            let result = result.unwrap_or_else(|| {
                outcomes.next().expect("one outcome per valid item").map_err(intake_problem)
            });
            BatchResult::of(index, result)
        })
        .collect();
    let accepted = items.iter().filter(|r| r.problem.is_none()).count();
    Ok(Json(BatchResponse { accepted, rejected: items.len() - accepted, items }))
}

/// One item checked as `POST /v1/notifications` checks its body, ready to accept;
/// problems name fields from the item's root.
async fn prepare_item(
    state: &AppState,
    app: &str,
    mut item: Map<String, Value>,
) -> ApiResult<(Notification, Option<IdempotencyClaim>)> {
    let claim = match item.remove("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => {
            validate::idempotency_key(&key).map_err(|m| Problem::field("idempotency_key", m))?;
            // The item without its key, in serde_json's sorted key order: the same item
            // hashes the same however its keys were ordered.
            let body = serde_json::to_vec(&item).expect("a JSON map serializes");
            Some(IdempotencyClaim { key, body_hash: hex::encode(Sha256::digest(body)) })
        }
        Some(_) => return Err(Problem::field("idempotency_key", "a string")),
    };
    let mut request: SendRequest = from_value(Value::Object(item))?;
    let content = content_of(state, app, &mut request).await?;
    Ok((validated(request, content, app, state)?, claim))
}
