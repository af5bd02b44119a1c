//! Dates and numbers the way a recipient's locale writes them, in their time zone: the
//! `datetime`, `date`, `time` and `number` template filters. Covers the separators and
//! date orders of the common locales in a small table; a locale not in it gets the
//! international forms (ISO dates, `1,234.5`).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Separators (grouping, decimal) and date/time patterns for a language.
struct LocaleForms {
    group: &'static str,
    decimal: &'static str,
    date: &'static str,
    time: &'static str,
}

fn forms(locale: &str) -> LocaleForms {
    let locale = locale.to_ascii_lowercase();
    let language = locale.split(['-', '_']).next().unwrap_or("");
    let region = locale.split(['-', '_']).nth(1).unwrap_or("");
    match (language, region) {
        ("en", "us") | ("en", "") => {
            LocaleForms { group: ",", decimal: ".", date: "%b %-d, %Y", time: "%-I:%M %p" }
        }
        ("en", _) => LocaleForms { group: ",", decimal: ".", date: "%-d %b %Y", time: "%H:%M" },
        ("de", "ch") => {
            LocaleForms { group: "\u{2019}", decimal: ".", date: "%d.%m.%Y", time: "%H:%M" }
        }
        ("de" | "da" | "nl" | "id" | "tr", _) => {
            LocaleForms { group: ".", decimal: ",", date: "%d.%m.%Y", time: "%H:%M" }
        }
        ("es" | "it" | "pt", _) => {
            LocaleForms { group: ".", decimal: ",", date: "%d/%m/%Y", time: "%H:%M" }
        }
        ("fr", _) => {
            LocaleForms { group: "\u{202f}", decimal: ",", date: "%d/%m/%Y", time: "%H:%M" }
        }
        ("ru" | "pl" | "cs" | "sv" | "nb" | "fi" | "uk", _) => {
            LocaleForms { group: "\u{a0}", decimal: ",", date: "%d.%m.%Y", time: "%H:%M" }
        }
        ("zh" | "ja", _) => {
            LocaleForms { group: ",", decimal: ".", date: "%Y/%m/%d", time: "%H:%M" }
        }
        ("ko", _) => LocaleForms { group: ",", decimal: ".", date: "%Y. %-m. %-d.", time: "%H:%M" },
        _ => LocaleForms { group: ",", decimal: ".", date: "%Y-%m-%d", time: "%H:%M" },
    }
}

/// `1234567.891` with 2 decimals in `de` → `1.234.567,89`.
pub fn number(value: f64, decimals: Option<usize>, locale: &str) -> String {
    let forms = forms(locale);
    let decimals = decimals.unwrap_or(if value.fract() == 0.0 { 0 } else { 2 });
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push_str(forms.group);
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c != '0' && c != '.') { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{}{fraction}", forms.decimal)
    }
}

/// Which part of a moment to show.
#[derive(Debug, Clone, Copy)]
pub enum Moment {
    Date,
    Time,
    DateTime,
}

/// `at` in `time_zone`, as `locale` writes a date, a time or both; `pattern` (strftime,
/// `%Y-%m-%d`) overrides the locale's form.
pub fn moment(
    at: DateTime<Utc>,
    what: Moment,
    pattern: Option<&str>,
    locale: &str,
    time_zone: Tz,
) -> String {
    let local = at.with_timezone(&time_zone);
    if let Some(pattern) = pattern {
        return local.format(pattern).to_string();
    }
    let forms = forms(locale);
    match what {
        Moment::Date => local.format(forms.date).to_string(),
        Moment::Time => local.format(forms.time).to_string(),
        Moment::DateTime => format!("{} {}", local.format(forms.date), local.format(forms.time)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_locale() {
        assert_eq!(number(1_234_567.891, Some(2), "en-US"), "1,234,567.89");
        assert_eq!(number(1_234_567.891, Some(2), "de-DE"), "1.234.567,89");
        assert_eq!(number(1_234_567.0, None, "fr"), "1\u{202f}234\u{202f}567");
        assert_eq!(number(-1234.5, None, "de-CH"), "-1\u{2019}234.50");
        assert_eq!(number(999.0, None, "xx"), "999");
    }

    #[test]
    fn moments_are_shown_in_the_recipients_zone() {
        let at = "2026-12-01T23:30:00Z".parse().unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(moment(at, Moment::Date, None, "ja", tokyo), "2026/12/02", "next day in Tokyo");
        assert_eq!(moment(at, Moment::DateTime, None, "de", berlin), "02.12.2026 00:30");
        assert_eq!(
            moment(at, Moment::DateTime, None, "en-US", chrono_tz::UTC),
            "Dec 1, 2026 11:30 PM"
        );
        assert_eq!(moment(at, Moment::Date, Some("%A"), "en", tokyo), "Wednesday");
    }
}
