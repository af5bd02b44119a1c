//! Validated contact data. Each type can only be built through `parse`, so any value of
//! it in the program is known to be well formed.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidContact(pub String);

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        /// Debug output is masked: contact data must not reach logs in full.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), mask(&self.0))
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidContact;
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

/// An email address as RFC 5322 `addr-spec`, at most 254 characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);
string_newtype!(EmailAddress);

impl EmailAddress {
    pub fn parse(text: &str) -> Result<Self, InvalidContact> {
        let text = text.trim();
        if text.len() > 254 {
            return Err(InvalidContact("email address is longer than 254 characters".into()));
        }
        if !email_address::EmailAddress::is_valid(text) || !text.contains('@') {
            return Err(InvalidContact(format!("'{}' is not a valid email address", redact(text))));
        }
        // Display names ("Ann <ann@example.com>") are accepted by the parser; Herald
        // wants the bare address.
        if text.contains('<') || text.contains(' ') {
            return Err(InvalidContact("give the bare address, without a display name".into()));
        }
        // Mail goes to a domain on the internet: not to a bare host (`a@b`) or an
        // address literal (`a@[127.0.0.1]`).
        let domain = text.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.starts_with('[') || !domain.contains('.') || domain.ends_with('.') {
            return Err(InvalidContact(format!(
                "'{}' needs a domain name such as example.com",
                redact(text)
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// The address with the local part masked, for logs.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// A phone number in E.164 form (`+` and up to 15 digits), checked against the
/// numbering plan of its country.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);
string_newtype!(PhoneNumber);

impl PhoneNumber {
    pub fn parse(text: &str) -> Result<Self, InvalidContact> {
        let text = text.trim();
        let shaped = text.len() <= 16
            && text.starts_with('+')
            && text[1..].chars().all(|c| c.is_ascii_digit())
            && !text[1..].starts_with('0');
        if !shaped {
            return Err(InvalidContact(
                "phone numbers must be in E.164 form, e.g. +14155550123".into(),
            ));
        }
        let parsed = phonenumber::parse(None, text)
            .map_err(|_| InvalidContact("not a valid E.164 phone number".into()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(InvalidContact("not a valid phone number for its country".into()));
        }
        Ok(Self(text.to_owned()))
    }
}

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

fn mask(text: &str) -> String {
    if text.contains('@') {
        return redact(text);
    }
    let keep: String = text.chars().take(8).collect();
    format!("{keep}…")
}

fn redact(text: &str) -> String {
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
    fn emails() {
        assert!(EmailAddress::parse("ann@example.com").is_ok());
        assert!(EmailAddress::parse("ann.b+tag@mail.example.co.uk").is_ok());
        for bad in ["", "ann", "ann@", "@example.com", "Ann <ann@example.com>", "a b@c.d"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
        assert_eq!(EmailAddress::parse("ann@example.com").unwrap().redacted(), "a***@example.com");
    }

    #[test]
    fn phones() {
        assert!(PhoneNumber::parse("+14155552671").is_ok());
        assert!(PhoneNumber::parse("+8613800138000").is_ok());
        for bad in ["14155552671", "+1 415 555 2671", "+0123456", "+1415555267123456", "+1"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

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
