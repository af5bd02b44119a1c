//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json` with
//! HTTP Basic auth (account SID and auth token) and a form body (`To`, `Body`, `From`
//! or `MessagingServiceSid`). Twilio answers 201 with the message's `sid`, or an error
//! with its numeric `code`.

use crate::channels::chat::http::{retry_after, transport, vendor_error};
use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use crate::integrations::SecretValues;
use async_trait::async_trait;
use serde_json::Value;

pub const HOST: &str = "https://api.twilio.com";

pub struct Twilio {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: String,
    /// `From` or `MessagingServiceSid`, with its value.
    sender: (&'static str, String),
}

impl Twilio {
    pub fn new(
        client: reqwest::Client,
        base: String,
        config: &serde_json::Map<String, Value>,
        secrets: &SecretValues,
    ) -> Result<Self, String> {
        let secret = |name: &str| {
            secrets.get(name).cloned().ok_or_else(|| format!("secret '{name}' is not set"))
        };
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
        let Address::Phone(phone) = &outbound.address else {
            return Err(ProviderError::Permanent("not a phone number".into()));
        };
        let sms = outbound
            .content
            .sms
            .as_ref()
            .ok_or_else(|| ProviderError::Permanent("no sms content".into()))?;
        let form = [
            ("To", phone.as_str()),
            ("Body", sms.text.as_str()),
            (self.sender.0, self.sender.1.as_str()),
        ];
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
