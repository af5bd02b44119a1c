//! Health, readiness, the OpenAPI document, the log provider's record, and the
//! problem answers for unknown routes.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::problem::{ApiResult, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::channels::LoggedMessage;
use herald_core::ports::DeadLetter;
use serde_json::{Value, json};

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    match state.store.setting("webhook_secret").await {
        Ok(_) => Ok(Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                "the store does not answer",
            ))
        }
    }
}

pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(super::openapi::document())
}

/// What the log provider recorded for the caller's app (most recent last).
#[utoipa::path(get, path = "/v1/log-messages", tag = "system",
    responses((status = 200, body = Vec<LoggedMessage>)), security(("api_key" = ["read"])))]
pub async fn log_messages(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
) -> ApiResult<Json<Vec<LoggedMessage>>> {
    Ok(Json(state.router.defaults().log().recent(caller.app_id())))
}

/// Jobs that failed for good, newest first (operators only: they span every app).
#[utoipa::path(get, path = "/v1/dead-letters", tag = "system",
    responses((status = 200, body = Vec<DeadLetter>), (status = 403, body = Problem)), security(("api_key" = ["operator"])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    _caller: Scoped<scopes::Operator>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    Ok(Json(state.queue.dead_letters(200).await?))
}

pub async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such route")
}

pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not take that method",
    )
}
