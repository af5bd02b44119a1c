//! QQ through a OneBot v11 HTTP endpoint that the operator runs (NapCat, Lagrange and
//! similar bridges sign in as a QQ account). Tencent's official QQ bot API no longer
//! lets a bot message a user who did not just write to it (since April 2025), so it
//! cannot carry notifications; a bridge can, at the cost of running an unofficial
//! client whose account Tencent may restrict. docs/channels.md says so plainly.

mod onebot;

use super::chat::{self, ChatContent, Limits};
use super::unit::{ChannelUnit, Report};
use super::{HostProviders, Provider};
use crate::integrations::catalog::{FieldKind::*, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use std::sync::Arc;

/// QQ messages are at most about 4,500 characters; stay under in bytes.
const LIMITS: Limits = Limits { text: 4500, markdown: 4500 };

pub struct Qq;

impl ChannelUnit for Qq {
    chat::chat_unit_items!(qq);

    fn validate(content: &ChatContent, path: &str, report: Report<'_>) {
        chat::validate(content, path, &LIMITS, report);
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
            "onebot" => {
                let base = integration
                    .config
                    .get("base_url")
                    .and_then(serde_json::Value::as_str)
                    .ok_or("config 'base_url' is not set")?;
                let base = chat::http::base_url(&integration.config, base, &host.networks)?;
                let client = chat::http::client(&host.networks, host.webhook_timeout);
                Ok(Arc::new(onebot::OneBot::new(
                    client,
                    base,
                    secrets.get("access_token").cloned(),
                )))
            }
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const PROVIDERS: &[ProviderSpec] = &[ProviderSpec {
    id: "onebot",
    channel: super::Channel::Qq,
    about: "A OneBot v11 HTTP endpoint the operator runs (unofficial; see docs/channels.md): \
            private messages to a QQ number, group messages to group:<number>.",
    robot: false,
    config: &[required("base_url", Url, "The bridge's OneBot HTTP API (http://host:port).")],
    secrets: &[optional("access_token", Text, "The bridge's access token (Bearer).")],
}];
