//! Templates: the per-channel parts a notification is rendered from, their locale
//! variants, and the renderer. (Storage and the `/v1/templates` API build on this.)

mod folding;
mod format;
pub mod locale;
mod render;
mod sandbox;

pub use locale::{DEFAULT_LOCALE, fallback_chain, pick};
pub use render::{DEFAULT_MAX_PART_BYTES, Recipient, Renderer, TemplateError};
pub use sandbox::MAX_ITEMS;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailParts {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsParts {
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushParts {
    pub title: String,
    pub body: String,
    /// Key/value data delivered with the push; values are templates too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatParts {
    pub markdown: String,
}

/// One locale variant of a template: what each channel gets. Every string is a
/// minijinja template; in `webhook`, every string leaf of the JSON is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateParts {
    #[serde(
        deserialize_with = "crate::objects::optional_object",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<EmailParts>,
    #[serde(
        deserialize_with = "crate::objects::optional_object",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sms: Option<SmsParts>,
    #[serde(
        deserialize_with = "crate::objects::optional_object",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub push: Option<PushParts>,
    #[serde(
        deserialize_with = "crate::objects::optional_object",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub chat: Option<ChatParts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub webhook: Option<Value>,
}

/// Every template string of a JSON value with its path (`webhook.order.id`).
fn json_sources(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.push((path.to_owned(), text.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                json_sources(&format!("{path}[{i}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                json_sources(&format!("{path}.{key}"), item, out);
            }
        }
        _ => {}
    }
}

fn map_json<E>(
    path: &str,
    value: &Value,
    render: &mut impl FnMut(&str, &str) -> Result<String, E>,
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

impl TemplateParts {
    /// The part one channel uses (push and chat wait for their channels).
    pub fn only(self, channel: crate::domain::Channel) -> TemplateParts {
        use crate::domain::Channel;
        match channel {
            Channel::Email => TemplateParts { email: self.email, ..Default::default() },
            Channel::Sms => TemplateParts { sms: self.sms, ..Default::default() },
            Channel::Webhook => TemplateParts { webhook: self.webhook, ..Default::default() },
        }
    }

    /// Every template string, named by where it sits (`email.html`, `push.data.url`).
    pub fn sources(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(email) = &self.email {
            out.push(("email.subject".to_owned(), email.subject.clone()));
            out.extend(email.text.clone().map(|t| ("email.text".to_owned(), t)));
            out.extend(email.html.clone().map(|t| ("email.html".to_owned(), t)));
        }
        if let Some(sms) = &self.sms {
            out.push(("sms.text".to_owned(), sms.text.clone()));
        }
        if let Some(push) = &self.push {
            out.push(("push.title".to_owned(), push.title.clone()));
            out.push(("push.body".to_owned(), push.body.clone()));
            for (key, value) in &push.data {
                out.push((format!("push.data.{key}"), value.clone()));
            }
        }
        if let Some(chat) = &self.chat {
            out.push(("chat.markdown".to_owned(), chat.markdown.clone()));
        }
        if let Some(webhook) = &self.webhook {
            json_sources("webhook", webhook, &mut out);
        }
        out
    }

    /// The same parts with every template string replaced by `render(name, source)`.
    pub fn try_map<E>(
        &self,
        mut render: impl FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<TemplateParts, E> {
        let email = match &self.email {
            Some(e) => Some(EmailParts {
                subject: render("email.subject", &e.subject)?,
                text: e.text.as_ref().map(|t| render("email.text", t)).transpose()?,
                html: e.html.as_ref().map(|t| render("email.html", t)).transpose()?,
            }),
            None => None,
        };
        let sms = match &self.sms {
            Some(s) => Some(SmsParts { text: render("sms.text", &s.text)? }),
            None => None,
        };
        let push = match &self.push {
            Some(p) => Some(PushParts {
                title: render("push.title", &p.title)?,
                body: render("push.body", &p.body)?,
                data: p
                    .data
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), render(&format!("push.data.{k}"), v)?)))
                    .collect::<Result<_, E>>()?,
            }),
            None => None,
        };
        let chat = match &self.chat {
            Some(c) => Some(ChatParts { markdown: render("chat.markdown", &c.markdown)? }),
            None => None,
        };
        let webhook = match &self.webhook {
            Some(w) => Some(map_json("webhook", w, &mut render)?),
            None => None,
        };
        Ok(TemplateParts { email, sms, push, chat, webhook })
    }
}

