//! Validated contact data. Each type can only be built through `parse`, so any value of
//! it in the program is known to be well formed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidContact(pub String);

/// A validated string type: `parse` builds it, serde goes through `parse`, and
/// `Debug` masks it (contact data must not reach logs in full).
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        /// Debug output is masked: contact data must not reach logs in full.
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), $crate::domain::contact::mask(&self.0))
            }
        }
        impl TryFrom<String> for $name {
            type Error = $crate::domain::contact::InvalidContact;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}
pub(crate) use string_newtype;

/// An absolute http or https URL with a host, at most 2,048 characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(String);
string_newtype!(WebhookUrl);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, InvalidContact> {
        if text.len() > 2048 {
            return Err(InvalidContact("URL is longer than 2048 characters".into()));
        }
        let url =
            url::Url::parse(text).map_err(|e| InvalidContact(format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidContact("URL must use http or https".into()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidContact("URL must have a host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidContact("URL must not carry credentials".into()));
        }
        // A host name as DNS has them (RFC 1123): labels of letters, digits and inner
        // hyphens, so what the URL says is what the resolver is asked.
        if let Some(url::Host::Domain(name)) = url.host() {
            let label_ok = |label: &str| {
                (1..=63).contains(&label.len())
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            };
            if !name.trim_end_matches('.').split('.').all(label_ok) {
                return Err(InvalidContact(format!("'{name}' is not a valid host name")));
            }
        }
        // Checked again as stored: escaping can lengthen it, and a stored URL over the
        // limit would make its record unreadable.
        let normalized = url.to_string();
        let bytes = normalized.as_bytes();
        let stray_percent = bytes.iter().enumerate().any(|(i, b)| {
            *b == b'%'
                && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        });
        if stray_percent {
            return Err(InvalidContact("a '%' in a URL starts an escape such as %20".into()));
        }
        if normalized.len() > 2048 {
            return Err(InvalidContact("URL is longer than 2048 characters once escaped".into()));
        }
        Ok(Self(normalized))
    }
}

pub(crate) fn mask(text: &str) -> String {
    if text.contains('@') {
        return redact(text);
    }
    let keep: String = text.chars().take(8).collect();
    format!("{keep}…")
}

pub(crate) fn redact(text: &str) -> String {
    match text.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_escaping_lengthens_past_the_limit_is_refused() {
        let url = format!("https://example.com/{}", "é".repeat(1000));
        assert!(url.len() <= 2048);
        assert!(WebhookUrl::parse(&url).is_err());
    }

    #[test]
    fn urls() {
        assert!(WebhookUrl::parse("https://example.com/hook").is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/x").is_ok());
        for bad in ["ftp://example.com", "not a url", "https://user:pw@example.com/", "/relative"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
