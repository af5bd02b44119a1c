//! A Tencent Cloud SMS server on loopback, written from Tencent Cloud's documentation
//! ("签名方法 v3" / "Signature v3", "发送短信 SendSms" of SMS 2021-01-11, "公共参数",
//! the SMS "错误码" list), independently of Herald's code. `POST /` takes a JSON
//! `SendSms` and checks what Tencent checks:
//! - `Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request,
//!   SignedHeaders=<names>, Signature=<hex>`: a known SecretId (else
//!   `AuthFailure.SecretIdNotFound`), a credential date that is the UTC date of
//!   `X-TC-Timestamp`, and the signature rebuilt from the canonical request (else
//!   `AuthFailure.SignatureFailure`, whose message carries the canonical request).
//!   `SignedHeaders` must be lowercase, ascending, and include `content-type` and `host`;
//!   canonical headers are `name:value` with name and value lower-cased and trimmed.
//! - `X-TC-Action: SendSms` (else `InvalidAction`), `X-TC-Version: 2021-01-11` (else
//!   `NoSuchVersion`), an `X-TC-Region`, and `X-TC-Timestamp` within five minutes of now
//!   (else `AuthFailure.SignatureExpire`).
//! - The body: `PhoneNumberSet` of 1 to 200 numbers, `SmsSdkAppId` = `SDK_APP_ID`,
//!   a `TemplateId`, `SignName` = `SIGN_NAME`, `TemplateParamSet` strings if present.
//!
//! Request-level errors come back HTTP 200 as `{"Response":{"Error":{..},"RequestId"}}`;
//! a number Tencent cannot read gets its own `SendStatusSet` entry with
//! `InvalidParameterValue.IncorrectPhoneNumber`, as the documentation's per-number
//! statuses do. A send is recorded as accepted when at least one number went out.

use crate::vendor_fake::{Fake, Scripted, Shared, now_ms, status_response};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const SECRET_ID: &str = "AKIDHeraldFakeSecretId0000000000001";
pub const SECRET_KEY: &str = "HeraldFakeSecretKey0000000000001";
pub const SDK_APP_ID: &str = "1400000001";
pub const SIGN_NAME: &str = "腾讯云";

const ALGORITHM: &str = "TC3-HMAC-SHA256";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
/// The documentation: a timestamp more than five minutes from the server's is refused.
const TIMESTAMP_SKEW_SECS: i64 = 5 * 60;
/// No access tokens here, so no scripted code expires one.
const NO_TOKEN: i64 = i64::MIN;

/// Why a request was refused: Tencent's error code and the detail.
type Refusal = (&'static str, String);

fn refuse(code: &'static str, why: impl Into<String>) -> Refusal {
    (code, why.into())
}

pub async fn start() -> Fake {
    let shared = Shared::new(usize::MAX, Duration::from_secs(1));
    let router = Router::new().route("/", post(send_sms)).with_state(shared.clone());
    Fake::serve(router, shared).await
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{n:08x}-fa6e-4a11-9c0d-{:012x}", now_ms())
}

/// A request-level error: HTTP 200 with `Response.Error`, as TencentCloud API answers.
fn error(code: &str, message: &str) -> Response {
    Json(json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id()}}))
        .into_response()
}

fn reject(shared: &Shared, (code, why): Refusal) -> Response {
    shared.reject(format!("{code}: {why}"));
    error(code, &why)
}

