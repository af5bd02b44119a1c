//! Request bodies: checked for size and type, and decoded so that a bad value is
//! reported with the path of the field at fault (`to[0].email`).

use super::problem::{FieldError, Problem};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON request body decoded into `T` (see [`decode`] for the checks).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        let headers = request.headers().clone();
        let bytes = <Bytes as axum::extract::FromRequest<S>>::from_request(request, state).await;
        Ok(Body(decode(&headers, bytes)?.0))
    }
}

pub fn decode<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(T, Bytes), Problem> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large("the request body is larger than this server accepts")
        } else {
            Problem::new(rejection.status(), "bad-body", "Unreadable body", rejection.body_text())
        }
    })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as Content-Type: application/json",
        ));
    }
    // Every request body is an object; serde would also read a struct from an array.
    if body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'[') {
        return Err(Problem::field("(body)", "a JSON object"));
    }
    if let Some(path) = super::duplicates::first_duplicate(&body) {
        return Err(Problem::field(&path, "this key is given twice"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(path_error)?;
    deserializer.end().map_err(|e| Problem::field("(body)", format!("trailing data: {e}")))?;
    Ok((value, body))
}

/// Decodes one JSON value with the same field-path errors as a request body.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error(error: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let message = inner.to_string();
    // Strip serde_json's " at line 1 column 42" suffix: the field path says where.
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    if inner.is_syntax() || inner.is_eof() {
        return Problem::field("(body)", format!("not valid JSON: {message}"));
    }
    // A missing field is reported at its parent's path; name the field itself.
    let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        Some(missing) if path == "." => missing.to_owned(),
        Some(missing) => format!("{path}.{missing}"),
        None if path == "." => "(body)".to_owned(),
        None => path,
    };
    Problem::invalid(vec![FieldError { field, message }])
}
