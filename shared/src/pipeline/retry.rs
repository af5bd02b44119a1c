//! When to try a failed send again: per channel, a schedule with jitter, then give up.

use crate::domain::Channel;
use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last one the job is dead-lettered.
    pub max_attempts: u32,
    /// Email and SMS back off exponentially from `base_delay` up to `max_delay`: a
    /// provider's throttling or outage passes within the hour.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Webhooks wait these delays after each failed attempt (the last one repeats):
    /// a customer's endpoint may be down for hours, so they are retried for about a
    /// day, as senders following Standard Webhooks do.
    pub webhook_schedule: Vec<Duration>,
    /// For vendors that report only when asked: the waits before each poll of a
    /// receipt, the first counted from the send (see `receipts`).
    pub receipt_poll_schedule: Vec<Duration>,
}

/// 1 min, 5 min, 30 min, 2 h, 6 h, 12 h: the last poll 20 h 36 min after the send,
/// before DingTalk forgets the task (it answers for 24 hours).
pub fn standard_receipt_poll_schedule() -> Vec<Duration> {
    [60, 5 * 60, 30 * 60, 2 * 3600, 6 * 3600, 12 * 3600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 27.6 hours.
pub fn standard_webhook_schedule() -> Vec<Duration> {
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

impl Default for RetryPolicy {
    /// Eight attempts: about an hour for email and SMS, about a day for webhooks.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(60 * 60),
            webhook_schedule: standard_webhook_schedule(),
            receipt_poll_schedule: standard_receipt_poll_schedule(),
        }
    }
}

impl RetryPolicy {
    pub fn gives_up_after(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }

    /// The wait before attempt `attempts + 1` on `channel`. Exponential steps are half
    /// fixed, half random ("equal jitter"); scheduled ones vary by a tenth either way,
    /// so retries spread out but never come back at once.
    pub fn delay_after(&self, channel: Channel, attempts: u32) -> Duration {
        let index = attempts.saturating_sub(1) as usize;
        if channel == Channel::Webhook
            && let Some(step) = self.webhook_schedule.get(index).or(self.webhook_schedule.last())
        {
            let tenth = *step / 10;
            return *step - tenth + rand::rng().random_range(Duration::ZERO..=tenth * 2);
        }
        let exponent = attempts.saturating_sub(1).min(20);
        let step = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

/// Parses `5s,5m,30m,2h` (units ms, s, m, h).
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let schedule = text
        .split(',')
        .map(str::trim)
        .map(|item| {
            let split = item.find(|c: char| !c.is_ascii_digit()).unwrap_or(item.len());
            let (number, unit) = item.split_at(split);
            let n: u64 = number.parse().map_err(|_| format!("'{item}' is not like 5s or 30m"))?;
            Ok(match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                _ => return Err(format!("'{item}' needs a unit: ms, s, m or h")),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if schedule.iter().any(|d| *d > Duration::from_secs(12 * 3600)) {
        return Err("a delay may be at most 12h (SQS visibility limit)".into());
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            webhook_schedule: Vec::new(),
            receipt_poll_schedule: Vec::new(),
        };
        for attempts in 1..10 {
            let delay = policy.delay_after(Channel::Email, attempts);
            let step = Duration::from_millis(100 * (1 << (attempts - 1).min(20)))
                .min(Duration::from_secs(1));
            assert!(delay >= step / 2 && delay <= step, "attempt {attempts}: {delay:?}");
        }
        assert!(!policy.gives_up_after(4));
        assert!(policy.gives_up_after(5));
    }

    #[test]
    fn webhooks_follow_the_standard_schedule() {
        let policy = RetryPolicy::default();
        let hours: f64 = (1..policy.max_attempts)
            .map(|attempt| {
                let delay = policy.delay_after(Channel::Webhook, attempt);
                let step = policy.webhook_schedule[attempt as usize - 1];
                assert!(delay >= step * 9 / 10 && delay <= step * 11 / 10, "{attempt}: {delay:?}");
                step.as_secs_f64() / 3600.0
            })
            .sum();
        assert!((hours - 27.59).abs() < 0.01, "{hours} hours");
        // Past the schedule's end, its last delay repeats.
        let late = policy.delay_after(Channel::Webhook, 20);
        assert!(late >= Duration::from_secs(9 * 3600), "{late:?}");
    }

    #[test]
    fn schedules_are_parsed() {
        let parsed = parse_schedule("50ms, 5s,5m,2h").unwrap();
        assert_eq!(parsed[0], Duration::from_millis(50));
        assert_eq!(parsed[3], Duration::from_secs(7200));
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("13h").is_err());
    }
}
