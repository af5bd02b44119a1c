//! Tencent Cloud SMS: `SendSms` (API 2021-01-11) signed with TC3-HMAC-SHA256. The
//! canonical request holds the method, `/`, an empty query, the signed headers
//! (`content-type`, `host`, `x-tc-action`, values lowercased for the action) and the
//! body's SHA-256; the key is derived from `TC3` + SecretKey through the date, the
//! service (`sms`) and `tc3_request`.

use super::aliyun::{hex, host_of};
use crate::channels::chat::http::{json, transport, vendor_error};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::integrations::SecretValues;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const HOST: &str = "https://sms.tencentcloudapi.com";
const VERSION: &str = "2021-01-11";
const SERVICE: &str = "sms";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The `Authorization` header of a POST of `body` to `host` at `timestamp`.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    action: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let date = chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let signed = "content-type;host;x-tc-action";
    let request = format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-tc-action:{}\n\n{signed}\n{}",
        action.to_lowercase(),
        hex(&Sha256::digest(body))
    );
    let scope = format!("{date}/{SERVICE}/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex(&Sha256::digest(request.as_bytes()))
    );
    let key = hmac(format!("TC3{secret_key}").as_bytes(), &date);
    let key = hmac(&key, SERVICE);
    let key = hmac(&key, "tc3_request");
    let signature = hex(&hmac(&key, &to_sign));
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
}

pub struct TencentSms {
    client: reqwest::Client,
    base: String,
    host: String,
    region: String,
    sdk_app_id: String,
    sign_name: String,
    secret_id: String,
    secret_key: String,
}

impl TencentSms {
    pub fn new(
        client: reqwest::Client,
        base: String,
        config: &serde_json::Map<String, Value>,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let secret = |name: &str| crate::channels::chat::http::secret(secrets, name);
        let config_text = |name: &str| crate::channels::chat::http::config_text(config, name);
        Ok(Self {
            host: host_of(&base)?,
            client,
            base,
            region: config_text("region").unwrap_or_else(|_| "ap-guangzhou".into()),
            sdk_app_id: config_text("sdk_app_id")?,
            sign_name: config_text("sign_name")?,
            secret_id: secret("secret_id")?,
            secret_key: secret("secret_key")?,
        })
    }
}

/// Tencent's codes (request errors and per-number status codes).
fn classify(code: &str, message: Option<&str>) -> ProviderError {
    use ProviderError::*;
    let text = vendor_error("tencent", code, message);
    let later = |seconds| Transient {
        message: text.clone(),
        retry_after: Some(std::time::Duration::from_secs(seconds)),
    };
    match code {
        "LimitExceeded.PhoneNumberThirtySecondLimit" => later(30),
        "LimitExceeded.PhoneNumberOneHourLimit" => later(3600),
        "RequestLimitExceeded" | "ResourceUnavailable" => ProviderError::transient(text),
        _ if code.starts_with("InternalError") => ProviderError::transient(text),
        "InvalidParameterValue.IncorrectPhoneNumber" | "FailedOperation.PhoneNumberInBlacklist" => {
            InvalidAddress(text)
        }
        "FailedOperation.InsufficientBalanceInSmsPackage" => Unavailable(text),
        _ if code.starts_with("AuthFailure") || code.starts_with("UnauthorizedOperation") => {
            Unavailable(text)
        }
        _ => Permanent(text),
    }
}

#[async_trait]
impl Provider for TencentSms {
    fn name(&self) -> &'static str {
        "tencent_sms"
    }

    /// Reports pushed to `/v1/callbacks/tencent_sms/…` name the vendor's message id only.
    fn receipts_by_message_id(&self) -> bool {
        true
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let (phone, sms) = super::phone_and_text(outbound)?;
        let template = super::template_code(sms, "tencent_sms")?;
        // Positional parameters "1", "2", …, in their numeric order.
        let mut params: Vec<(u32, &String)> =
            sms.template_params.iter().map(|(k, v)| (k.parse().unwrap_or(u32::MAX), v)).collect();
        params.sort();
        let body = json!({
            "PhoneNumberSet": [phone.as_str()],
            "SmsSdkAppId": self.sdk_app_id,
            "SignName": self.sign_name,
            "TemplateId": template,
            "TemplateParamSet": params.iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "SessionContext": outbound.delivery_id.to_string(),
        })
        .to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let authorization = authorization(
            &self.secret_id,
            &self.secret_key,
            &self.host,
            "SendSms",
            timestamp,
            body.as_bytes(),
        );
        let response = self
            .client
            .post(format!("{}/", self.base))
            .header("content-type", CONTENT_TYPE)
            .header("authorization", authorization)
            .header("x-tc-action", "SendSms")
            .header("x-tc-timestamp", timestamp.to_string())
            .header("x-tc-version", VERSION)
            .header("x-tc-region", &self.region)
            .body(body)
            .send()
            .await
            .map_err(|e| transport("tencent", e))?;
        let answer = json("tencent", response).await?;
        let answer = &answer["Response"];
        if let Some(error) = answer.get("Error") {
            let code = error["Code"].as_str().unwrap_or("unknown");
            return Err(classify(code, error["Message"].as_str()));
        }
        let status = &answer["SendStatusSet"][0];
        match status["Code"].as_str() {
            Some("Ok") => {
                Ok(Receipt { provider_message_id: status["SerialNo"].as_str().map(str::to_owned) })
            }
            Some(code) => Err(classify(code, status["Message"].as_str())),
            None => Err(ProviderError::Permanent("tencent answered without a send status".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(matches!(
            classify("LimitExceeded.PhoneNumberThirtySecondLimit", None),
            ProviderError::Transient { retry_after: Some(_), .. }
        ));
        assert!(matches!(
            classify("InvalidParameterValue.IncorrectPhoneNumber", None),
            ProviderError::InvalidAddress(_)
        ));
        assert!(matches!(
            classify("AuthFailure.SignatureFailure", None),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            classify("FailedOperation.TemplateIncorrectOrUnapproved", None),
            ProviderError::Permanent(_)
        ));
        assert!(matches!(classify("InternalError.Timeout", None), ProviderError::Transient { .. }));
    }
}
