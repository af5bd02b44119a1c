//! Webhooks signed per the Standard Webhooks specification: headers `webhook-id` (the
//! delivery id, the same on every retry so receivers can drop duplicates),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256 over `id.timestamp.body` with the secret's bytes).

use crate::channels::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use crate::net::{GuardedResolver, NetworkPolicy, REFUSED, was_refused};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: `whsec_` followed by base64 of 24 to 64 random bytes.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.strip_prefix(SECRET_PREFIX).ok_or("must start with 'whsec_'")?;
        let key = STANDARD.decode(body).map_err(|_| "is not valid base64 after 'whsec_'")?;
        if !(24..=64).contains(&key.len()) {
            return Err("must hold 24 to 64 bytes".into());
        }
        Ok(Self { key })
    }

    pub fn generate() -> String {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }
}

/// The `webhook-signature` header value for one message.
pub fn sign_payload(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

pub struct WebhookProvider {
    client: reqwest::Client,
    secret: WebhookSecret,
    policy: NetworkPolicy,
}

impl WebhookProvider {
    /// A provider that sends only to addresses `policy` permits, checked after DNS
    /// resolution by the client's own resolver.
    pub fn new(secret: WebhookSecret, timeout: Duration, policy: NetworkPolicy) -> Self {
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver::new(policy.clone()))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A redirect could point the signed payload anywhere: treat it as an answer.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("build the webhook HTTP client");
        Self { client, secret, policy }
    }
}

#[async_trait]
impl Provider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Webhook(url) = &message.address else {
            return Err(ProviderError::Permanent("not a webhook address".into()));
        };
        // A literal address never reaches the resolver: check it here.
        let target = url::Url::parse(url.as_str())
            .map_err(|_| ProviderError::Permanent("not a webhook address".into()))?;
        if self.policy.check_url(&target).is_err() {
            return Err(ProviderError::Permanent(REFUSED.into()));
        }
        let now = chrono::Utc::now();
        let id = message.delivery_id.to_string();
        let body = payload(message, &id, now)
            .map_err(|e| ProviderError::Permanent(format!("could not encode the payload: {e}")))?;
        let timestamp = now.timestamp();
        let signature = sign_payload(&self.secret, &id, timestamp, &body);
        let response = self
            .client
            .post(target)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if was_refused(&e) {
                    return ProviderError::Permanent(REFUSED.into());
                }
                let kind = if e.is_timeout() { "timed out" } else { "could not connect" };
                ProviderError::transient(format!("webhook {kind}: {}", without_url(&e)))
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(Receipt { provider_message_id: Some(id) })
        } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(ProviderError::Transient {
                message: format!("webhook answered {status}"),
                retry_after: retry_after(response.headers()),
            })
        } else {
            Err(ProviderError::Permanent(format!("webhook answered {status}")))
        }
    }
}

/// The JSON a receiver gets for `message` (whose delivery id is `id`), written straight
/// from the message's fields: a `json!` value would copy the data and metadata first.
fn payload(
    message: &OutboundMessage,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Payload {
        category: message.category.as_deref(),
        data: message.content.webhook.as_ref(),
        delivery_id: id,
        metadata: message.metadata.as_ref(),
        notification_id: &message.notification_id.to_string(),
        priority: message.priority,
        timestamp: &crate::time::format_time(now),
        kind: "notification",
    })
}

/// The payload's fields, in alphabetical order as the `json!` map before it wrote them.
#[derive(serde::Serialize)]
struct Payload<'a> {
    category: Option<&'a str>,
    data: Option<&'a crate::channels::WebhookData>,
    delivery_id: &'a str,
    metadata: Option<&'a serde_json::Map<String, serde_json::Value>>,
    notification_id: &'a str,
    priority: crate::domain::Priority,
    timestamp: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A `Retry-After` in seconds (the HTTP-date form is rare from webhook receivers),
/// capped at a day so a receiver cannot park a delivery for longer.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 =
        headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(86_400)))
}

/// reqwest errors include the URL, which may carry a customer's token in its query.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked() {
        assert!(WebhookSecret::parse(&WebhookSecret::generate()).is_ok());
        assert!(WebhookSecret::parse("secret").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err(), "too short");
    }

    fn message_to(url: &str) -> OutboundMessage {
        use crate::domain::{Content, DeliveryId, NotificationId, Priority, WebhookUrl};
        let notification_id = NotificationId::new();
        OutboundMessage {
            delivery_id: DeliveryId::derive(&notification_id, 0, "webhook"),
            notification_id,
            app_id: "a".into(),
            priority: Priority::High,
            category: None,
            address: Address::Webhook(WebhookUrl::parse(url).unwrap()),
            content: Content {
                webhook: Some(crate::channels::WebhookData(serde_json::json!({"x": 1}))),
                ..Default::default()
            },
            unsubscribe_url: None,
            metadata: None,
        }
    }

    /// Sends that the policy refuses fail for good with one reason, before any
    /// connection: a literal address here, a name after resolution (localhost).
    #[tokio::test]
    async fn refused_targets_fail_permanently_without_connecting() {
        let secret = WebhookSecret::parse(&WebhookSecret::generate()).unwrap();
        let provider =
            WebhookProvider::new(secret, Duration::from_secs(2), NetworkPolicy::default());
        for url in ["http://127.0.0.1:9/", "http://[::ffff:127.0.0.1]:9/", "http://localhost:9/"] {
            match provider.send(&message_to(url)).await {
                Err(ProviderError::Permanent(reason)) => assert_eq!(reason, REFUSED, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    /// The body, byte for byte, is what the `json!` map before it wrote: receivers and
    /// their signature checks see no change.
    #[test]
    fn the_payload_is_the_json_it_always_was() {
        let mut message = message_to("https://example.com/hook");
        message.category = Some("orders".into());
        message.metadata = Some(serde_json::from_str(r#"{"b": [1, 2], "a": "x"}"#).unwrap());
        let now = chrono::Utc::now();
        for message in [message_to("https://example.com/hook"), message] {
            let id = message.delivery_id.to_string();
            let before = serde_json::json!({
                "type": "notification",
                "timestamp": crate::time::format_time(now),
                "data": message.content.webhook,
                "notification_id": message.notification_id.to_string(),
                "delivery_id": id,
                "category": message.category,
                "priority": message.priority,
                "metadata": message.metadata,
            });
            assert_eq!(payload(&message, &id, now).unwrap(), serde_json::to_vec(&before).unwrap());
        }
    }

    #[test]
    fn signature_matches_the_specification_example() {
        // The example from the Standard Webhooks specification.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign_payload(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
