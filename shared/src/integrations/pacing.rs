//! Pacing: at most `max` sends through one integration in any window of
//! `window_seconds` (a chat robot's 20 a minute, past which DingTalk bans the robot for
//! ten minutes and WeCom drops messages without a word). A send that would exceed it
//! is not failed and does not block a worker: its job is put back until a slot frees
//! (`HeldJobs::defer`), so a burst is spread over the windows and nothing is lost.
//!
//! The rule is a sliding log: the times of the last `max` sends; a send may go when the
//! oldest of them is a whole window old. It holds in every window, not just in fixed
//! minutes (a fixed-minute counter lets `2 * max` through across a minute's edge).
//! The log is small (`max` times), so it fits in one store item when the senders are
//! many processes (`Pacer` on DynamoDB), or in memory for one (`LocalPacer`).

use crate::ports::StoreResult;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use utoipa::ToSchema;

/// At most `max` sends in any window of `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowLimit {
    #[schema(example = 20, minimum = 1)]
    pub max: u32,
    #[schema(example = 60, minimum = 1)]
    pub window_seconds: u32,
}

impl WindowLimit {
    pub const fn per_minute(max: u32) -> Self {
        Self { max, window_seconds: 60 }
    }

    /// The window Herald keeps, longer than the vendor's by a twentieth and at least a
    /// quarter second: the vendor counts arrivals, and the network's (or a busy host's)
    /// jitter must not push two windows' sends into one.
    pub fn paced_window_ms(&self) -> i64 {
        let window = i64::from(self.window_seconds) * 1000;
        window + (window / 20).max(250)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.max == 0 || self.window_seconds == 0 {
            return Err("max and window_seconds must be at least 1".into());
        }
        if self.max > 10_000 || self.window_seconds > 86_400 {
            return Err("max is at most 10000 and window_seconds at most 86400".into());
        }
        Ok(())
    }
}

/// Admits a send at `now_ms` into `log` (the last sends' times, oldest first), or says
/// how many milliseconds until the oldest leaves the window.
pub fn admit(log: &mut VecDeque<i64>, limit: WindowLimit, now_ms: i64) -> Result<(), u64> {
    let max = limit.max.max(1) as usize;
    while log.len() > max {
        log.pop_front();
    }
    if log.len() == max {
        let frees_at = log[0] + limit.paced_window_ms();
        if frees_at > now_ms {
            return Err((frees_at - now_ms) as u64);
        }
        log.pop_front();
    }
    log.push_back(now_ms);
    Ok(())
}

/// Shares send slots among everything that sends through one integration.
#[async_trait]
pub trait Pacer: Send + Sync + 'static {
    /// Takes a slot for a send through `key` now, or says how long until one frees.
    async fn acquire(&self, key: &str, limit: WindowLimit) -> StoreResult<Result<(), Duration>>;
}

/// Time in milliseconds, as the pacers read it (tests move it by hand).
pub trait MillisClock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
pub struct SystemMillis;

impl MillisClock for SystemMillis {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The pacer of one process (`herald serve`), in memory.
pub struct LocalPacer {
    clock: Box<dyn MillisClock>,
    logs: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl Default for LocalPacer {
    fn default() -> Self {
        Self::with_clock(Box::new(SystemMillis))
    }
}

impl LocalPacer {
    pub fn with_clock(clock: Box<dyn MillisClock>) -> Self {
        Self { clock, logs: Mutex::default() }
    }
}

#[async_trait]
impl Pacer for LocalPacer {
    async fn acquire(&self, key: &str, limit: WindowLimit) -> StoreResult<Result<(), Duration>> {
        let now = self.clock.now_ms();
        let mut logs = self.logs.lock().expect("pacing logs");
        let log = logs.entry(key.to_owned()).or_default();
        Ok(admit(log, limit, now).map_err(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct Hand(Arc<AtomicI64>);
    impl MillisClock for Hand {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Drives a pacer with a clock moved by hand: whatever the order of attempts, no
    /// window of the paced length holds more than `max` admitted sends.
    #[tokio::test]
    async fn never_more_than_max_in_any_window_and_nothing_refused_for_good() {
        let now = Arc::new(AtomicI64::new(1_000_000));
        let pacer = LocalPacer::with_clock(Box::new(Hand(now.clone())));
        let limit = WindowLimit { max: 20, window_seconds: 60 };
        let mut admitted = Vec::new();
        let mut waiting = 100;
        // Every waiting send tries each time the clock moves; the clock moves to the
        // earliest time a refused send was told to come back.
        while waiting > 0 {
            let mut next = i64::MAX;
            for _ in 0..waiting {
                match pacer.acquire("robot", limit).await.unwrap() {
                    Ok(()) => admitted.push(now.load(Ordering::SeqCst)),
                    Err(wait) => {
                        next = next.min(now.load(Ordering::SeqCst) + wait.as_millis() as i64)
                    }
                }
            }
            waiting = 100 - admitted.len();
            if waiting > 0 {
                now.store(next, Ordering::SeqCst);
            }
        }
        assert_eq!(admitted.len(), 100);
        let window = limit.paced_window_ms();
        for (i, start) in admitted.iter().enumerate() {
            let inside = admitted[i..].iter().filter(|t| **t < start + window).count();
            assert!(inside <= 20, "{inside} sends in the window from {start}");
        }
        // Five windows' worth: the last batch goes out four windows after the first.
        assert_eq!(admitted[99] - admitted[0], 4 * window);
    }

    #[tokio::test]
    async fn keys_are_paced_apart() {
        let pacer = LocalPacer::default();
        let limit = WindowLimit { max: 1, window_seconds: 60 };
        assert!(pacer.acquire("a", limit).await.unwrap().is_ok());
        assert!(pacer.acquire("b", limit).await.unwrap().is_ok());
        let wait = pacer.acquire("a", limit).await.unwrap().unwrap_err();
        assert!(wait > Duration::from_secs(60) && wait <= Duration::from_secs(63), "{wait:?}");
    }

    #[test]
    fn limits_are_checked() {
        assert!(WindowLimit { max: 0, window_seconds: 60 }.check().is_err());
        assert!(WindowLimit { max: 20, window_seconds: 0 }.check().is_err());
        assert!(WindowLimit::per_minute(20).check().is_ok());
    }
}
