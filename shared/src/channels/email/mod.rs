//! Email: a subject with a text and/or HTML body, to an RFC 5322 address, over SMTP
//! (herald serve) or Amazon SES (AWS), whose events come back as delivery feedback.

mod address;
#[cfg(feature = "aws")]
mod ses;
pub mod ses_events;
#[cfg(feature = "smtp")]
mod smtp;

pub use address::EmailAddress;
#[cfg(feature = "aws")]
pub use ses::SesProvider;
pub use ses_events::DELIVERY_TAG;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfig, SmtpProvider, SmtpTls};

use super::registry::TemplateText;
use super::unit::{ChannelUnit, JsonShape, Report};
use super::{HostProviders, Provider};
use crate::domain::UserProfile;
use crate::integrations::catalog::{FieldKind::*, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

pub const MAX_SUBJECT: usize = 998;
pub const MAX_BODY: usize = 200 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailContent {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Auto-escaped when it comes from a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

impl JsonShape for EmailContent {
    const OBJECT: bool = true;
}

impl JsonShape for EmailAddress {
    const OBJECT: bool = false;
}

impl TemplateText for EmailContent {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        let mut field = |name: &str, text: &str| render(&format!("{path}.{name}"), text);
        Ok(EmailContent {
            subject: field("subject", &self.subject)?,
            text: self.text.as_deref().map(|t| field("text", t)).transpose()?,
            html: self.html.as_deref().map(|t| field("html", t)).transpose()?,
        })
    }
}

pub struct Email;

impl ChannelUnit for Email {
    type Content = EmailContent;
    type Target = EmailAddress;
    type Address = EmailAddress;

    fn validate(email: &EmailContent, path: &str, report: Report<'_>) {
        let subject = format!("{path}.subject");
        if email.subject.trim().is_empty() {
            report(subject.clone(), "must not be empty".into());
        }
        if email.subject.chars().count() > MAX_SUBJECT {
            report(subject.clone(), format!("at most {MAX_SUBJECT} characters"));
        }
        if email.subject.contains(['\r', '\n']) {
            report(subject, "must be one line".into());
        }
        if email.text.is_none() && email.html.is_none() {
            report(path.to_owned(), "give text, html or both".into());
        }
        for (name, body) in [("text", &email.text), ("html", &email.html)] {
            if body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
                report(format!("{path}.{name}"), format!("at most {MAX_BODY} bytes"));
            }
        }
    }

    fn address(target: &EmailAddress) -> EmailAddress {
        target.clone()
    }

    fn from_profile(profile: &UserProfile) -> Option<EmailAddress> {
        profile.email.clone()
    }

    fn redact(address: &EmailAddress) -> String {
        address.redacted()
    }

    fn test_content() -> EmailContent {
        EmailContent {
            subject: "Herald test".into(),
            text: Some(super::TEST_TEXT.into()),
            html: None,
        }
    }

    const ONE_CLICK_UNSUBSCRIBE: bool = true;

    fn providers() -> &'static [ProviderSpec] {
        PROVIDERS
    }

    fn build(
        host: &HostProviders,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        let _ = (host, secrets);
        match integration.provider.as_str() {
            #[cfg(feature = "smtp")]
            "smtp" => smtp::from_integration(&integration.config, secrets),
            #[cfg(feature = "aws")]
            "ses" => ses::from_integration(host, &integration.config),
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        id: "smtp",
        channel: super::Channel::Email,
        about: "Email over SMTP (herald serve).",
        robot: false,
        config: &[
            required("host", Text, "The SMTP server's host name."),
            optional("port", Port, "Default 587 (starttls), 465 (tls) or 25 (none)."),
            optional("tls", OneOf(&["starttls", "tls", "none"]), "Default starttls."),
            required("from", Mailbox, "The sender, e.g. `Herald <no-reply@example.com>`."),
            optional("username", Text, "For SMTP AUTH."),
        ],
        secrets: &[optional("password", Text, "For SMTP AUTH.")],
    },
    ProviderSpec {
        id: "ses",
        channel: super::Channel::Email,
        about: "Email through Amazon SES v2 with the send function's role (AWS).",
        robot: false,
        config: &[
            required("from", Mailbox, "A verified sender."),
            optional("configuration_set", Text, "Where SES publishes delivery events."),
        ],
        secrets: &[],
    },
];
