//! One text form for times in storage and on the wire: RFC 3339, UTC, milliseconds.
//! Fixed width, so stored times compare correctly as text.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}
