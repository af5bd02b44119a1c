//! `/v1/callbacks/{vendor}/{app}/{integration}`: where vendors report on messages
//! after the send. It takes no API key: each request is checked with the vendor's own
//! signature, keyed with the integration's secret. Twilio's status callback
//! (`X-Twilio-Signature` over the URL it called and its form) moves the delivery named
//! in the URL to `delivered` or `bounced`.

use super::AppState;
use super::problem::{ApiResult, Problem};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use herald_core::channels::sms::twilio;
use herald_core::domain::DeliveryId;

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
    let set = state.integrations.integrations(&app).await?;
    let integration = set
        .get(&integration_id)
        .filter(|i| i.provider == "twilio")
        .ok_or_else(|| Problem::not_found("integration"))?;
    let secrets = state
        .router
        .vault()
        .open(&app, &integration.id, &integration.sealed)
        .await
        .map_err(|_| refused())?;
    let token = secrets.get("auth_token").ok_or_else(refused)?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    // Twilio signs the URL it was given, which is the public URL and this path.
    let url = format!("{}{}", state.links.public_url(), uri);
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let expected = twilio::callback_signature(token, &url, &params);
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
