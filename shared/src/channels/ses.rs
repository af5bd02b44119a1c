//! Email through Amazon SES (the v2 API). Every message names a configuration set, so
//! SES publishes delivery, bounce, complaint, open and click events for it (to SNS, and
//! from there to the `track` function), and carries the delivery id as a message tag
//! so each event finds its delivery.

use super::{OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::Address;
use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, EmailContent, Message, MessageHeader, MessageTag,
};

/// The message tag that carries Herald's delivery id through SES events.
pub const DELIVERY_TAG: &str = "herald_delivery_id";

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

    fn content(message: &OutboundMessage) -> Result<(String, Message), ProviderError> {
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
        let message = Message::builder().subject(text(&email.subject)?).body(body.build());
        Ok((to.as_str().to_owned(), message.build()))
    }
}

fn classify(error: SdkError<SendEmailError>) -> ProviderError {
    let permanent = matches!(
        error.as_service_error(),
        Some(
            SendEmailError::MessageRejected(_)
                | SendEmailError::MailFromDomainNotVerifiedException(_)
                | SendEmailError::NotFoundException(_)
                | SendEmailError::BadRequestException(_)
        )
    );
    let text = format!("SES: {}", DisplayErrorContext(&error));
    // Throttling, account pauses and network trouble pass; retry them.
    if permanent { ProviderError::Permanent(text) } else { ProviderError::Transient(text) }
}

#[async_trait]
impl Provider for SesProvider {
    fn name(&self) -> &'static str {
        "ses"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let (to, mut simple) = Self::content(message)?;
        let headers = super::unsubscribe_headers(message, self.list_unsubscribe.as_deref())
            .into_iter()
            .map(|(name, value)| {
                MessageHeader::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .map_err(|e| ProviderError::Permanent(format!("SES: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !headers.is_empty() {
            simple.headers = Some(headers);
        }
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
