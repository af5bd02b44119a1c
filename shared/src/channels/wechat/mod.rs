//! WeChat Official Accounts (公众号): template messages to followers and subscribe
//! messages to users who accepted them, by the user's openid. The account's app id and
//! secret get a token from `stable_token` (never the legacy `token` call, which
//! invalidates the token every other instance holds).

pub mod callback;
mod oa;

use super::chat::ChatTarget;
use super::registry::TemplateText;
use super::unit::{ChannelUnit, JsonShape, Report};
use super::{HostProviders, Provider};
use crate::domain::UserProfile;
use crate::integrations::catalog::{FieldKind::*, optional, required};
use crate::integrations::{Integration, ProviderSpec, SecretValues};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

pub const HOST: &str = "https://api.weixin.qq.com";

/// A template (or subscribe) message: the account's approved template and its values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WechatContent {
    /// The template's id in the account (`template_id`).
    pub template_id: String,
    /// The template's fields (`thing1`, `time2`, …) and their values.
    pub data: BTreeMap<String, String>,
    /// Where a tap leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A mini program page to open instead of `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgram>,
    /// Send as a subscribe message (`subscribe/bizsend`), which needs the user's
    /// consent per template, instead of a template message to a follower.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subscribe: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MiniProgram {
    pub appid: String,
    #[serde(default)]
    pub pagepath: String,
}

impl JsonShape for WechatContent {
    const OBJECT: bool = true;
}

impl TemplateText for WechatContent {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        let mut data = BTreeMap::new();
        for (field, value) in &self.data {
            data.insert(field.clone(), render(&format!("{path}.data.{field}"), value)?);
        }
        let url = match &self.url {
            Some(url) => Some(render(&format!("{path}.url"), url)?),
            None => None,
        };
        Ok(WechatContent { data, url, ..self.clone() })
    }
}

pub struct Wechat;

impl ChannelUnit for Wechat {
    type Content = WechatContent;
    type Target = ChatTarget;
    type Address = ChatTarget;

    fn validate(content: &WechatContent, path: &str, report: Report<'_>) {
        if content.template_id.trim().is_empty() || content.template_id.len() > 128 {
            report(format!("{path}.template_id"), "must be 1 to 128 characters".into());
        }
        if content.data.is_empty() || content.data.len() > 20 {
            report(format!("{path}.data"), "must hold 1 to 20 fields".into());
        }
        for (field, value) in &content.data {
            // Template values are short: 20 characters for thing*, 200 bytes is a bound.
            if value.len() > 200 {
                report(format!("{path}.data.{field}"), "must be at most 200 bytes".into());
            }
        }
        if let Some(url) = &content.url
            && !url.starts_with("https://")
            && !url.starts_with("http://")
        {
            report(format!("{path}.url"), "must be an http(s) URL".into());
        }
    }

    fn check_target(target: &ChatTarget, path: &str, report: Report<'_>) {
        target.check(path, report);
    }

    fn address(target: &ChatTarget) -> ChatTarget {
        target.clone()
    }

    fn from_profile(profile: &UserProfile) -> Option<ChatTarget> {
        profile.chat.wechat.clone().map(ChatTarget::Id)
    }

    fn redact(address: &ChatTarget) -> String {
        address.redacted()
    }

    fn test_content() -> WechatContent {
        WechatContent {
            template_id: "test".into(),
            data: BTreeMap::from([("thing1".into(), super::TEST_TEXT.into())]),
            ..Default::default()
        }
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
            "wechat_oa" => {
                let base = super::chat::http::base_url(&integration.config, HOST, &host.networks)?;
                let client = super::chat::http::client(&host.networks, host.webhook_timeout);
                Ok(Arc::new(oa::OfficialAccount::new(
                    client,
                    base,
                    integration,
                    secrets,
                    host.tokens.clone(),
                )?))
            }
            other => Err(super::not_on_this_host(other)),
        }
    }
}

const PROVIDERS: &[ProviderSpec] = &[ProviderSpec {
    id: "wechat_oa",
    channel: super::Channel::Wechat,
    about: "A WeChat Official Account (service account): template messages to followers, \
            subscribe messages to users who accepted them, by openid.",
    robot: false,
    config: &[
        required("app_id", Text, "The account's AppID (wx…)."),
        optional(
            "base_url",
            Url,
            "The API host (https://api.weixin.qq.com); tests point it at a fake.",
        ),
    ],
    secrets: &[
        required("app_secret", Text, "The account's AppSecret."),
        optional("callback_token", Text, "The Token of the account's server URL (callbacks)."),
    ],
}];
