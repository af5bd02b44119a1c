//! A Twilio Programmable Messaging server on loopback, written from Twilio's
//! documentation (the Messages resource, "Outbound Message Status in Status Callbacks",
//! "Secure webhooks" / "Security", and the error pages 20003, 20404, 20429, 21211,
//! 21212, 21602, 21603, 21604, 21606, 21609, 21617, 21705), independently of Herald's
//! code:
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth
//!   `AccountSid:AuthToken` (else 401, code 20003) on its own account (else 404, 20404),
//!   a form-encoded body: `To` in E.164 (21604 missing, 21211 malformed), `Body` of 1 to
//!   1,600 characters (21602, 21617), and `From` (this account's `FROM`: 21212, 21606) or
//!   `MessagingServiceSid` (`MESSAGING_SERVICE_SID`: 21705) — one of them (21603); an
//!   optional `StatusCallback` that is an http(s) URL (21609). Errors are HTTP 400 with
//!   Twilio's `{"code","message","more_info","status"}`.
//! - Success is HTTP 201 with the Message resource: status `queued`, or `accepted` when
//!   sent through a Messaging Service without `From`, as the status guide documents.
//! - `send_status_callback` plays Twilio calling a StatusCallback URL, signed with
//!   `X-Twilio-Signature` as the security page describes.

use crate::vendor_fake::{Fake, Scripted, Shared, now_ms, status_response};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha1::Sha1;
use std::time::Duration;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// Twilio's magic test number that sends successfully.
pub const FROM: &str = "+15005550006";
pub const MESSAGING_SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";

/// No access tokens here, so no scripted code expires one.
const NO_TOKEN: i64 = i64::MIN;
const API_VERSION: &str = "2010-04-01";

pub async fn start() -> Fake {
    let shared = Shared::new(usize::MAX, Duration::from_secs(1));
    let router = Router::new()
        .route("/2010-04-01/Accounts/{account_sid}/Messages.json", post(create_message))
        .with_state(shared.clone());
    Fake::serve(router, shared).await
}

/// Twilio's REST error body.
fn error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn reject(shared: &Shared, status: StatusCode, code: i64, why: String) -> Response {
    shared.reject(format!("{code}: {why}"));
    error(status, code, &why)
}

fn basic_auth_ok(headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    STANDARD
        .decode(encoded.trim())
        .is_ok_and(|decoded| decoded == format!("{ACCOUNT_SID}:{AUTH_TOKEN}").as_bytes())
}

async fn create_message(
    State(shared): State<Shared>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if !basic_auth_ok(&headers) {
        shared.reject("20003: bad or missing HTTP Basic credentials");
        let mut response = error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Twilio API\""));
        return response;
    }
    if account_sid != ACCOUNT_SID {
        let why = format!(
            "The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages.json was not found"
        );
        return reject(&shared, StatusCode::NOT_FOUND, 20404, why);
    }
    // Twilio's 21604 page: a body that is not form-encoded (JSON, say) has no `To`.
    let Ok(Form(fields)) = form else {
        let why = "A 'To' phone number is required (the body must be form-encoded)".to_owned();
        return reject(&shared, StatusCode::BAD_REQUEST, 21604, why);
    };
    let field = |name: &str| {
        fields.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    };
    if let Err((code, why)) = check_message(&field) {
        return reject(&shared, StatusCode::BAD_REQUEST, code, why);
    }
    if let Some(next) = shared.scripted(NO_TOKEN) {
        return match next {
            Scripted::Code(code) => error(StatusCode::BAD_REQUEST, code, "scripted"),
            Scripted::Status(429) => {
                error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
            }
            Scripted::Status(status) => status_response(status),
            // Twilio has no named errors; a test that scripts one gets a server error.
            Scripted::Named(_) => status_response(500),
        };
    }

    let (to, body) = (field("To").unwrap_or_default(), field("Body").unwrap_or_default());
    let (from, service) = (field("From"), field("MessagingServiceSid"));
    // A Messaging Service picks the sender later: `accepted`, no `from`, no segments yet.
    let pooled = from.is_none();
    let sid = format!("SM{:016x}{:016x}", now_ms() as u64, shared.accepted_count() as u64);
    let now = rfc2822(now_ms() / 1000);
    let (status, num_segments) = if pooled { ("accepted", 0) } else { ("queued", segments(body)) };
    let message = json!({
        "account_sid": ACCOUNT_SID,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": num_segments.to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": format!("/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"),
        },
        "to": to,
        "uri": format!("/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
    });
    let recorded: Map<String, Value> =
        fields.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect();
    shared.accept("/Messages.json", Value::Object(recorded));
    (StatusCode::CREATED, Json(message)).into_response()
}

