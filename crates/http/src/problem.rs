//! RFC 9457 problem details. Every error the API returns is one of these, with a stable
//! `type`, and for bad input the fields at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

const TYPE_BASE: &str = "https://herald.dev/problems/";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Path to the field, e.g. `to[0].email` or `content.email.subject`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before trying again, sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{TYPE_BASE}{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request", detail)
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError { field: field.to_owned(), message: message.into() }])
    }

    /// The same problem with every field path under `prefix` (`data` → `template.data`),
    /// for errors found in a part of the request handled on its own.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if self.errors.is_empty() {
            return self;
        }
        for error in &mut self.errors {
            error.field = format!("{prefix}.{}", error.field);
        }
        Self::invalid(self.errors)
    }

    /// The answer to a GET of one record: it as JSON, else a 404 naming `what`.
    pub fn found<T>(record: Option<T>, what: &str) -> Result<axum::Json<T>, Problem> {
        record.map(axum::Json).ok_or_else(|| Self::not_found(what))
    }

    /// The answer to a PUT that creates or replaces: 201 or 200, with the stored record.
    pub fn upserted<T>(created: bool, stored: T) -> (StatusCode, axum::Json<T>) {
        (if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(stored))
    }

    /// The answer to a DELETE: 204 if `found`, else a 404 naming `what`.
    pub fn deleted(found: bool, what: &str) -> Result<StatusCode, Problem> {
        if found { Ok(StatusCode::NO_CONTENT) } else { Err(Self::not_found(what)) }
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no such {what}"))
    }

    pub fn conflict(kind: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, "Conflict", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request too large", detail)
    }

    /// For failures that are ours, not the caller's: the cause is logged, not returned.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<herald_core::ports::StoreError> for Problem {
    fn from(error: herald_core::ports::StoreError) -> Self {
        Problem::internal(&error)
    }
}

pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_to_retry_says_when() {
        let busy = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "Try again", "later");
        let response = busy.clone().retry_after(1).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert!(!busy.into_response().headers().contains_key(header::RETRY_AFTER));
    }
}
