//! SMS: plain text to an E.164 phone number, through Amazon SNS (AWS).

mod address;
#[cfg(feature = "aws")]
mod sns;

pub use address::PhoneNumber;
#[cfg(feature = "aws")]
pub use sns::{SnsSmsProvider, sms_type};

use super::registry::TemplateText;
use super::unit::{ChannelUnit, JsonShape, Report};
use super::{HostProviders, Provider};
use crate::domain::UserProfile;
use crate::integrations::catalog::{FieldKind::Text, optional};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Ten concatenated segments of GSM-7; longer texts are refused, not split.
pub const MAX_TEXT: usize = 1600;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsContent {
    pub text: String,
}

impl JsonShape for SmsContent {
    const OBJECT: bool = true;
}

impl JsonShape for PhoneNumber {
    const OBJECT: bool = false;
}

impl TemplateText for SmsContent {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        Ok(SmsContent { text: render(&format!("{path}.text"), &self.text)? })
    }
}

pub struct Sms;

impl ChannelUnit for Sms {
    type Content = SmsContent;
    type Target = PhoneNumber;
    type Address = PhoneNumber;

    fn validate(sms: &SmsContent, path: &str, report: Report<'_>) {
        let length = sms.text.chars().count();
        if length == 0 || length > MAX_TEXT {
            report(format!("{path}.text"), format!("must be 1 to {MAX_TEXT} characters"));
        }
    }

    fn address(target: &PhoneNumber) -> PhoneNumber {
        target.clone()
    }

    fn from_profile(profile: &UserProfile) -> Option<PhoneNumber> {
        profile.phone.clone()
    }

    fn redact(address: &PhoneNumber) -> String {
        address.redacted()
    }

    fn test_content() -> SmsContent {
        SmsContent { text: super::TEST_TEXT.into() }
    }

    fn providers() -> &'static [ProviderSpec] {
        PROVIDERS
    }

    fn build(
        host: &HostProviders,
        integration: &Integration,
        _secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        let _ = host;
        match integration.provider.as_str() {
            #[cfg(feature = "aws")]
            "sns" => sns::from_integration(host, &integration.config),
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const PROVIDERS: &[ProviderSpec] = &[ProviderSpec {
    id: "sns",
    channel: super::Channel::Sms,
    about: "SMS through Amazon SNS with the send function's role (AWS).",
    robot: false,
    config: &[optional("sender_id", Text, "Alphanumeric sender id, where allowed.")],
    secrets: &[],
}];
