//! An Alibaba Cloud SMS server on loopback, written from Alibaba Cloud's documentation
//! ("V3版本请求体&签名机制" / "Request syntax and signature method V3", "SendSms - 发送短信"
//! of Dysmsapi 2017-05-25, the SMS "API错误码" list and the common client error codes),
//! independently of Herald's code. `POST /` takes an RPC-style `SendSms` whose API
//! parameters are all in the query string and whose body is empty, and checks what the
//! gateway checks:
//! - `Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<names>,
//!   Signature=<hex>`: a known AccessKeyId (else 404 `InvalidAccessKeyId.NotFound`), and
//!   the signature rebuilt from the canonical request (else 400 `SignatureDoesNotMatch`,
//!   whose message carries the canonical request the fake hashed).
//! - `x-acs-action: SendSms`, `x-acs-version: 2017-05-25` (else 404 `InvalidApi.NotFound`);
//!   `x-acs-date` as `yyyy-MM-ddTHH:mm:ssZ` within 15 minutes of now (else 400
//!   `InvalidTimeStamp.Format` / `.Expired`); `x-acs-signature-nonce` never seen before
//!   (else 400 `SignatureNonceUsed`); `x-acs-content-sha256` the hex SHA-256 of the body.
//! - `SignedHeaders` lowercase, ascending, naming `host`, every `x-acs-*` header and
//!   `content-type` when one is sent (else 400 `IncompleteSignature`).
//! - Then SendSms's own parameters: `PhoneNumbers`, `SignName`, `TemplateCode` present
//!   (else 400 `Missing<Name>`); and, answered HTTP 200 with the SMS error code as Alibaba
//!   does: `SignName` is `SIGN_NAME` (`isv.SMS_SIGNATURE_ILLEGAL`), each comma-separated
//!   number is digits with an optional `+` (`isv.MOBILE_NUMBER_ILLEGAL`), `TemplateParam`
//!   is a JSON object of string values (`isv.INVALID_JSON_PARAM`).
//!
//! Query values are percent-decoded as a form decoder does (`+` reads as a space), so
//! Herald should send the query exactly as it canonicalises it: `%20` for a space, `%2B`
//! for a plus.

use crate::vendor_fake::{Fake, Scripted, Shared, now_ms, status_response};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ACCESS_KEY_ID: &str = "LTAI5tHeraldFakeKey0001";
pub const ACCESS_KEY_SECRET: &str = "HeraldFakeAccessKeySecret000000001";
/// A Chinese sign name, as real ones are: it makes the signer percent-encode UTF-8.
pub const SIGN_NAME: &str = "阿里云短信测试";

const ALGORITHM: &str = "ACS3-HMAC-SHA256";
const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
const HOST_ID: &str = "dysmsapi.aliyuncs.com";
/// The documentation: x-acs-date must be within 15 minutes of the request.
const DATE_SKEW_SECS: i64 = 15 * 60;
/// No access tokens here, so no scripted code expires one.
const NO_TOKEN: i64 = i64::MIN;

#[derive(Clone)]
struct AppState {
    shared: Shared,
    /// Signature nonces already used: Alibaba refuses a replayed nonce.
    nonces: Arc<Mutex<HashSet<String>>>,
}

