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

pub use crate::channels::TemplateParts;
use crate::channels::TemplateText;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

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

impl TemplateText for PushParts {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        Ok(PushParts {
            title: render(&format!("{path}.title"), &self.title)?,
            body: render(&format!("{path}.body"), &self.body)?,
            data: self
                .data
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(&format!("{path}.data.{k}"), v)?)))
                .collect::<Result<_, E>>()?,
        })
    }
}

impl TemplateText for ChatParts {
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E> {
        Ok(ChatParts { markdown: render(&format!("{path}.markdown"), &self.markdown)? })
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
        let variants: Vec<&TemplateParts> =
            chain.iter().map(|name| &self.locales[name.as_str()]).collect();
        let mut used = Vec::new();
        let parts = TemplateParts::merge(&variants, &mut used);
        used.sort_unstable();
        let used: Vec<&String> = used.into_iter().map(|i| chain[i]).collect();
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

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