/// A template: a name for the caller, and its versions. Versions never change once
/// published; `latest_version` is what a send without a pinned version gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    /// The caller's own key (`order-shipped`), unique within the app.
    pub id: String,
    #[serde(skip)]
    pub app_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub latest_version: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One immutable version: the parts for each locale (`default` always present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateVersion {
    pub template_id: String,
    pub version: u32,
    pub locales: BTreeMap<String, TemplateParts>,
    /// Why it exists, when not a plain edit (`rollback to version 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl TemplateVersion {
    /// The parts for `locale`: each channel's part from the most specific variant in
    /// the fallback chain that has it (a `de` variant with only SMS still gets the
    /// default email). Returns the most specific variant used, a name for the mix (for
    /// the compile cache) and the parts.
    pub fn for_locale(&self, locale: Option<&str>) -> Option<(String, String, TemplateParts)> {
        let chain: Vec<&String> = fallback_chain(locale)
            .iter()
            .filter_map(|wanted| self.locales.keys().find(|k| k.eq_ignore_ascii_case(wanted)))
            .collect();
        let primary = (*chain.first()?).clone();
        let mut used = Vec::new();
        let mut pick_part = |has: &dyn Fn(&TemplateParts) -> bool| {
            let found = chain.iter().find(|name| has(&self.locales[name.as_str()]))?;
            if !used.contains(found) {
                used.push(*found);
            }
            Some(&self.locales[found.as_str()])
        };
        let parts = TemplateParts {
            email: pick_part(&|p| p.email.is_some()).and_then(|p| p.email.clone()),
            sms: pick_part(&|p| p.sms.is_some()).and_then(|p| p.sms.clone()),
            push: pick_part(&|p| p.push.is_some()).and_then(|p| p.push.clone()),
            chat: pick_part(&|p| p.chat.is_some()).and_then(|p| p.chat.clone()),
            webhook: pick_part(&|p| p.webhook.is_some()).and_then(|p| p.webhook.clone()),
        };
        let mix = used.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("+");
        Some((primary, mix, parts))
    }
}

/// Renders `version` for `recipient`: the locale variant their locale falls back to,
/// with `data`. Returns the variant's name and the rendered parts.
pub fn render_for(
    renderer: &Renderer,
    version: &TemplateVersion,
    recipient: &Recipient,
    data: &Value,
) -> Result<(String, TemplateParts), TemplateError> {
    render_channels(renderer, version, recipient, data, None)
}

/// As `render_for`, but only `channel`'s part when one is named (what one delivery
/// needs).
pub fn render_channels(
    renderer: &Renderer,
    version: &TemplateVersion,
    recipient: &Recipient,
    data: &Value,
    channel: Option<crate::domain::Channel>,
) -> Result<(String, TemplateParts), TemplateError> {
    let (variant, _, mut parts) =
        version.for_locale(recipient.locale.as_deref()).ok_or_else(|| TemplateError::Render {
            part: "locale".into(),
            message: "the template has no variant for it".into(),
        })?;
    if let Some(channel) = channel {
        parts = parts.only(channel);
    }
    let rendered = renderer.render(&parts, data, recipient)?;
    Ok((variant, rendered))
}

impl From<TemplateParts> for crate::domain::Content {
    /// The parts a notification carries today (push and chat wait for their channels).
    fn from(parts: TemplateParts) -> Self {
        use crate::domain::{EmailContent, SmsContent};
        crate::domain::Content {
            email: parts.email.map(|e| EmailContent {
                subject: e.subject,
                text: e.text,
                html: e.html,
            }),
            sms: parts.sms.map(|s| SmsContent { text: s.text }),
            webhook: parts.webhook,
        }
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