/// Why a request was refused: HTTP status, Alibaba's error code, and the detail.
type Refusal = (StatusCode, &'static str, String);

fn refuse(status: StatusCode, code: &'static str, why: impl Into<String>) -> Refusal {
    (status, code, why.into())
}

pub async fn start() -> Fake {
    let shared = Shared::new(usize::MAX, Duration::from_secs(1));
    let state = AppState { shared: shared.clone(), nonces: Arc::default() };
    let router = Router::new().route("/", post(send_sms)).with_state(state);
    Fake::serve(router, shared).await
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{n:08X}-FA6E-4A11-9C0D-{:012X}", now_ms())
}

/// Alibaba's answer shape: gateway errors (non-200) also name the host.
fn answer(status: StatusCode, code: &str, message: &str) -> Response {
    let mut body = json!({"Code": code, "Message": message, "RequestId": request_id()});
    if status != StatusCode::OK {
        body["HostId"] = json!(HOST_ID);
    }
    (status, Json(body)).into_response()
}

fn reject(shared: &Shared, (status, code, why): Refusal) -> Response {
    shared.reject(format!("{code}: {why}"));
    answer(status, code, &why)
}

async fn send_sms(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = match authenticate(&state, &uri, &headers, &body, now_ms() / 1000) {
        Ok(query) => query,
        Err(refusal) => return reject(&state.shared, refusal),
    };
    if let Err(refusal) = check_send_sms(&query) {
        return reject(&state.shared, refusal);
    }
    if let Some(next) = state.shared.scripted(NO_TOKEN) {
        return match next {
            Scripted::Named(code) => answer(StatusCode::OK, code, "scripted"),
            Scripted::Code(_) => answer(StatusCode::OK, "isp.SYSTEM_ERROR", "scripted"),
            Scripted::Status(status) => status_response(status),
        };
    }
    let biz_id = format!("{}^0", 900_000_000_000_000 + state.shared.accepted_count() as u64);
    let fields: Map<String, Value> =
        query.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
    state.shared.accept("/SendSms", Value::Object(fields));
    Json(json!({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id()}))
        .into_response()
}

/// The gateway's checks, signature last but one; the decoded query parameters if they pass.
fn authenticate(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Vec<(String, String)>, Refusal> {
    let bad = StatusCode::BAD_REQUEST;
    let auth = text(headers, "authorization").and_then(parse_authorization).ok_or_else(|| {
        refuse(
            bad,
            "IncompleteSignature",
            "Authorization must be `ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<names>,Signature=<hex>`",
        )
    })?;
    if auth.credential != ACCESS_KEY_ID {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    if text(headers, "x-acs-action") != Some(ACTION)
        || text(headers, "x-acs-version") != Some(VERSION)
    {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "InvalidApi.NotFound",
            format!("this fake serves only x-acs-action {ACTION}, x-acs-version {VERSION}"),
        ));
    }
    let date = text(headers, "x-acs-date").and_then(parse_acs_date).ok_or_else(|| {
        refuse(bad, "InvalidTimeStamp.Format", "x-acs-date must be yyyy-MM-ddTHH:mm:ssZ (UTC)")
    })?;
    if (now_secs - date).abs() > DATE_SKEW_SECS {
        return Err(refuse(
            bad,
            "InvalidTimeStamp.Expired",
            "x-acs-date is over 15 minutes from now",
        ));
    }
    let nonce = text(headers, "x-acs-signature-nonce")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| refuse(bad, "IncompleteSignature", "x-acs-signature-nonce missing"))?;
    let payload_hash = hex(&Sha256::digest(body));
    if text(headers, "x-acs-content-sha256") != Some(payload_hash.as_str()) {
        return Err(refuse(
            bad,
            "SignatureDoesNotMatch",
            "x-acs-content-sha256 is not the hex SHA-256 of the body",
        ));
    }

    // Every header the documentation lists must be signed: host, x-acs-*, content-type.
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    if !names.windows(2).all(|w| w[0] < w[1])
        || names.iter().any(|n| n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(refuse(
            bad,
            "IncompleteSignature",
            "SignedHeaders must be lowercase, ascending",
        ));
    }
    let present = headers.keys().map(|name| name.as_str());
    for required in
        present.filter(|n| n.starts_with("x-acs-") || *n == "content-type").chain(["host"])
    {
        if !names.contains(&required) {
            return Err(refuse(bad, "IncompleteSignature", format!("{required} must be signed")));
        }
    }
    let signed = signed_header_values(headers, &names)
        .map_err(|why| refuse(bad, "IncompleteSignature", why))?;

    let Query(query) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| refuse(bad, "InvalidParameter", format!("query string: {e}")))?;
    let canonical =
        canonical_request("POST", uri.path(), &query, &signed, &auth.signed_headers, &payload_hash);
    if auth.signature != signature(ACCESS_KEY_SECRET, &canonical) {
        return Err(refuse(
            bad,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature does not match our calculation. Canonical request: {canonical:?}"
            ),
        ));
    }
    if !state.nonces.lock().unwrap().insert(nonce.to_owned()) {
        return Err(refuse(
            bad,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(query)
}

/// SendSms's own parameters, after the gateway has let the request in.
fn check_send_sms(query: &[(String, String)]) -> Result<(), Refusal> {
    let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let bad = StatusCode::BAD_REQUEST;
    let phones = param("PhoneNumbers").filter(|v| !v.is_empty()).ok_or_else(|| {
        refuse(bad, "MissingPhoneNumbers", "PhoneNumbers is mandatory for this action.")
    })?;
    let sign_name = param("SignName")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refuse(bad, "MissingSignName", "SignName is mandatory for this action."))?;
    param("TemplateCode").filter(|v| !v.is_empty()).ok_or_else(|| {
        refuse(bad, "MissingTemplateCode", "TemplateCode is mandatory for this action.")
    })?;

    // SMS errors come back as HTTP 200 with the code in the body.
    let ok = StatusCode::OK;
    if sign_name != SIGN_NAME {
        return Err(refuse(
            ok,
            "isv.SMS_SIGNATURE_ILLEGAL",
            format!("sign name {sign_name} is not this account's"),
        ));
    }
    let numbers: Vec<&str> = phones.split(',').collect();
    let number_ok = |n: &&str| {
        let digits = n.strip_prefix('+').unwrap_or(*n);
        (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if numbers.len() > 1000 || !numbers.iter().all(number_ok) {
        return Err(refuse(
            ok,
            "isv.MOBILE_NUMBER_ILLEGAL",
            format!("PhoneNumbers {phones} is illegal"),
        ));
    }
    if let Some(params) = param("TemplateParam") {
        let strings = serde_json::from_str::<Value>(params)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.values().all(Value::is_string)));
        if strings != Some(true) {
            return Err(refuse(ok, "isv.INVALID_JSON_PARAM", "JSON参数不合法,只接受字符串值"));
        }
    }
    Ok(())
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

struct Authorization {
    credential: String,
    signed_headers: String,
    signature: String,
}

/// `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`, as documented (no spaces).
fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.split_once('=')? {
            ("Credential", v) => credential = Some(v.to_owned()),
            ("SignedHeaders", v) => signed_headers = Some(v.to_owned()),
            ("Signature", v) => signature = Some(v.to_owned()),
            _ => return None,
        }
    }
    Some(Authorization {
        credential: credential?,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

/// Each signed header's value, trimmed; a signed header must be sent exactly once.
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
            Ok(((*name).to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// RFC 3986 percent-encoding of UTF-8 as the documentation gives it: letters, digits and
/// `-_.~` stay; everything else is `%XY` in upper-case hex (a space is `%20`, `*` is `%2A`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Names and values encoded, sorted by name ascending, joined `name=value` with `&`.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(n, v)| (percent_encode(n), percent_encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
}

/// Method, URI, query, one `name:value\n` per signed header (so a blank line follows
/// them), the signed header names, and the payload's hex SHA-256, joined by newlines.
fn canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    signed: &[(String, String)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    format!(
        "{method}\n{path}\n{}\n{headers}\n{signed_headers}\n{payload_hash}",
        canonical_query(query)
    )
}

/// hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(SHA-256(canonical request)))).
fn signature(secret: &str, canonical_request: &str) -> String {
    let string_to_sign =
        format!("{ALGORITHM}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the epoch of `yyyy-MM-ddTHH:mm:ssZ`.
fn parse_acs_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shaped = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let num = |from: usize, to: usize| s[from..to].parse::<i64>().unwrap();
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One element of the array Aliyun's SmsReport HTTP batch push posts (the console's
/// "HTTP批量推送模式"), as its documentation shows it: a report for message `biz_id`
/// to `phone`, `success` with `err_code` `DELIVERED`, or not with the carrier's code.
pub fn report(biz_id: &str, phone: &str, success: bool, err_code: &str, err_msg: &str) -> Value {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    json!({"phone_number": phone, "send_time": now, "report_time": now, "success": success,
           "err_code": err_code, "err_msg": err_msg, "sms_size": "1", "biz_id": biz_id,
           "out_id": ""})
}

/// Posts `reports` to `url` as the push does; the status and JSON answer.
pub async fn push_reports(url: &str, reports: &[Value]) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).json(reports).send().await.expect("push");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    /// The worked example of Alibaba's "V3版本请求体&签名机制" (RunInstances on ECS, the
    /// documented keys YourAccessKeyId / YourAccessKeySecret): its published signature.
    #[test]
    fn signs_the_documented_example() {
        let query = pairs(&[
            ("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"),
            ("RegionId", "cn-shanghai"),
        ]);
        let headers = pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", EMPTY_SHA256),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2014-05-26"),
        ]);
        let signed =
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";
        let canonical = canonical_request("POST", "/", &query, &headers, signed, EMPTY_SHA256);
        assert_eq!(
            signature("YourAccessKeySecret", &canonical),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn percent_encodes_as_documented() {
        assert_eq!(percent_encode("a b*c~d+/阿"), "a%20b%2Ac~d%2B%2F%E9%98%BF");
    }

    #[test]
    fn reads_the_documented_date_format() {
        assert_eq!(parse_acs_date("2023-10-26T10:22:32Z"), Some(1_698_315_752));
        assert_eq!(parse_acs_date("2023-10-26T10:22:32.000Z"), None);
        assert_eq!(parse_acs_date("2023-10-26 10:22:32Z"), None);
    }

    /// A whole SendSms as Herald sends it, through the fake's own checks. The expected
    /// signature was computed independently of this code:
    ///
    /// ```python
    /// import hashlib, hmac
    /// from urllib.parse import quote
    /// enc = lambda s: quote(s, safe='-_.~')
    /// q = {'PhoneNumbers': '13800000000', 'SignName': '阿里云短信测试',
    ///      'TemplateCode': 'SMS_123456789', 'TemplateParam': '{"code":"1234 *~"}'}
    /// h = {'host': 'dysmsapi.aliyuncs.com', 'x-acs-action': 'SendSms',
    ///      'x-acs-content-sha256': hashlib.sha256(b'').hexdigest(),
    ///      'x-acs-date': '2026-12-04T02:00:00Z', 'x-acs-signature-nonce': '0123456789abcdef',
    ///      'x-acs-version': '2017-05-25'}
    /// cq = '&'.join(f'{enc(k)}={enc(v)}' for k, v in sorted(q.items()))
    /// ch = ''.join(f'{k}:{v.strip()}\n' for k, v in sorted(h.items()))
    /// sh = ';'.join(sorted(h))
    /// cr = '\n'.join(['POST', '/', cq, ch, sh, hashlib.sha256(b'').hexdigest()])
    /// sts = 'ACS3-HMAC-SHA256\n' + hashlib.sha256(cr.encode()).hexdigest()
    /// print(hmac.new(b'HeraldFakeAccessKeySecret000000001', sts.encode(), hashlib.sha256).hexdigest())
    /// ```
    #[test]
    fn accepts_a_send_sms_signed_independently() {
        let state = AppState {
            shared: Shared::new(usize::MAX, Duration::from_secs(1)),
            nonces: Arc::default(),
        };
        let uri: Uri = "/?PhoneNumbers=13800000000\
            &SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95\
            &TemplateCode=SMS_123456789&TemplateParam=%7B%22code%22%3A%221234%20%2A~%22%7D"
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "dysmsapi.aliyuncs.com"),
            ("x-acs-action", "SendSms"),
            ("x-acs-version", "2017-05-25"),
            ("x-acs-date", "2026-12-04T02:00:00Z"),
            ("x-acs-signature-nonce", "0123456789abcdef"),
            ("x-acs-content-sha256", EMPTY_SHA256),
            (
                "authorization",
                "ACS3-HMAC-SHA256 Credential=LTAI5tHeraldFakeKey0001,\
                 SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
                 Signature=8d311b69b247f58770bbb944955d1bf07e16cd00868075b97e990f562be403ed",
            ),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let now = parse_acs_date("2026-12-04T02:05:00Z").unwrap();
        let query = authenticate(&state, &uri, &headers, b"", now).expect("signature verifies");
        assert!(check_send_sms(&query).is_ok());
        // The same nonce again is a replay.
        let replay = authenticate(&state, &uri, &headers, b"", now).unwrap_err();
        assert_eq!(replay.1, "SignatureNonceUsed");
        // Sixteen minutes later the date has expired.
        let late = AppState { shared: state.shared.clone(), nonces: Arc::default() };
        let expired = authenticate(&late, &uri, &headers, b"", now + 11 * 60).unwrap_err();
        assert_eq!(expired.1, "InvalidTimeStamp.Expired");
    }
}
