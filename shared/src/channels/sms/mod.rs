//! SMS: plain text to an E.164 phone number, through Amazon SNS (AWS), Twilio, or the
//! Chinese vendors Aliyun and Tencent Cloud, which send only approved templates (a
//! template code and its parameters; `text` is then what the logs and previews show).

mod address;
mod aliyun;
pub mod reports;
#[cfg(feature = "aws")]
mod sns;
mod tencent;
pub mod twilio;

pub use address::PhoneNumber;
#[cfg(feature = "aws")]
pub use sns::{SnsSmsProvider, sms_type};

use super::registry::TemplateText;
use super::unit::{ChannelUnit, JsonShape, Report};
use super::{HostProviders, Provider};
use crate::domain::UserProfile;
use crate::integrations::catalog::{FieldKind::*, FieldSpec, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// The phone number and SMS content of a message (what every SMS provider reads).
fn phone_and_text(
    outbound: &super::OutboundMessage,
) -> Result<(&PhoneNumber, &SmsContent), super::ProviderError> {
    let super::Address::Phone(phone) = &outbound.address else {
        return Err(super::ProviderError::Permanent("not a phone number".into()));
    };
    let sms = outbound.content.sms.as_ref();
    Ok((phone, sms.ok_or_else(|| super::ProviderError::Permanent("no sms content".into()))?))
}

/// The vendor template a template-only vendor (Aliyun, Tencent) needs.
fn template_code<'a>(
    sms: &'a SmsContent,
    provider: &str,
) -> Result<&'a String, super::ProviderError> {
    sms.template_code.as_ref().ok_or_else(|| {
        super::ProviderError::Permanent(format!(
            "{provider} sends templates: content.sms needs template_code"
        ))
    })
}

/// Ten concatenated segments of GSM-7; longer texts are refused, not split.
pub const MAX_TEXT: usize = 1600;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsContent {
    pub text: String,
    /// The vendor's approved template (Aliyun `SMS_…`, Tencent's numeric id), for the
    /// vendors that send only templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_code: Option<String>,
    /// The template's parameters: by name for Aliyun, `"1"`, `"2"`, … for Tencent's
    /// positional ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_params: BTreeMap<String, String>,
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
        let mut template_params = BTreeMap::new();
        for (name, value) in &self.template_params {
            template_params
                .insert(name.clone(), render(&format!("{path}.template_params.{name}"), value)?);
        }
        Ok(SmsContent {
            text: render(&format!("{path}.text"), &self.text)?,
            template_code: self.template_code.clone(),
            template_params,
        })
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
        if sms.template_code.as_ref().is_some_and(|c| c.is_empty() || c.len() > 64) {
            report(format!("{path}.template_code"), "must be 1 to 64 characters".into());
        }
        if sms.template_params.len() > 20 || sms.template_params.values().any(|v| v.len() > 256) {
            report(format!("{path}.template_params"), "at most 20 values of 256 bytes".into());
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
        SmsContent { text: super::TEST_TEXT.into(), ..Default::default() }
    }

    fn providers() -> &'static [ProviderSpec] {
        PROVIDERS
    }

    fn build(
        host: &HostProviders,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        let client = || super::chat::http::client(&host.networks, host.webhook_timeout);
        let base = |default: &str| {
            super::chat::http::base_url(&integration.config, default, &host.networks)
        };
        match integration.provider.as_str() {
            #[cfg(feature = "aws")]
            "sns" => sns::from_integration(host, &integration.config),
            "aliyun_sms" => Ok(Arc::new(aliyun::AliyunSms::new(
                client(),
                base(aliyun::HOST)?,
                &integration.config,
                secrets,
            )?)),
            "tencent_sms" => Ok(Arc::new(tencent::TencentSms::new(
                client(),
                base(tencent::HOST)?,
                &integration.config,
                secrets,
            )?)),
            "twilio" => Ok(Arc::new(twilio::Twilio::new(
                client(),
                base(twilio::HOST)?,
                integration,
                host.public_url.as_deref(),
                secrets,
            )?)),
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const BASE_URL: FieldSpec =
    optional("base_url", Url, "The API host, instead of the vendor's; tests point it at a fake.");

const CALLBACK_TOKEN: FieldSpec = optional(
    "callback_token",
    Text,
    "Any long random string; the report URL set in the vendor's console carries it \
     (?token=), since the vendor signs its delivery reports with nothing.",
);

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        id: "sns",
        channel: super::Channel::Sms,
        about: "SMS through Amazon SNS with the send function's role (AWS).",
        robot: false,
        config: &[optional("sender_id", Text, "Alphanumeric sender id, where allowed.")],
        secrets: &[],
    },
    ProviderSpec {
        id: "aliyun_sms",
        channel: super::Channel::Sms,
        about: "Alibaba Cloud SMS (SendSms, ACS3-HMAC-SHA256): approved templates only; \
                content.sms needs template_code.",
        robot: false,
        config: &[
            required("sign_name", Text, "The approved signature (签名)."),
            optional("region", Text, "The region id (cn-hangzhou by default)."),
            BASE_URL,
        ],
        secrets: &[
            required("access_key_id", Text, "The RAM user's AccessKey ID."),
            required("access_key_secret", Text, "The RAM user's AccessKey secret."),
            CALLBACK_TOKEN,
        ],
    },
    ProviderSpec {
        id: "tencent_sms",
        channel: super::Channel::Sms,
        about: "Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256): approved templates \
                only; content.sms needs template_code and positional template_params.",
        robot: false,
        config: &[
            required("sdk_app_id", Text, "The SMS application's SdkAppId (1400…)."),
            required("sign_name", Text, "The approved signature (签名)."),
            optional("region", Text, "The region (ap-guangzhou by default)."),
            BASE_URL,
        ],
        secrets: &[
            required("secret_id", Text, "The API key's SecretId."),
            required("secret_key", Text, "The API key's SecretKey."),
            CALLBACK_TOKEN,
        ],
    },
    ProviderSpec {
        id: "twilio",
        channel: super::Channel::Sms,
        about: "Twilio Programmable Messaging; delivery receipts through its status \
                callback when HERALD_PUBLIC_URL is set.",
        robot: false,
        config: &[
            optional("from", Text, "The sending number (E.164), unless a messaging service."),
            optional("messaging_service_sid", Text, "A Messaging Service (MG…) instead of from."),
            BASE_URL,
        ],
        secrets: &[
            required("account_sid", Text, "The account SID (AC…)."),
            required("auth_token", Text, "The account's auth token."),
        ],
    },
];
