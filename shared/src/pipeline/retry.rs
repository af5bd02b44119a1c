//! When to try a failed send again: exponential backoff with jitter, then give up.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last one the job is dead-lettered.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about half an hour, like the leading services.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    pub fn gives_up_after(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }

    /// The wait before attempt `attempts + 1`: half of the exponential step fixed, half
    /// random ("equal jitter"), so retries spread out but never come back at once.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(20);
        let step = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
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
        };
        for attempts in 1..10 {
            let delay = policy.delay_after(attempts);
            let step = Duration::from_millis(100 * (1 << (attempts - 1).min(20)))
                .min(Duration::from_secs(1));
            assert!(delay >= step / 2 && delay <= step, "attempt {attempts}: {delay:?}");
        }
        assert!(!policy.gives_up_after(4));
        assert!(policy.gives_up_after(5));
    }
}
