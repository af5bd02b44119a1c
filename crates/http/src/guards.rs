//! Layers that keep every answer a problem+json document: request heads too large for
//! the API get 431 or 414 from here (before any handler), and an error that an
//! extractor or the router wrote as plain text (a bad path segment, an unknown route,
//! a wrong method) is rewritten as a problem with the same status.

use super::problem::Problem;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The most bytes of header names and values one request may carry.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The longest request target (path and query) the API reads.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// How much of a caller's input a problem's detail may echo.
const MAX_ECHO: usize = 200;

/// `text` cut to a length a problem may echo back.
pub fn echo(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return text.to_owned();
    }
    let mut end = MAX_ECHO;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}

/// Refuses request heads larger than the API reads, with a problem.
pub async fn limit_request_head(request: Request, next: Next) -> Response {
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI too long",
            format!("the path and query may be at most {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request headers too large",
            format!("the headers may be at most {MAX_HEADER_BYTES} bytes in all"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Rewrites a plain-text error answer as problem+json with the same status.
pub async fn errors_as_problems(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let detail = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        echo(text.trim())
    };
    let kind = match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::BAD_REQUEST => "bad-request",
        _ => "error",
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let mut problem = Problem::new(status, kind, title, detail).into_response();
    // Headers that tell the client what to do next survive the rewrite.
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}
