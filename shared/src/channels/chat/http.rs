//! The HTTP side every chat and SMS vendor shares: a client that reaches only the
//! networks the installation permits (an app's manager sets `base_url`, so it gets the
//! same checks as webhook URLs), the vendor's base URL, and transport errors mapped to
//! the classes the send stage acts on, without the URL (it may carry a key).

use crate::channels::ProviderError;
use crate::net::{GuardedResolver, NetworkPolicy, REFUSED, was_refused};
use serde_json::Value;
use std::time::Duration;

/// A client for one vendor integration.
pub fn client(policy: &NetworkPolicy, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(GuardedResolver::new(policy.clone()))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("build a vendor HTTP client")
}

/// The integration's `base_url` (without a trailing slash), or the vendor's host.
pub fn base_url(
    config: &serde_json::Map<String, Value>,
    default: &str,
    policy: &NetworkPolicy,
) -> Result<String, String> {
    let base = config.get("base_url").and_then(Value::as_str).unwrap_or(default);
    vendor_url(base, policy).map_err(|why| format!("config.base_url {why}"))
}

/// A URL Herald may send to: http(s), on a network the policy permits (a literal
/// address never reaches the resolver, so it is checked here). Without a trailing slash.
pub fn vendor_url(url: &str, policy: &NetworkPolicy) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|_| "is not a URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    policy.check_url(&parsed).map_err(|_| REFUSED.to_owned())?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// A transport failure: refused by policy for good, anything else worth a retry.
pub fn transport(vendor: &str, error: reqwest::Error) -> ProviderError {
    if was_refused(&error) {
        return ProviderError::Permanent(REFUSED.into());
    }
    let kind = if error.is_timeout() { "timed out" } else { "could not connect" };
    ProviderError::transient(format!("{vendor} {kind}"))
}

/// A `Retry-After` in seconds, capped at an hour.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 =
        headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

/// Reads a vendor's JSON answer; a 5xx or 429 without one is transient, any other
/// non-JSON answer permanent.
pub async fn json(vendor: &str, response: reqwest::Response) -> Result<Value, ProviderError> {
    let status = response.status();
    let retry = retry_after(response.headers());
    let body = response.bytes().await.map_err(|e| transport(vendor, e))?;
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(ProviderError::Transient {
            message: format!("{vendor} answered {status}"),
            retry_after: retry,
        });
    }
    serde_json::from_slice(&body)
        .map_err(|_| ProviderError::Permanent(format!("{vendor} answered {status} without JSON")))
}

/// The number in a JSON field that vendors send as a number or a string.
pub fn code(body: &Value, field: &str) -> Option<i64> {
    match body.get(field)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `vendor error CODE: message`, as a delivery records a vendor's refusal.
pub fn vendor_error(vendor: &str, code: impl std::fmt::Display, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{vendor} error {code}: {message}"),
        None => format!("{vendor} error {code}"),
    }
}

/// A secret an integration must have.
pub fn secret(secrets: &crate::integrations::SecretValues, name: &str) -> Result<String, String> {
    secrets.get(name).cloned().ok_or_else(|| format!("secret '{name}' is not set"))
}

/// A text field of an integration's config that it must have.
pub fn config_text(config: &serde_json::Map<String, Value>, name: &str) -> Result<String, String> {
    config
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("config '{name}' is not set"))
}

/// A whole-number field of an integration's config that it must have.
pub fn config_integer(config: &serde_json::Map<String, Value>, name: &str) -> Result<i64, String> {
    config.get(name).and_then(Value::as_i64).ok_or_else(|| format!("config '{name}' is not set"))
}
