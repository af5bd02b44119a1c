//! Preferences: what a user wants to receive (per category and channel, quiet hours,
//! frequency caps, a global unsubscribe) and the app's defaults per category. The
//! verdict for one delivery is a pure function of them, so dispatch stays a planner.

use super::notification::{Channel, Priority};
use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One user's choices. Everything is optional: an empty value means "the app's
/// defaults".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Receive nothing but critical categories (what a one-click unsubscribe without
    /// a category sets).
    #[serde(default)]
    pub unsubscribed: bool,
    /// Per category: on or off, and per channel.
    #[serde(
        deserialize_with = "crate::objects::object_values",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub categories: BTreeMap<String, CategoryChoice>,
    #[serde(
        deserialize_with = "crate::objects::optional_object",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub quiet_hours: Option<QuietHours>,
    #[serde(
        deserialize_with = "crate::objects::objects",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub frequency_caps: Vec<FrequencyCap>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryChoice {
    /// On or off for every channel, unless `channels` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<Channel, bool>,
}

/// A daily window (`22:00` to `07:00` may cross midnight) in the user's time zone, or
/// in `time_zone` when given. Non-critical, non-high-priority messages wait for its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    #[schema(value_type = String, example = "22:00")]
    pub start: ClockTime,
    #[schema(value_type = String, example = "07:00")]
    pub end: ClockTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// At most `limit` messages of `category` per `period` (on `channel`, or on each
/// channel when none is named).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(deserialize_with = "crate::objects::whole_number")]
    pub limit: u32,
    pub period: Period,
}

/// Caps count in fixed windows: clock hours and days in UTC, ISO weeks from Monday
/// 00:00 UTC. Fixed windows are what a conditional counter can enforce atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
    Week,
}

impl Period {
    fn seconds(self) -> i64 {
        match self {
            Period::Hour => 3600,
            Period::Day => 86_400,
            Period::Week => 7 * 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    /// The start of the window `at` falls in.
    pub fn window_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        // 1970-01-05 was a Monday: weeks count from there.
        let offset = if self == Period::Week { 4 * 86_400 } else { 0 };
        let secs = at.timestamp() - offset;
        let start = secs - secs.rem_euclid(self.seconds()) + offset;
        DateTime::from_timestamp(start, 0).unwrap_or(at)
    }

    pub fn window_end(self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.window_start(at) + Duration::seconds(self.seconds())
    }
}

/// A time of day written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockTime(pub NaiveTime);

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.format("%H:%M").to_string())
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(&text, "%H:%M")
            .map(ClockTime)
            .map_err(|_| serde::de::Error::custom(format!("'{text}' is not a time as HH:MM")))
    }
}

/// The app's settings for one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CategorySettings {
    pub name: String,
    #[serde(skip)]
    pub app_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// OTPs, security alerts: sent despite opt-outs, unsubscribes and quiet hours.
    pub critical: bool,
    /// Whether users who said nothing receive it (false: they must opt in).
    pub enabled_by_default: bool,
    /// Per-channel defaults, for users who said nothing about the channel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<Channel, bool>,
    /// A cap for every user on each channel, unless their own caps say otherwise.
    #[serde(
        deserialize_with = "crate::objects::optional_object",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub frequency_cap: Option<CategoryCap>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryCap {
    #[serde(deserialize_with = "crate::objects::whole_number")]
    pub limit: u32,
    pub period: Period,
}

/// What preferences say about one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send, at once or not before `after` (the end of quiet hours).
    Send {
        after: Option<DateTime<Utc>>,
    },
    OptedOut,
}

/// A delivery's circumstances, as preferences see them.
#[derive(Debug, Clone, Copy)]
pub struct Circumstances<'a> {
    pub category: Option<&'a str>,
    pub settings: Option<&'a CategorySettings>,
    pub channel: Channel,
    pub priority: Priority,
    /// The user's own time zone (UTC when they have none).
    pub user_zone: Tz,
    pub now: DateTime<Utc>,
}

impl Preferences {
    /// Opt-outs and quiet hours; frequency caps need a counter and are checked after.
    pub fn verdict(&self, c: &Circumstances<'_>) -> Verdict {
        if c.settings.is_some_and(|s| s.critical) {
            return Verdict::Send { after: None };
        }
        if !self.allows(c) {
            return Verdict::OptedOut;
        }
        let after = match &self.quiet_hours {
            Some(quiet) if c.priority != Priority::High => quiet.end_if_inside(c.now, c.user_zone),
            _ => None,
        };
        Verdict::Send { after }
    }

    /// Whether the user takes this message at all (opt-outs and unsubscribes; critical
    /// categories always).
    pub fn allows(&self, c: &Circumstances<'_>) -> bool {
        c.settings.is_some_and(|s| s.critical) || (!self.unsubscribed && self.wants(c))
    }

