//! Webhooks: any JSON, POSTed to an HTTP(S) URL and signed per Standard Webhooks.

mod provider;

pub use provider::{WebhookProvider, WebhookSecret, sign_payload};

use super::registry::TemplateText;
use super::unit::{ChannelUnit, JsonShape, Report};
use super::{HostProviders, Provider};
use crate::domain::{UserProfile, WebhookUrl};
use crate::integrations::catalog::{FieldKind::SigningSecret, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// The data of a webhook: any JSON value. It becomes the `data` of the signed payload;
/// in a template, every string leaf is a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookData(pub Value);

impl JsonShape for WebhookData {
    const OBJECT: bool = false;
}

impl utoipa::PartialSchema for WebhookData {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .description(Some("Any JSON value; it becomes the `data` of the signed payload."))
            .into()
    }
}

impl ToSchema for WebhookData {}

impl TemplateText for WebhookData {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        map_json(path, &self.0, render).map(WebhookData)
    }
}

fn map_json<E>(
    path: &str,
    value: &Value,
    render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
) -> Result<Value, E> {
    Ok(match value {
        Value::String(text) => Value::String(render(path, text)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| map_json(&format!("{path}[{i}]"), item, render))
                .collect::<Result<_, E>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    Ok((key.clone(), map_json(&format!("{path}.{key}"), item, render)?))
                })
                .collect::<Result<_, E>>()?,
        ),
        other => other.clone(),
    })
}

/// Where a request sends a webhook: `{"url": "https://…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    #[schema(value_type = String, example = "https://example.com/hooks/herald")]
    pub url: WebhookUrl,
}

impl JsonShape for WebhookTarget {
    const OBJECT: bool = true;
}

pub struct Webhook;

impl ChannelUnit for Webhook {
    type Content = WebhookData;
    type Target = WebhookTarget;
    type Address = WebhookUrl;

    fn validate(_data: &WebhookData, _path: &str, _report: Report<'_>) {}

    fn check_target(target: &WebhookTarget, path: &str, report: Report<'_>) {
        if !crate::net::permits_url(target.url.as_str()) {
            report(format!("{path}.url"), crate::net::REFUSED.into());
        }
    }

    fn address(target: &WebhookTarget) -> WebhookUrl {
        target.url.clone()
    }

    fn from_profile(profile: &UserProfile) -> Option<WebhookTarget> {
        profile.webhook_url.clone().map(|url| WebhookTarget { url })
    }

    /// The scheme and host: paths and queries can carry tokens.
    fn redact(url: &WebhookUrl) -> String {
        url::Url::parse(url.as_str())
            .map(|u| format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")))
            .unwrap_or_else(|_| "***".into())
    }

    fn test_content() -> WebhookData {
        WebhookData(serde_json::json!({"test": true, "text": super::TEST_TEXT}))
    }

    fn providers() -> &'static [ProviderSpec] {
        PROVIDERS
    }

    fn build(
        host: &HostProviders,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        match integration.provider.as_str() {
            "webhook" => {
                let secret =
                    secrets.get("signing_secret").ok_or("secret 'signing_secret' is not set")?;
                let key = WebhookSecret::parse(secret)?;
                Ok(Arc::new(WebhookProvider::new(key, host.webhook_timeout, host.networks.clone())))
            }
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const PROVIDERS: &[ProviderSpec] = &[ProviderSpec {
    id: "webhook",
    channel: super::Channel::Webhook,
    about: "Standard Webhooks: signed HTTPS POSTs.",
    robot: false,
    config: &[],
    secrets: &[required("signing_secret", SigningSecret, "Signs each payload.")],
}];