async fn send_sms(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = authenticate(&headers, &body, now_ms() / 1000) {
        return reject(&shared, refusal);
    }
    if !text(&headers, "content-type").is_some_and(|t| t.starts_with("application/json")) {
        return reject(
            &shared,
            refuse("InvalidParameter", "POST bodies here are application/json"),
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            let why = "the body is not a JSON object";
            return reject(&shared, refuse("FailedOperation.FailResolvePacket", why));
        }
    };
    let numbers = match check_send_sms(&request) {
        Ok(numbers) => numbers,
        Err(refusal) => return reject(&shared, refusal),
    };
    let context = request["SessionContext"].as_str().unwrap_or_default();
    if let Some(next) = shared.scripted(NO_TOKEN) {
        return match next {
            // The named code on every number, as a per-number failure comes back.
            Scripted::Named(code) => {
                let set: Vec<Value> =
                    numbers.iter().map(|n| status(n, "", 0, context, code, "scripted")).collect();
                send_status_set(set)
            }
            Scripted::Code(_) => error("InternalError.Timeout", "scripted"),
            Scripted::Status(http) => status_response(http),
        };
    }
    let serial_base = now_ms();
    let set: Vec<Value> = numbers
        .iter()
        .enumerate()
        .map(|(i, number)| match normalise(number) {
            Some(e164) => {
                let serial = format!("2645:{serial_base}{i:04}");
                status(&e164, &serial, 1, context, "Ok", "send success")
            }
            None => status(
                number,
                "",
                0,
                context,
                "InvalidParameterValue.IncorrectPhoneNumber",
                "incorrect phone number",
            ),
        })
        .collect();
    if set.iter().any(|s| s["Code"] == "Ok") {
        shared.accept("/SendSms", request);
    }
    send_status_set(set)
}

fn send_status_set(set: Vec<Value>) -> Response {
    Json(json!({"Response": {"SendStatusSet": set, "RequestId": request_id()}})).into_response()
}

/// One number's entry in `SendStatusSet`.
fn status(number: &str, serial: &str, fee: u32, context: &str, code: &str, message: &str) -> Value {
    json!({
        "SerialNo": serial,
        "PhoneNumber": number,
        "Fee": fee,
        "SessionContext": context,
        "Code": code,
        "Message": message,
        "IsoCode": iso_code(number),
    })
}

/// The documented forms: `+<country><number>` (E.164), and for the Chinese mainland also
/// `0086`, `86` or no prefix before the 11-digit number; Tencent reports them as +86.
fn normalise(number: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mainland = |s: &str| s.len() == 11 && s.starts_with('1') && digits(s);
    if let Some(rest) = number.strip_prefix('+') {
        return (digits(rest) && (6..=15).contains(&rest.len()) && !rest.starts_with('0'))
            .then(|| number.to_owned());
    }
    let national = number
        .strip_prefix("0086")
        .or_else(|| number.strip_prefix("86").filter(|r| r.len() == 11))
        .unwrap_or(number);
    mainland(national).then(|| format!("+86{national}"))
}

fn iso_code(number: &str) -> &'static str {
    match number {
        n if n.starts_with("+86") => "CN",
        n if n.starts_with("+852") => "HK",
        n if n.starts_with("+65") => "SG",
        n if n.starts_with("+1") => "US",
        _ => "",
    }
}

/// SendSms's parameters; the numbers to send to.
fn check_send_sms(request: &Value) -> Result<Vec<String>, Refusal> {
    let numbers: Vec<String> = match &request["PhoneNumberSet"] {
        Value::Null => return Err(refuse("MissingParameter", "PhoneNumberSet is required")),
        Value::Array(items) => items
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| refuse("InvalidParameter", "PhoneNumberSet must hold strings"))?,
        _ => return Err(refuse("InvalidParameter", "PhoneNumberSet must be an array")),
    };
    if numbers.is_empty() {
        return Err(refuse("MissingParameter", "PhoneNumberSet is empty"));
    }
    if numbers.len() > 200 {
        return Err(refuse("LimitExceeded.PhoneNumberCountLimit", "at most 200 numbers a request"));
    }
    match request["SmsSdkAppId"].as_str() {
        None => return Err(refuse("MissingParameter", "SmsSdkAppId is required")),
        Some(id) if id != SDK_APP_ID => {
            return Err(refuse(
                "InvalidParameterValue.SdkAppIdNotExist",
                format!("SmsSdkAppId {id}"),
            ));
        }
        Some(_) => {}
    }
    if request["TemplateId"].as_str().is_none_or(str::is_empty) {
        return Err(refuse("MissingParameter", "TemplateId is required"));
    }
    if request["SignName"].as_str() != Some(SIGN_NAME) {
        let why = format!("SignName {} is not an approved signature", request["SignName"]);
        return Err(refuse("FailedOperation.SignatureIncorrectOrUnapproved", why));
    }
    match &request["TemplateParamSet"] {
        Value::Null => {}
        Value::Array(items) if items.iter().all(Value::is_string) => {}
        _ => {
            return Err(refuse("InvalidParameter", "TemplateParamSet must be an array of strings"));
        }
    }
    if !(request["SessionContext"].is_null() || request["SessionContext"].is_string()) {
        return Err(refuse("InvalidParameter", "SessionContext must be a string"));
    }
    Ok(numbers)
}