    /// The most specific choice wins: the user's for the channel, the user's for the
    /// category, the app's for the channel, the app's for the category.
    fn wants(&self, c: &Circumstances<'_>) -> bool {
        let choice = c.category.and_then(|name| self.categories.get(name));
        choice
            .and_then(|ch| ch.channels.get(&c.channel).copied())
            .or_else(|| choice.and_then(|ch| ch.enabled))
            .or_else(|| c.settings.and_then(|s| s.channels.get(&c.channel).copied()))
            .or_else(|| c.settings.map(|s| s.enabled_by_default))
            .unwrap_or(true)
    }

    /// The cap on `channel` for `category`: the user's own (one naming the channel
    /// before one for every channel), else the app's for the category.
    pub fn cap(
        &self,
        category: &str,
        channel: Channel,
        settings: Option<&CategorySettings>,
    ) -> Option<CategoryCap> {
        let own = |named: bool| {
            self.frequency_caps.iter().find(|cap| {
                cap.category == category
                    && if named { cap.channel == Some(channel) } else { cap.channel.is_none() }
            })
        };
        own(true)
            .or_else(|| own(false))
            .map(|cap| CategoryCap { limit: cap.limit, period: cap.period })
            .or_else(|| settings.and_then(|s| s.frequency_cap))
    }

