//! One text form for times in storage and on the wire: RFC 3339, UTC, milliseconds.
//! Fixed width, so stored times compare correctly as text.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// Where "now" comes from, so tests can move time instead of waiting for it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    at: std::sync::Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self { at: std::sync::Mutex::new(at) }
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut at = self.at.lock().expect("clock");
        *at += chrono::Duration::from_std(by).expect("a short step");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.at.lock().expect("clock")
    }
}