/// The common parameters and the TC3 signature.
fn authenticate(headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<(), Refusal> {
    let auth = text(headers, "authorization").and_then(parse_authorization).ok_or_else(|| {
        refuse(
            "AuthFailure.InvalidAuthorization",
            "Authorization must be `TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/tc3_request, SignedHeaders=<names>, Signature=<hex>`",
        )
    })?;
    if auth.secret_id != SECRET_ID {
        return Err(refuse("AuthFailure.SecretIdNotFound", format!("SecretId {}", auth.secret_id)));
    }
    if text(headers, "x-tc-action") != Some(ACTION) {
        return Err(refuse("InvalidAction", format!("this fake serves only X-TC-Action {ACTION}")));
    }
    if text(headers, "x-tc-version") != Some(VERSION) {
        return Err(refuse("NoSuchVersion", format!("SendSms here is X-TC-Version {VERSION}")));
    }
    if text(headers, "x-tc-region").is_none_or(str::is_empty) {
        return Err(refuse("MissingParameter", "X-TC-Region is required"));
    }
    let timestamp_text = text(headers, "x-tc-timestamp")
        .ok_or_else(|| refuse("MissingParameter", "X-TC-Timestamp is required"))?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| refuse("InvalidParameter", "X-TC-Timestamp must be whole seconds"))?;
    if (now_secs - timestamp).abs() > TIMESTAMP_SKEW_SECS {
        let why = "X-TC-Timestamp is more than five minutes from the server's time";
        return Err(refuse("AuthFailure.SignatureExpire", why));
    }
    // The credential's date is the UTC date of the timestamp, never a local one.
    if auth.date != utc_date(timestamp) || auth.service != SERVICE {
        let why = format!(
            "credential scope {}/{} should be {}/{SERVICE}",
            auth.date,
            auth.service,
            utc_date(timestamp)
        );
        return Err(refuse("AuthFailure.SignatureFailure", why));
    }
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    if !names.windows(2).all(|w| w[0] < w[1])
        || names.iter().any(|n| n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase()))
        || !names.contains(&"content-type")
        || !names.contains(&"host")
    {
        let why = "SignedHeaders must be lowercase, ascending, with content-type and host";
        return Err(refuse("AuthFailure.InvalidAuthorization", why));
    }
    let signed = signed_header_values(headers, &names)
        .map_err(|why| refuse("AuthFailure.InvalidAuthorization", why))?;
    let canonical = canonical_request(&signed, &auth.signed_headers, body);
    if auth.signature != signature(SECRET_KEY, &auth.date, SERVICE, timestamp_text, &canonical) {
        let why = format!("signature mismatch; canonical request: {canonical:?}");
        return Err(refuse("AuthFailure.SignatureFailure", why));
    }
    Ok(())
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

struct Authorization {
    secret_id: String,
    date: String,
    service: String,
    signed_headers: String,
    signature: String,
}

