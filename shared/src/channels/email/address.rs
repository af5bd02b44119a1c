//! An email address: the same type a recipient (`to[i].email`) and a user profile
//! carry, and where an email delivery goes.

use crate::domain::contact::{InvalidContact, redact, string_newtype};
use serde::{Deserialize, Serialize};

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

impl utoipa::PartialSchema for EmailAddress {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(254))
            .examples(["ann@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for EmailAddress {}

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
}
