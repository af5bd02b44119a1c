//! A phone number: the same type a recipient (`to[i].phone`) and a user profile
//! carry, and where an SMS delivery goes.

use crate::domain::contact::{InvalidContact, string_newtype};
use serde::{Deserialize, Serialize};

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

impl PhoneNumber {
    /// The country code and the last two digits, for logs.
    pub fn redacted(&self) -> String {
        let s = self.as_str();
        format!("{}***{}", &s[..3.min(s.len())], &s[s.len().saturating_sub(2)..])
    }
}

impl utoipa::PartialSchema for PhoneNumber {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("E.164: `+`, the country code and the number."))
            .max_length(Some(16))
            .examples(["+14155552671"])
            .into()
    }
}

impl utoipa::ToSchema for PhoneNumber {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert!(PhoneNumber::parse("+14155552671").is_ok());
        assert!(PhoneNumber::parse("+8613800138000").is_ok());
        for bad in ["14155552671", "+1 415 555 2671", "+0123456", "+1415555267123456", "+1"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
