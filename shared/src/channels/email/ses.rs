//! Email through Amazon SES (the v2 API). Every message names a configuration set, so
//! SES publishes delivery, bounce, complaint, open and click events for it (to SNS, and
//! from there to the `track` function), and carries the delivery id as a message tag
//! so each event finds its delivery.

use super::DELIVERY_TAG;
use crate::channels::{HostProviders, OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, EmailContent, Message, MessageHeader, MessageTag,
};

/// An `ses` integration: its sender and configuration set, with the host's AWS
/// configuration (the send function's role).
pub(super) fn from_integration(
    host: &HostProviders,
    config: &serde_json::Map<String, serde_json::Value>,
) -> Result<std::sync::Arc<dyn Provider>, String> {
    let text = |name: &str| config.get(name).and_then(serde_json::Value::as_str);
    let aws = host.aws.as_ref().ok_or("SES needs the AWS configuration")?;
    let from = text("from").ok_or("config 'from' is not set")?;
    let set = text("configuration_set").map(str::to_owned);
    Ok(std::sync::Arc::new(SesProvider::new(Client::new(aws), from, set)))
}

pub struct SesProvider {
    client: Client,
    from: String,
    configuration_set: Option<String>,
    list_unsubscribe: Option<String>,
}

impl SesProvider {
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        Self { client, from: from.into(), configuration_set, list_unsubscribe: None }
    }

    /// A `List-Unsubscribe` value with `{delivery_id}` filled in per message.
    pub fn with_list_unsubscribe(mut self, template: Option<String>) -> Self {
        self.list_unsubscribe = template;
        self
    }

    /// The recipient and the message: subject, bodies and the unsubscribe headers.
    fn content(&self, message: &OutboundMessage) -> Result<(String, Message), ProviderError> {
        let Address::Email(to) = &message.address else {
            return Err(ProviderError::Permanent("not an email address".into()));
        };
        let Some(email) = &message.content.email else {
            return Err(ProviderError::Permanent("the notification has no email content".into()));
        };
        let text = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|e| ProviderError::Permanent(format!("SES: {e}")))
        };
        let mut body = Body::builder();
        if let Some(plain) = &email.text {
            body = body.text(text(plain)?);
        }
        if let Some(html) = &email.html {
            body = body.html(text(html)?);
        }
        let headers =
            crate::channels::unsubscribe_headers(message, self.list_unsubscribe.as_deref())
                .into_iter()
                .map(|(name, value)| {
                    MessageHeader::builder()
                        .name(name)
                        .value(value)
                        .build()
                        .map_err(|e| ProviderError::Permanent(format!("SES: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
        let message = Message::builder()
            .subject(text(&email.subject)?)
            .body(body.build())
            .set_headers((!headers.is_empty()).then_some(headers));
        Ok((to.as_str().to_owned(), message.build()))
    }
}

fn classify(error: SdkError<SendEmailError>) -> ProviderError {
    let text = format!("SES: {}", DisplayErrorContext(&error));
    match error.as_service_error() {
        Some(SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_)) => {
            ProviderError::Permanent(text)
        }
        // The sender's domain or the configuration set is wrong: no message will go
        // through this integration until someone fixes it.
        Some(
            SendEmailError::MailFromDomainNotVerifiedException(_)
            | SendEmailError::NotFoundException(_),
        ) => ProviderError::Unavailable(text),
        // Throttling, account pauses and network trouble pass; retry them.
        _ => ProviderError::transient(text),
    }
}

#[async_trait]
impl Provider for SesProvider {
    fn name(&self) -> &'static str {
        "ses"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let (to, simple) = self.content(message)?;
        let tag = |name: &str, value: String| {
            MessageTag::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| ProviderError::Permanent(format!("SES: {e}")))
        };
        let output = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(simple).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .email_tags(tag(DELIVERY_TAG, message.delivery_id.to_string())?)
            .email_tags(tag("herald_app", message.app_id.clone())?)
            .send()
            .await
            .map_err(classify)?;
        Ok(Receipt { provider_message_id: output.message_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Content as Parts, DeliveryId, EmailAddress, EmailContent, NotificationId};

    fn message(unsubscribe_url: Option<&str>) -> OutboundMessage {
        OutboundMessage {
            delivery_id: DeliveryId::new(),
            notification_id: NotificationId::new(),
            app_id: "shop".into(),
            priority: crate::domain::Priority::Low,
            category: Some("newsletter".into()),
            address: Address::Email(EmailAddress::parse("ann@example.com").unwrap()),
            content: Parts {
                email: Some(EmailContent {
                    subject: "News".into(),
                    text: Some("t".into()),
                    html: None,
                }),
                ..Default::default()
            },
            unsubscribe_url: unsubscribe_url.map(str::to_owned),
            metadata: None,
        }
    }

    fn provider() -> SesProvider {
        let config = aws_sdk_sesv2::Config::builder()
            .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
            .build();
        SesProvider::new(Client::from_conf(config), "herald@example.com", None)
    }

    #[test]
    fn a_signed_link_becomes_the_rfc_8058_header_pair() {
        let url = "https://herald.example.com/v1/unsubscribe/abc.def";
        let (_, built) = provider().content(&message(Some(url))).unwrap();
        let headers: Vec<(&str, &str)> =
            built.headers().iter().map(|h| (h.name(), h.value())).collect();
        assert_eq!(
            headers,
            [
                ("List-Unsubscribe", "<https://herald.example.com/v1/unsubscribe/abc.def>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ]
        );
        let (_, plain) = provider().content(&message(None)).unwrap();
        assert!(plain.headers().is_empty(), "no link, no headers");
    }
}
