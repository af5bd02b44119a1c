//! SMS through Amazon SNS `Publish` to an E.164 number. High and medium priority go as
//! `Transactional` (SNS routes them for reliability, and they may reach numbers that
//! opted out of marketing); low priority goes as `Promotional` (routed for cost).

use crate::channels::{HostProviders, OutboundMessage, Provider, ProviderError, Receipt};
use crate::domain::{Address, Priority};
use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;

/// An `sns` integration: its sender id, with the host's AWS configuration.
pub(super) fn from_integration(
    host: &HostProviders,
    config: &serde_json::Map<String, serde_json::Value>,
) -> Result<std::sync::Arc<dyn Provider>, String> {
    let aws = host.aws.as_ref().ok_or("SNS needs the AWS configuration")?;
    let sender = config.get("sender_id").and_then(serde_json::Value::as_str);
    Ok(std::sync::Arc::new(SnsSmsProvider::new(Client::new(aws), sender.map(str::to_owned))))
}

pub struct SnsSmsProvider {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSmsProvider {
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        Self { client, sender_id }
    }
}

pub fn sms_type(priority: Priority) -> &'static str {
    match priority {
        Priority::High | Priority::Medium => "Transactional",
        Priority::Low => "Promotional",
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, ProviderError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| ProviderError::Permanent(format!("SNS: {e}")))
}

fn classify(error: SdkError<PublishError>) -> ProviderError {
    let text = format!("SNS: {}", DisplayErrorContext(&error));
    match error.as_service_error() {
        Some(
            PublishError::InvalidParameterException(_)
            | PublishError::InvalidParameterValueException(_),
        ) => ProviderError::Permanent(text),
        Some(PublishError::AuthorizationErrorException(_)) => ProviderError::Unavailable(text),
        _ => ProviderError::transient(text),
    }
}

#[async_trait]
impl Provider for SnsSmsProvider {
    fn name(&self) -> &'static str {
        "sns"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        let Address::Phone(phone) = &message.address else {
            return Err(ProviderError::Permanent("not a phone number".into()));
        };
        let Some(sms) = &message.content.sms else {
            return Err(ProviderError::Permanent("the notification has no SMS content".into()));
        };
        let mut publish = self
            .client
            .publish()
            .phone_number(phone.as_str())
            .message(&sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute(sms_type(message.priority))?);
        if let Some(sender) = &self.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", attribute(sender)?);
        }
        let output = publish.send().await.map_err(classify)?;
        Ok(Receipt { provider_message_id: output.message_id })
    }
}
