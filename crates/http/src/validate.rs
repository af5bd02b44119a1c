//! Business rules for a send request, beyond what decoding already checked. All
//! problems are collected, so a client sees every one of them at once.

use super::problem::FieldError;
use chrono::{DateTime, Utc};
use herald_core::domain::{Channel, Content, Recipient};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_recipients: usize,
    /// Items of one batch accepted at once (the SQLite writer commits concurrent
    /// accepts together; on DynamoDB each is its own transaction).
    pub batch_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 256 * 1024, max_recipients: 1000, batch_in_flight: 16 }
    }
}

pub const MAX_CATEGORY: usize = 64;
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// How far ahead `expires_at` may be: a notification waits in queues, not in archives.
pub const MAX_EXPIRY: chrono::Duration = chrono::Duration::days(366);
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
}

pub fn recipients(errors: &mut Errors, to: &[Recipient], limits: &Limits) {
    if to.is_empty() {
        errors.add("to", "give at least one recipient");
    }
    if to.len() > limits.max_recipients {
        errors.add(
            "to",
            format!("at most {} recipients per request (got {})", limits.max_recipients, to.len()),
        );
    }
    for (i, recipient) in to.iter().enumerate() {
        if recipient.is_empty() {
            errors.add(format!("to[{i}]"), "a recipient needs an address, a user_id or a group");
        }
        if recipient.user_id.is_some() && recipient.group.is_some()
            || recipient.is_indirect() && recipient.has_address()
        {
            errors.add(format!("to[{i}]"), "give addresses, a user_id or a group, not several");
        }
        recipient.check(&format!("to[{i}]"), &mut |field, message| errors.add(field, message));
        for (field, id) in [("user_id", &recipient.user_id), ("group", &recipient.group)] {
            if id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 128) {
                errors.add(format!("to[{i}].{field}"), "1 to 128 characters");
            }
        }
    }
}

pub fn channels(errors: &mut Errors, channels: &[Channel], content: &Content) {
    if channels.is_empty() {
        errors.add("channels", "give at least one channel");
    }
    let mut seen = HashSet::new();
    for (i, channel) in channels.iter().enumerate() {
        if !seen.insert(channel) {
            errors.add(format!("channels[{i}]"), format!("'{channel}' is listed twice"));
        }
        if !content.has(*channel) {
            errors.add(
                format!("content.{channel}"),
                format!("channel '{channel}' is requested but has no content"),
            );
        }
    }
}

/// Each channel's own rules for its part (its unit's `validate`).
pub fn content(errors: &mut Errors, content: &Content) {
    content.validate(&mut |field, message| errors.add(field, message));
}

pub fn category(errors: &mut Errors, category: Option<&str>) {
    let Some(category) = category else { return };
    let plain = category
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
    if category.is_empty() || category.len() > MAX_CATEGORY || !plain {
        errors.add(
            "category",
            format!("1 to {MAX_CATEGORY} characters of a-z, 0-9, '_', '-' and '.'"),
        );
    }
}

pub fn expiry(errors: &mut Errors, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    if expires_at.is_some_and(|at| at <= now) {
        errors.add("expires_at", "must be in the future");
    }
    if expires_at.is_some_and(|at| at > now + MAX_EXPIRY) {
        errors.add("expires_at", "at most one year ahead");
    }
}

pub fn metadata(
    errors: &mut Errors,
    metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) {
    let size = metadata.map(|m| serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX));
    if size.is_some_and(|s| s > MAX_METADATA_BYTES) {
        errors.add("metadata", format!("at most {MAX_METADATA_BYTES} bytes of JSON"));
    }
}

/// Printable ASCII, 1 to 255 characters (the same rule as the leading services).
pub fn idempotency_key(key: &str) -> Result<(), String> {
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
        return Err(format!("1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, no spaces"));
    }
    Ok(())
}
