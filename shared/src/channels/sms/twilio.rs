//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json` with
//! HTTP Basic auth (account SID and auth token) and a form body (`To`, `Body`, `From`
//! or `MessagingServiceSid`). Twilio answers 201 with the message's `sid`, or an error
//! with its numeric `code`. With a public URL, each message names Herald's status
//! callback (`/v1/callbacks/twilio/{app}/{integration}?delivery=…`); Twilio signs each
//! callback with `X-Twilio-Signature`: base64 HMAC-SHA1 keyed with the auth token over
//! the full URL and every POST parameter (name and value) sorted by name.

use crate::channels::Feedback;
use crate::channels::chat::http::{retry_after, transport, vendor_error};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::DeliveryStatus;
use crate::integrations::SecretValues;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;

/// The `X-Twilio-Signature` of a callback to `url` with form `params`.
pub fn callback_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// What a status callback says about its message: delivered, or bounced with
/// Twilio's error code; the intermediate statuses are timeline events.
pub fn status_feedback(params: &[(String, String)]) -> Feedback {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let reason =
        get("ErrorCode").filter(|c| !c.is_empty()).map(|code| vendor_error("twilio", code, None));
    match get("MessageStatus").unwrap_or_default() {
        "delivered" => Feedback::Status { status: DeliveryStatus::Delivered, reason: None },
        "undelivered" | "failed" => Feedback::Status { status: DeliveryStatus::Bounced, reason },
        "" => Feedback::Ignore,
        other => Feedback::Event { name: format!("twilio_{other}"), detail: None },
    }
}

pub const HOST: &str = "https://api.twilio.com";

pub struct Twilio {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: String,
    /// `From` or `MessagingServiceSid`, with its value.
    sender: (&'static str, String),
    /// Herald's public URL and this integration's id, for status callbacks.
    callback: Option<(String, String)>,
}

impl Twilio {
    pub fn new(
        client: reqwest::Client,
        base: String,
        integration: &crate::integrations::Integration,
        public_url: Option<&str>,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let config = &integration.config;
        let secret = |name: &str| crate::channels::chat::http::secret(secrets, name);
        let text = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_owned);
        let sender = match (text("messaging_service_sid"), text("from")) {
            (Some(service), _) => ("MessagingServiceSid", service),
            (None, Some(from)) => ("From", from),
            (None, None) => return Err("config needs 'from' or 'messaging_service_sid'".into()),
        };
        let account_sid = secret("account_sid")?;
        Ok(Self {
            url: format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            client,
            account_sid,
            auth_token: secret("auth_token")?,
            sender,
            callback: public_url
                .map(|url| (url.trim_end_matches('/').to_owned(), integration.id.clone())),
        })
    }
}

/// Twilio's error codes, in the classes the send stage acts on.
fn classify(code: i64, message: Option<&str>) -> ProviderError {
    use ProviderError::*;
    let text = vendor_error("twilio", code, message);
    match code {
        20429 | 20500 | 20503 | 30001 => ProviderError::transient(text),
        // The number is invalid, not mobile, unsubscribed (STOP) or unreachable.
        21211 | 21214 | 21217 | 21407 | 21421 | 21610 | 21612 | 21614 | 30003 | 30005 | 30006 => {
            InvalidAddress(text)
        }
        // Credentials, the sender, the account.
        20003 | 20005 | 20008 | 21212 | 21606 | 21659 | 30002 => Unavailable(text),
        _ => Permanent(text),
    }
}

#[async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, outbound: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let (phone, sms) = super::phone_and_text(outbound)?;
        let mut form = vec![
            ("To", phone.as_str().to_owned()),
            ("Body", sms.text.clone()),
            (self.sender.0, self.sender.1.clone()),
        ];
        if let Some((public, integration)) = &self.callback {
            let url = format!(
                "{public}/v1/callbacks/twilio/{}/{integration}?delivery={}",
                outbound.app_id, outbound.delivery_id
            );
            form.push(("StatusCallback", url));
        }
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport("twilio", e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Receipt { provider_message_id: answer["sid"].as_str().map(str::to_owned) });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(ProviderError::Transient {
                message: vendor_error(
                    "twilio",
                    answer["code"].as_i64().unwrap_or(status.as_u16().into()),
                    answer["message"].as_str(),
                ),
                retry_after: wait,
            });
        }
        match answer["code"].as_i64() {
            Some(code) => Err(classify(code, answer["message"].as_str())),
            None => Err(ProviderError::Permanent(format!("twilio answered {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in Twilio's webhook security documentation.
    #[test]
    fn callback_signature_matches_twilios_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(callback_signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    #[test]
    fn statuses_become_feedback() {
        let params = |status: &str| {
            vec![
                ("MessageStatus".to_owned(), status.to_owned()),
                ("ErrorCode".to_owned(), "30003".to_owned()),
            ]
        };
        assert_eq!(
            status_feedback(&params("delivered")),
            Feedback::Status { status: DeliveryStatus::Delivered, reason: None }
        );
        assert!(
            matches!(status_feedback(&params("undelivered")), Feedback::Status { status: DeliveryStatus::Bounced, reason: Some(r) } if r.contains("30003"))
        );
        assert!(matches!(status_feedback(&params("sent")), Feedback::Event { .. }));
    }

    #[test]
    fn codes_are_classified() {
        assert!(matches!(classify(21211, None), ProviderError::InvalidAddress(_)));
        assert!(matches!(classify(20003, None), ProviderError::Unavailable(_)));
        assert!(matches!(classify(20429, None), ProviderError::Transient { .. }));
        assert!(
            matches!(classify(21408, None), ProviderError::Permanent(m) if m.contains("21408"))
        );
    }
}
