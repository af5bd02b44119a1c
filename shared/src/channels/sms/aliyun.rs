//! Alibaba Cloud SMS: `SendSms` (API 2017-05-25) signed with ACS3-HMAC-SHA256, the
//! parameters in the query string. The canonical request is the method, the path, the
//! sorted and RFC 3986-encoded query, the signed headers (`host` and every `x-acs-*`)
//! each as `name:value` and a newline, their names, and the body's SHA-256; the
//! signature is HMAC-SHA256 with the AccessKey secret over `ACS3-HMAC-SHA256` and the
//! canonical request's SHA-256, both in hex.

use crate::channels::chat::http::{json, transport};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::integrations::SecretValues;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const HOST: &str = "https://dysmsapi.aliyuncs.com";
const VERSION: &str = "2017-05-25";

/// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - _ . ~`, bytes of UTF-8.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Authorization` header for a request, given its query (already canonical),
/// headers (lowercase names, sorted by the map) and body.
pub fn authorization(
    access_key_id: &str,
    secret: &str,
    method: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> String {
    let canonical_headers: String =
        headers.iter().map(|(name, value)| format!("{name}:{}\n", value.trim())).collect();
    let signed: Vec<&str> = headers.keys().map(String::as_str).collect();
    let signed = signed.join(";");
    let request =
        format!("{method}\n/\n{query}\n{canonical_headers}\n{signed}\n{}", hex_sha256(body));
    let to_sign = format!("ACS3-HMAC-SHA256\n{}", hex_sha256(request.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(to_sign.as_bytes());
    let signature = hex(&mac.finalize().into_bytes());
    format!(
        "ACS3-HMAC-SHA256 Credential={access_key_id},SignedHeaders={signed},Signature={signature}"
    )
}

/// `host[:port]` of a base URL, as the Host header carries it.
pub(super) fn host_of(base: &str) -> Result<String, String> {
    let url = url::Url::parse(base).map_err(|_| "base_url is not a URL".to_owned())?;
    let host = url.host_str().ok_or("base_url has no host")?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

pub struct AliyunSms {
    client: reqwest::Client,
    base: String,
    host: String,
    sign_name: String,
    access_key_id: String,
    access_key_secret: String,
}

impl AliyunSms {
    pub fn new(
        client: reqwest::Client,
        base: String,
        config: &serde_json::Map<String, Value>,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let secret = |name: &str| crate::channels::chat::http::secret(secrets, name);
        let sign_name = config
            .get("sign_name")
            .and_then(Value::as_str)
            .ok_or("config 'sign_name' is not set")?;
        Ok(Self {
            host: host_of(&base)?,
            client,
            base,
            sign_name: sign_name.to_owned(),
            access_key_id: secret("access_key_id")?,
            access_key_secret: secret("access_key_secret")?,
        })
    }
}

/// Aliyun's codes, in the classes the send stage acts on.
fn classify(code: &str, message: Option<&str>) -> ProviderError {
    use ProviderError::*;
    let text = crate::channels::chat::http::vendor_error("aliyun", code, message);
    match code {
        // Per-number frequency control (one a minute, five an hour): try again later.
        "isv.BUSINESS_LIMIT_CONTROL" => {
            Transient { message: text, retry_after: Some(std::time::Duration::from_secs(60)) }
        }
        _ if code.starts_with("isp.")
            || code.starts_with("Throttling")
            || code == "ServiceUnavailable" =>
        {
            ProviderError::transient(text)
        }
        "isv.MOBILE_NUMBER_ILLEGAL"
        | "isv.MOBILE_COUNT_OVER_LIMIT"
        | "isv.BLACK_KEY_CONTROL_LIMIT"
        | "isv.DENY_IP_RANGE" => InvalidAddress(text),
        _ if code.starts_with("InvalidAccessKeyId")
            || code.starts_with("SignatureDoesNotMatch")
            || code == "isv.AMOUNT_NOT_ENOUGH"
            || code == "isv.ACCOUNT_ABNORMAL"
            || code == "isv.ACCOUNT_NOT_EXISTS"
            || code.starts_with("Forbidden") =>
        {
            Unavailable(text)
        }
        _ => Permanent(text),
    }
}

#[async_trait]
impl Provider for AliyunSms {
    fn name(&self) -> &'static str {
        "aliyun_sms"
    }

    /// Reports pushed to `/v1/callbacks/aliyun_sms/…` name the vendor's message id only.
    fn receipts_by_message_id(&self) -> bool {
        true
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let (phone, sms) = super::phone_and_text(outbound)?;
        let code = super::template_code(sms, "aliyun_sms")?;
        let params = serde_json::to_string(&sms.template_params).unwrap_or_else(|_| "{}".into());
        let mut query = BTreeMap::new();
        // Aliyun takes the number without its `+`.
        query.insert("PhoneNumbers", phone.as_str().trim_start_matches('+').to_owned());
        query.insert("SignName", self.sign_name.clone());
        query.insert("TemplateCode", code.clone());
        query.insert("TemplateParam", params);
        query.insert("OutId", outbound.delivery_id.to_string());
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let query = query.join("&");
        let body: &[u8] = b"";
        let mut headers = BTreeMap::new();
        headers.insert("host".to_owned(), self.host.clone());
        headers.insert("x-acs-action".to_owned(), "SendSms".to_owned());
        headers.insert("x-acs-content-sha256".to_owned(), hex_sha256(body));
        headers.insert(
            "x-acs-date".to_owned(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
        headers.insert("x-acs-signature-nonce".to_owned(), ulid::Ulid::new().to_string());
        headers.insert("x-acs-version".to_owned(), VERSION.to_owned());
        let authorization = authorization(
            &self.access_key_id,
            &self.access_key_secret,
            "POST",
            &query,
            &headers,
            body,
        );
        let mut request = self
            .client
            .post(format!("{}/?{query}", self.base))
            .header("authorization", authorization);
        for (name, value) in headers.iter().filter(|(name, _)| name.as_str() != "host") {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| transport("aliyun", e))?;
        let answer = json("aliyun", response).await?;
        match answer["Code"].as_str() {
            Some("OK") => {
                Ok(Receipt { provider_message_id: answer["BizId"].as_str().map(str::to_owned) })
            }
            Some(code) => Err(classify(code, answer["Message"].as_str())),
            None => Err(ProviderError::Permanent("aliyun answered without Code".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_rfc_3986() {
        assert_eq!(percent_encode("a b*c~d"), "a%20b%2Ac~d");
        assert_eq!(percent_encode("签"), "%E7%AD%BE");
    }

    #[test]
    fn codes_are_classified() {
        assert!(matches!(
            classify("isv.BUSINESS_LIMIT_CONTROL", None),
            ProviderError::Transient { retry_after: Some(_), .. }
        ));
        assert!(matches!(
            classify("isv.MOBILE_NUMBER_ILLEGAL", None),
            ProviderError::InvalidAddress(_)
        ));
        assert!(matches!(classify("SignatureDoesNotMatch", None), ProviderError::Unavailable(_)));
        assert!(matches!(classify("isv.SMS_TEMPLATE_ILLEGAL", None), ProviderError::Permanent(_)));
    }
}