/// What the Messages resource requires of a new outbound message, with Twilio's codes.
fn check_message<'a>(field: &impl Fn(&str) -> Option<&'a str>) -> Result<(), (i64, String)> {
    let to = field("To").ok_or((21604, "A 'To' phone number is required.".to_owned()))?;
    if !is_e164(to) {
        return Err((
            21211,
            format!("Invalid 'To' Phone Number: {to} is not a valid phone number."),
        ));
    }
    match (field("From"), field("MessagingServiceSid")) {
        (None, None) => return Err((21603, "A 'From' phone number is required.".to_owned())),
        (Some(from), _) if !is_e164(from) && !is_alphanumeric_sender(from) => {
            return Err((21212, format!("Invalid 'From' Phone Number: {from}")));
        }
        (Some(from), _) if from != FROM => {
            let why = format!(
                "The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account."
            );
            return Err((21606, why));
        }
        (_, Some(service)) if service != MESSAGING_SERVICE_SID => {
            return Err((21705, format!("The Messaging Service Sid {service} is invalid.")));
        }
        _ => {}
    }
    let body = field("Body").ok_or((21602, "Message body is required.".to_owned()))?;
    if body.chars().count() > 1600 {
        let why = "The concatenated message body exceeds the 1600 character limit.".to_owned();
        return Err((21617, why));
    }
    if let Some(url) = field("StatusCallback") {
        let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        if host.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
            return Err((21609, format!("The StatusCallback URL {url} is not a valid URL.")));
        }
    }
    Ok(())
}

/// `+`, a country code that does not start with 0, at most 15 digits in all.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit())
    })
}

/// An alphanumeric sender ID: up to 11 letters, digits and spaces, at least one letter.
fn is_alphanumeric_sender(from: &str) -> bool {
    (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
}

/// SMS segments: 160 GSM characters in one, 153 a segment when split; 70 and 67 for
/// UCS-2 (approximated here as "anything outside ASCII").
fn segments(body: &str) -> usize {
    let (single, part) = if body.is_ascii() { (160, 153) } else { (70, 67) };
    let chars = body.chars().count();
    if chars <= single { 1 } else { chars.div_ceil(part) }
}

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(AuthToken, the full URL followed by
/// each POST parameter's name and value, sorted by name, with no delimiters)).
pub fn webhook_signature(url: &str, auth_token: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Plays Twilio delivering a status callback: POSTs `params` form-encoded to `url`
/// (MessageSid, MessageStatus such as `delivered` or `undelivered`, ErrorCode,
/// AccountSid, To, From, …) with the `X-Twilio-Signature` Twilio would compute.
pub async fn send_status_callback(
    url: &str,
    auth_token: &str,
    params: &[(&str, &str)],
) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(url)
        .header("X-Twilio-Signature", webhook_signature(url, auth_token, params))
        .form(params)
        .send()
        .await
        .expect("the status callback reaches its receiver")
        .status()
}

/// RFC 2822 date as Twilio's resources carry them: `Thu, 03 Dec 2026 12:00:00 +0000`.
fn rfc2822(timestamp: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = timestamp.div_euclid(86_400);
    let secs = timestamp.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example on Twilio's security page: that URL, those POST parameters, Auth
    /// Token 12345.
    #[test]
    fn signs_the_documented_example() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ];
        assert_eq!(
            webhook_signature("https://mycompany.com/myapp.php?foo=1&bar=2", "12345", &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn dates_like_twilio() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_551_113_065), "Mon, 25 Feb 2019 16:44:25 +0000");
    }

    #[test]
    fn checks_numbers_and_senders() {
        assert!(is_e164("+8613800000000"));
        assert!(!is_e164("8613800000000"));
        assert!(!is_e164("+0123"));
        assert!(is_alphanumeric_sender("Herald"));
        assert!(!is_alphanumeric_sender("12345"));
        assert_eq!(segments("hi"), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
    }
}
