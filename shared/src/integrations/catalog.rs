//! The providers an integration may name, with the fields each takes (each channel's
//! unit lists its own). The catalog is the same on every host, so the API validates an integration it cannot send through
//! itself (an `smtp` integration saved on AWS fails over at send time, with a reason).

use crate::domain::Channel;
use FieldKind::{Integer, Mailbox, OneOf, Port, SigningSecret, Url};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// What a field's value must be.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "type", content = "values")]
pub enum FieldKind {
    Text,
    /// A TCP port, 1 to 65535.
    Port,
    /// An email address with an optional display name (`Herald <no-reply@example.com>`).
    Mailbox,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
    /// A Standard Webhooks signing secret (`whsec_` and base64 of 24 to 64 bytes).
    SigningSecret,
    /// An http(s) URL on a network the installation permits (a vendor's API host).
    Url,
    /// A whole number (a vendor's agent or app id).
    Integer,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct FieldSpec {
    pub name: &'static str,
    pub required: bool,
    #[serde(flatten)]
    pub kind: FieldKind,
    pub about: &'static str,
}

pub(crate) const fn required(
    name: &'static str,
    kind: FieldKind,
    about: &'static str,
) -> FieldSpec {
    FieldSpec { name, required: true, kind, about }
}

pub(crate) const fn optional(
    name: &'static str,
    kind: FieldKind,
    about: &'static str,
) -> FieldSpec {
    FieldSpec { name, required: false, kind, about }
}

/// One provider: its id, its channel, and the fields of its `config` (returned as
/// stored) and `secrets` (write-only).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ProviderSpec {
    pub id: &'static str,
    pub channel: Channel,
    pub about: &'static str,
    /// A group robot: recipients name the integration (`{"robot": "<name>"}`); other
    /// providers reach users by their ids.
    pub robot: bool,
    pub config: &'static [FieldSpec],
    pub secrets: &'static [FieldSpec],
}

/// The log provider: any channel (listed under email, the first).
const LOG: ProviderSpec = ProviderSpec {
    id: "log",
    channel: Channel::Email,
    about: "Records what would be sent (GET /v1/log-messages); any channel.",
    robot: false,
    config: &[],
    secrets: &[],
};

/// Every provider, from each channel's unit, then the log provider.
pub fn providers() -> impl Iterator<Item = &'static ProviderSpec> {
    Channel::ALL.into_iter().flat_map(Channel::providers).chain(std::iter::once(&LOG))
}

pub fn spec(id: &str) -> Option<&'static ProviderSpec> {
    providers().find(|p| p.id == id)
}

impl ProviderSpec {
    /// Whether this provider can carry `channel` (the log provider carries any).
    pub fn serves(&self, channel: Channel) -> bool {
        self.id == "log" || self.channel == channel
    }
}

/// A field that failed validation: its path in the request and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

fn field_error(path: String, message: impl Into<String>) -> FieldError {
    FieldError { path, message: message.into() }
}

/// Checks `values` (the `config` or `secrets` object) against `fields`: every required
/// field present, no unknown one, each of the right kind. With `partial`, missing
/// required fields are allowed (an update that keeps stored secrets).
pub fn check_fields(
    section: &str,
    fields: &[FieldSpec],
    values: &Map<String, Value>,
    partial: bool,
) -> Result<(), FieldError> {
    for name in values.keys() {
        if !fields.iter().any(|f| f.name == name) {
            let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
            let expected = if known.is_empty() { "none".into() } else { known.join(", ") };
            return Err(field_error(
                format!("{section}.{name}"),
                format!("unknown field (expected: {expected})"),
            ));
        }
    }
    for field in fields {
        let path = format!("{section}.{}", field.name);
        match values.get(field.name) {
            None | Some(Value::Null) if field.required && !partial => {
                return Err(field_error(path, "is required"));
            }
            None | Some(Value::Null) => {}
            Some(value) => check_kind(field.kind, value).map_err(|m| field_error(path, m))?,
        }
    }
    Ok(())
}

fn check_kind(kind: FieldKind, value: &Value) -> Result<(), String> {
    let text = match (kind, value) {
        (Port, Value::Number(n)) => {
            return match n.as_u64() {
                Some(1..=65535) => Ok(()),
                _ => Err("must be a port from 1 to 65535".into()),
            };
        }
        (Port, _) => return Err("must be a number".into()),
        (Integer, Value::Number(n)) if n.is_i64() => return Ok(()),
        (Integer, _) => return Err("must be a whole number".into()),
        (_, Value::String(text)) => text,
        _ => return Err("must be a string".into()),
    };
    if text.trim().is_empty() || text.len() > 2048 {
        return Err("must be 1 to 2048 characters".into());
    }
    match kind {
        OneOf(words) if !words.contains(&text.as_str()) => {
            Err(format!("must be one of: {}", words.join(", ")))
        }
        Mailbox if !looks_like_mailbox(text) => Err("must be an email address".into()),
        SigningSecret => crate::channels::WebhookSecret::parse(text).map(|_| ()),
        Url => check_url(text),
        _ => Ok(()),
    }
}

/// An http(s) URL that the network policy lets Herald reach.
fn check_url(text: &str) -> Result<(), String> {
    crate::channels::chat::http::vendor_url(text, crate::net::policy()).map(|_| ())
}

/// `a@b.c` or `Name <a@b.c>`; the SMTP and SES providers parse it fully.
fn looks_like_mailbox(text: &str) -> bool {
    let address = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => text,
    };
    address.parse::<email_address::EmailAddress>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let smtp = spec("smtp").unwrap();
        let error = check_fields("config", smtp.config, &object(json!({"host": "mx"})), false);
        assert_eq!(error.unwrap_err().path, "config.from");
    }

    #[test]
    fn unknown_fields_and_wrong_kinds_are_refused() {
        let smtp = spec("smtp").unwrap();
        let config = object(json!({"host": "mx", "from": "a@b.example", "hots": 1}));
        assert_eq!(
            check_fields("config", smtp.config, &config, false).unwrap_err().path,
            "config.hots"
        );
        let config = object(json!({"host": "mx", "from": "a@b.example", "port": 70000}));
        assert!(check_fields("config", smtp.config, &config, false).is_err());
        let config = object(json!({"host": "mx", "from": "Herald <a@b.example>", "tls": "tls"}));
        assert!(check_fields("config", smtp.config, &config, false).is_ok());
        let config = object(json!({"host": "mx", "from": "nobody"}));
        assert_eq!(
            check_fields("config", smtp.config, &config, false).unwrap_err().path,
            "config.from"
        );
    }

    #[test]
    fn a_partial_update_may_leave_required_secrets_out() {
        let webhook = spec("webhook").unwrap();
        assert!(check_fields("secrets", webhook.secrets, &Map::new(), true).is_ok());
        assert!(check_fields("secrets", webhook.secrets, &Map::new(), false).is_err());
    }
}