/// `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=..,
/// Signature=..`: the parts separated by a comma and a space, as documented.
fn parse_authorization(value: &str) -> Option<Authorization> {
    let mut parts = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?.split(", ");
    let credential = parts.next()?.strip_prefix("Credential=")?;
    let signed_headers = parts.next()?.strip_prefix("SignedHeaders=")?;
    let signature = parts.next()?.strip_prefix("Signature=")?;
    let mut scope = credential.split('/');
    let (secret_id, date, service) = (scope.next()?, scope.next()?, scope.next()?);
    if parts.next().is_some() || scope.next() != Some("tc3_request") || scope.next().is_some() {
        return None;
    }
    Some(Authorization {
        secret_id: secret_id.to_owned(),
        date: date.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers.to_owned(),
        signature: signature.to_owned(),
    })
}

/// Each signed header's value, trimmed and lower-cased as the documentation says; a
/// signed header must be sent exactly once.
fn signed_header_values(
    headers: &HeaderMap,
    names: &[&str],
) -> Result<Vec<(String, String)>, String> {
    names
        .iter()
        .map(|name| {
            let mut values = headers.get_all(*name).into_iter();
            let (Some(value), None) = (values.next(), values.next()) else {
                return Err(format!("signed header {name} must be sent exactly once"));
            };
            let value =
                value.to_str().map_err(|_| format!("header {name} is not visible ASCII"))?;
            Ok(((*name).to_owned(), value.trim().to_lowercase()))
        })
        .collect()
}

/// `POST`, URI `/`, an empty query string (a POST's is always empty), one `name:value\n`
/// per signed header (so a blank line follows them), the signed header names, and the
/// body's hex SHA-256, joined by newlines.
fn canonical_request(signed: &[(String, String)], signed_headers: &str, body: &[u8]) -> String {
    let headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    format!("POST\n/\n\n{headers}\n{signed_headers}\n{}", hex(&Sha256::digest(body)))
}