    /// The checks serde cannot make, as (field, message) pairs.
    pub fn problems(&self, valid_category: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for name in self.categories.keys() {
            if !valid_category(name) {
                errors.push((format!("categories.{name}"), "not a valid category name".into()));
            }
        }
        if let Some(quiet) = &self.quiet_hours {
            if quiet.start == quiet.end {
                errors.push(("quiet_hours.end".into(), "must differ from start".into()));
            }
            if quiet.time_zone.as_ref().is_some_and(|z| z.parse::<Tz>().is_err()) {
                errors.push(("quiet_hours.time_zone".into(), "not an IANA time zone".into()));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, cap) in self.frequency_caps.iter().enumerate() {
            if !valid_category(&cap.category) {
                errors.push((format!("frequency_caps[{i}].category"), "not a valid name".into()));
            }
            if cap.limit == 0 || cap.limit > MAX_CAP {
                errors.push((format!("frequency_caps[{i}].limit"), format!("1 to {MAX_CAP}")));
            }
            if !seen.insert((&cap.category, cap.channel)) {
                let message = "a second cap for the same category and channel";
                errors.push((format!("frequency_caps[{i}]"), message.into()));
            }
        }
        errors
    }
}

/// The largest cap: a counter holds the delivery ids it counted.
pub const MAX_CAP: u32 = 1000;

impl QuietHours {
    /// When the window `now` falls in ends, or None outside the window.
    pub fn end_if_inside(&self, now: DateTime<Utc>, user_zone: Tz) -> Option<DateTime<Utc>> {
        let zone = self.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(user_zone);
        let local = now.with_timezone(&zone);
        let time = local.time();
        let (start, end) = (self.start.0, self.end.0);
        let end_day = if start < end {
            if time < start || time >= end {
                return None;
            }
            local.date_naive()
        } else if time >= start {
            local.date_naive().succ_opt()?
        } else if time < end {
            local.date_naive()
        } else {
            return None;
        };
        let end_local = end_day.and_time(end);
        match zone.from_local_datetime(&end_local) {
            LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            // The end falls in an hour a daylight-saving change skips: an hour later
            // on the wall clock (02:30 → 03:30), which is 02:30 on the old offset.
            LocalResult::None => zone
                .from_local_datetime(&(end_local + Duration::hours(1)))
                .earliest()
                .map(|at| at.with_timezone(&Utc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn settings(critical: bool, enabled_by_default: bool) -> CategorySettings {
        CategorySettings {
            name: "news".into(),
            app_id: "app".into(),
            description: None,
            critical,
            enabled_by_default,
            channels: BTreeMap::from([(Channel::Sms, false)]),
            frequency_cap: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn circumstances<'a>(
        settings: Option<&'a CategorySettings>,
        channel: Channel,
        priority: Priority,
        now: &str,
    ) -> Circumstances<'a> {
        Circumstances {
            category: Some("news"),
            settings,
            channel,
            priority,
            user_zone: "Europe/Berlin".parse().unwrap(),
            now: at(now),
        }
    }

    const NOON: &str = "2026-06-01T10:00:00Z";

    #[test]
    fn the_most_specific_choice_wins() {
        let app = settings(false, true);
        let mut prefs = Preferences::default();
        let verdict =
            |p: &Preferences, ch| p.verdict(&circumstances(Some(&app), ch, Priority::Low, NOON));
        assert_eq!(verdict(&prefs, Channel::Email), Verdict::Send { after: None });
        assert_eq!(verdict(&prefs, Channel::Sms), Verdict::OptedOut, "app default for sms");
        prefs.categories.insert(
            "news".into(),
            CategoryChoice {
                enabled: Some(false),
                channels: BTreeMap::from([(Channel::Sms, true)]),
            },
        );
        assert_eq!(verdict(&prefs, Channel::Email), Verdict::OptedOut);
        assert_eq!(verdict(&prefs, Channel::Sms), Verdict::Send { after: None });
    }

    #[test]
    fn opt_in_categories_need_a_yes_and_critical_ones_ignore_every_no() {
        let opt_in = settings(false, false);
        let prefs = Preferences::default();
        let c = circumstances(Some(&opt_in), Channel::Email, Priority::Low, NOON);
        assert_eq!(prefs.verdict(&c), Verdict::OptedOut);

        let critical = settings(true, false);
        let prefs = Preferences {
            unsubscribed: true,
            quiet_hours: Some(quiet("00:00", "23:59", None)),
            ..Default::default()
        };
        let c = circumstances(Some(&critical), Channel::Sms, Priority::Low, NOON);
        assert_eq!(prefs.verdict(&c), Verdict::Send { after: None });
        let c = circumstances(None, Channel::Email, Priority::Low, NOON);
        assert_eq!(prefs.verdict(&c), Verdict::OptedOut, "unsubscribed from the rest");
    }

    fn quiet(start: &str, end: &str, zone: Option<&str>) -> QuietHours {
        let t = |s: &str| ClockTime(NaiveTime::parse_from_str(s, "%H:%M").unwrap());
        QuietHours { start: t(start), end: t(end), time_zone: zone.map(str::to_owned) }
    }

    #[test]
    fn quiet_hours_defer_to_the_end_of_the_window_in_the_users_zone() {
        let prefs =
            Preferences { quiet_hours: Some(quiet("22:00", "07:00", None)), ..Default::default() };
        // 23:30 in Berlin (summer, UTC+2) -> 07:00 Berlin the next day = 05:00 UTC.
        let c = circumstances(None, Channel::Email, Priority::Medium, "2026-06-01T21:30:00Z");
        assert_eq!(prefs.verdict(&c), Verdict::Send { after: Some(at("2026-06-02T05:00:00Z")) });
        // 06:00 Berlin -> 07:00 the same day.
        let c = circumstances(None, Channel::Email, Priority::Medium, "2026-06-02T04:00:00Z");
        assert_eq!(prefs.verdict(&c), Verdict::Send { after: Some(at("2026-06-02T05:00:00Z")) });
        // Noon: outside; and high priority never waits.
        let c = circumstances(None, Channel::Email, Priority::Medium, NOON);
        assert_eq!(prefs.verdict(&c), Verdict::Send { after: None });
        let c = circumstances(None, Channel::Email, Priority::High, "2026-06-01T21:30:00Z");
        assert_eq!(prefs.verdict(&c), Verdict::Send { after: None });
    }

    #[test]
    fn a_window_ending_in_a_daylight_saving_gap_ends_after_it() {
        // Berlin skips 02:00-03:00 on 2026-03-29.
        let window = quiet("01:00", "02:30", None);
        let end =
            window.end_if_inside(at("2026-03-29T00:30:00Z"), "Europe/Berlin".parse().unwrap());
        assert_eq!(end, Some(at("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn caps_prefer_the_users_own_and_windows_are_fixed() {
        let mut app = settings(false, true);
        app.frequency_cap = Some(CategoryCap { limit: 5, period: Period::Day });
        let prefs = Preferences {
            frequency_caps: vec![
                FrequencyCap {
                    category: "news".into(),
                    channel: None,
                    limit: 2,
                    period: Period::Week,
                },
                FrequencyCap {
                    category: "news".into(),
                    channel: Some(Channel::Sms),
                    limit: 1,
                    period: Period::Hour,
                },
            ],
            ..Default::default()
        };
        let cap = |ch| prefs.cap("news", ch, Some(&app)).unwrap();
        assert_eq!(cap(Channel::Sms), CategoryCap { limit: 1, period: Period::Hour });
        assert_eq!(cap(Channel::Email), CategoryCap { limit: 2, period: Period::Week });
        let cap = Preferences::default().cap("news", Channel::Email, Some(&app));
        assert_eq!(cap, Some(CategoryCap { limit: 5, period: Period::Day }));

        let t = at("2026-12-03T15:42:10Z"); // a Thursday
        assert_eq!(Period::Hour.window_start(t), at("2026-12-03T15:00:00Z"));
        assert_eq!(Period::Day.window_start(t), at("2026-12-03T00:00:00Z"));
        assert_eq!(Period::Week.window_start(t), at("2026-11-30T00:00:00Z"));
        assert_eq!(Period::Week.window_end(t), at("2026-12-07T00:00:00Z"));
    }

    #[test]
    fn problems_name_the_field() {
        let prefs: Preferences = serde_json::from_value(serde_json::json!({
            "quiet_hours": {"start": "22:00", "end": "22:00", "time_zone": "Mars/Olympus"},
            "frequency_caps": [
                {"category": "news", "limit": 0, "period": "day"},
                {"category": "news", "limit": 3, "period": "day"}
            ]
        }))
        .unwrap();
        let fields: Vec<_> = prefs.problems(|_| true).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "quiet_hours.end",
                "quiet_hours.time_zone",
                "frequency_caps[0].limit",
                "frequency_caps[1]"
            ]
        );
        let bad = serde_json::from_value::<Preferences>(serde_json::json!({
            "quiet_hours": {"start": "25:00", "end": "07:00"}
        }));
        assert!(bad.unwrap_err().to_string().contains("HH:MM"));
    }
}