/// The string to sign (algorithm, timestamp, `date/service/tc3_request`, hashed canonical
/// request) signed with the key derived `TC3`+SecretKey → date → service → `tc3_request`.
fn signature(
    secret_key: &str,
    date: &str,
    service: &str,
    timestamp: &str,
    canonical: &str,
) -> String {
    let scope = format!("{date}/{service}/tc3_request");
    let hashed = hex(&Sha256::digest(canonical.as_bytes()));
    let string_to_sign = format!("{ALGORITHM}\n{timestamp}\n{scope}\n{hashed}");
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date);
    let secret_service = hmac_sha256(&secret_date, service);
    let secret_signing = hmac_sha256(&secret_service, "tc3_request");
    hex(&hmac_sha256(&secret_signing, &string_to_sign))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYY-MM-DD` of a Unix timestamp, in UTC.
fn utc_date(timestamp: i64) -> String {
    let (year, month, day) = civil_from_days(timestamp.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One element of the array Tencent's SMS status callback ("短信下发状态通知") posts,
/// as its documentation shows it: message `sid` to `mobile` (without the country
/// code), `SUCCESS` or `FAIL` with the carrier's code in `errmsg`.
pub fn report(sid: &str, mobile: &str, success: bool, errmsg: &str, description: &str) -> Value {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    json!({"user_receive_time": now, "nationcode": "86", "mobile": mobile,
           "report_status": if success { "SUCCESS" } else { "FAIL" }, "errmsg": errmsg,
           "description": description, "sid": sid})
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// The DescribeInstances payload of Tencent's "签名方法 v3" worked example, its
    /// `\u` escapes sent as written.
    const EXAMPLE_PAYLOAD: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    fn headers(items: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in items {
            map.insert(name, HeaderValue::from_static(value));
        }
        map
    }

    /// The worked example with published keys (AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE /
    /// Gu5t9xGARNpq86cd98joQYCN3EXAMPLE, SignedHeaders content-type;host): its canonical
    /// request and final signature.
    #[test]
    fn signs_the_documented_example() {
        let map = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "cvm.tencentcloudapi.com"),
        ]);
        let signed = signed_header_values(&map, &["content-type", "host"]).unwrap();
        let canonical = canonical_request(&signed, "content-type;host", EXAMPLE_PAYLOAD.as_bytes());
        assert_eq!(
            canonical,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n\
             content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(utc_date(1_551_113_065), "2019-02-25");
        assert_eq!(
            signature(
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                "2019-02-25",
                "cvm",
                "1551113065",
                &canonical
            ),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    /// The current Chinese page signs x-tc-action too, its value lower-cased
    /// (`x-tc-action:describeinstances`); it publishes the canonical request's hash.
    #[test]
    fn lower_cases_header_values_as_the_current_example() {
        let map = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "cvm.tencentcloudapi.com"),
            ("x-tc-action", "DescribeInstances"),
        ]);
        let names = ["content-type", "host", "x-tc-action"];
        let signed = signed_header_values(&map, &names).unwrap();
        let canonical = canonical_request(&signed, &names.join(";"), EXAMPLE_PAYLOAD.as_bytes());
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
    }

    /// Herald's SendSms, through the fake's own checks. Expected signature computed
    /// independently of this code:
    ///
    /// ```python
    /// import hashlib, hmac
    /// h = lambda k, m: hmac.new(k, m.encode(), hashlib.sha256).digest()
    /// body = '{"PhoneNumberSet":["+8613800000000"],"SmsSdkAppId":"1400000001","SignName":"腾讯云","TemplateId":"449739","TemplateParamSet":["1234"]}'
    /// cr = ('POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:127.0.0.1:8080\n'
    ///       'x-tc-action:sendsms\n\ncontent-type;host;x-tc-action\n'
    ///       + hashlib.sha256(body.encode()).hexdigest())
    /// sts = ('TC3-HMAC-SHA256\n1796349600\n2026-12-04/sms/tc3_request\n'
    ///        + hashlib.sha256(cr.encode()).hexdigest())
    /// key = h(h(h(b'TC3HeraldFakeSecretKey0000000000001', '2026-12-04'), 'sms'), 'tc3_request')
    /// print(hmac.new(key, sts.encode(), hashlib.sha256).hexdigest())
    /// ```
    #[test]
    fn accepts_a_send_sms_signed_independently() {
        let body = r#"{"PhoneNumberSet":["+8613800000000"],"SmsSdkAppId":"1400000001","SignName":"腾讯云","TemplateId":"449739","TemplateParamSet":["1234"]}"#;
        let map = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("host", "127.0.0.1:8080"),
            ("x-tc-action", "SendSms"),
            ("x-tc-timestamp", "1796349600"),
            ("x-tc-version", "2021-01-11"),
            ("x-tc-region", "ap-guangzhou"),
            (
                "authorization",
                "TC3-HMAC-SHA256 Credential=AKIDHeraldFakeSecretId0000000000001/2026-12-04/sms/tc3_request, \
                 SignedHeaders=content-type;host;x-tc-action, \
                 Signature=af816e0cca7f3d220bdcf40798326b97a1e3e277e42986abf6726f0c2897b59a",
            ),
        ]);
        authenticate(&map, body.as_bytes(), 1_796_349_600 + 60).expect("signature verifies");
        let late = authenticate(&map, body.as_bytes(), 1_796_349_600 + 301).unwrap_err();
        assert_eq!(late.0, "AuthFailure.SignatureExpire");
        let request: Value = serde_json::from_str(body).unwrap();
        assert_eq!(check_send_sms(&request).unwrap(), ["+8613800000000"]);
    }

    #[test]
    fn reads_numbers_in_the_documented_forms() {
        assert_eq!(normalise("+8613800000000").as_deref(), Some("+8613800000000"));
        assert_eq!(normalise("008613800000000").as_deref(), Some("+8613800000000"));
        assert_eq!(normalise("8613800000000").as_deref(), Some("+8613800000000"));
        assert_eq!(normalise("13800000000").as_deref(), Some("+8613800000000"));
        assert_eq!(normalise("138-0000-0000"), None);
        assert_eq!(normalise("+0123"), None);
    }
}
