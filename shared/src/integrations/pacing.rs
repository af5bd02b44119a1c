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
//!
//! Priority: a refused high or medium send holds the slot it waits for (`Hold`), so
//! when that slot frees, a low send that happens to ask first is refused and the high
//! one gets it on its return. Lows keep no holds and take what is left.

use crate::domain::Priority;
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

/// Who asks for a slot: the delivery (so that a send coming back finds its hold) and
/// its priority.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub id: &'a str,
    pub priority: Priority,
}

/// A refused send of high or medium priority waiting for a slot: the slots that free
/// go to holds in priority order (then first come, first served) before any send of
/// lower priority, so a queued low burst cannot take the slot a high one waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub rank: u8,
    /// When the send first waited (its place among equals).
    pub since: i64,
    /// When its slot frees, and so when it comes back.
    pub at: i64,
}

/// One limit's state: the times of the last sends (oldest first) and the holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaceLog {
    pub sent: VecDeque<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
}

fn rank(priority: Priority) -> u8 {
    match priority {
        Priority::High => 2,
        Priority::Medium => 1,
        Priority::Low => 0,
    }
}

/// How long a hold outlives its slot waiting for its send to come back.
fn hold_grace(window_ms: i64) -> i64 {
    (window_ms / 5).max(2_000)
}

impl PaceLog {
    /// Whether the log constrains nobody any more at `now_ms`: its newest send is a
    /// whole window old and every hold has lapsed. Such a log is as good as none.
    pub fn is_idle(&self, limit: WindowLimit, now_ms: i64) -> bool {
        let window = limit.paced_window_ms();
        self.sent.back().is_none_or(|t| t + window <= now_ms)
            && self.holds.iter().all(|h| h.at + hold_grace(window) < now_ms)
    }

    /// Admits a send of `who` at `now_ms`, or says how many milliseconds until the slot
    /// it waits for frees (and, above low priority, holds that slot for it).
    pub fn admit(&mut self, limit: WindowLimit, now_ms: i64, who: Claimant<'_>) -> Result<(), u64> {
        let max = limit.max.max(1) as usize;
        let window = limit.paced_window_ms();
        while self.sent.len() > max {
            self.sent.pop_front();
        }
        // A hold lapses when its send has not come back within a grace time (it was
        // canceled, or its host stopped): it stops blocking others.
        let grace = hold_grace(window);
        self.holds.retain(|h| h.at + grace >= now_ms);
        let mine = self.holds.iter().position(|h| h.id == who.id);
        let since = mine.map_or(now_ms, |i| self.holds[i].since);
        let rank = rank(who.priority);
        let ahead = self
            .holds
            .iter()
            .filter(|h| h.id != who.id)
            .filter(|h| h.rank > rank || (h.rank == rank && h.since < since))
            .count();
        let in_window: Vec<i64> =
            self.sent.iter().copied().filter(|t| t + window > now_ms).collect();
        let free = max - in_window.len();
        if free > ahead {
            if let Some(i) = mine {
                self.holds.remove(i);
            }
            self.sent.push_back(now_ms);
            if self.sent.len() > max {
                self.sent.pop_front();
            }
            return Ok(());
        }
        // Slots free in the order of the sends in the window, and each again a window
        // after it is taken; those ahead take the first ones.
        let k = ahead - free;
        let n = in_window.len();
        let frees_at = match n {
            0 => now_ms + window * (k / max + 1) as i64,
            n => in_window[k % n] + window * (k / n + 1) as i64,
        };
        // Lows wait without a hold; the holds stay few so the state stays small.
        if rank > 0 && (mine.is_some() || self.holds.len() < 4 * max) {
            let hold = Hold { id: who.id.to_owned(), rank, since, at: frees_at };
            match mine {
                Some(i) => self.holds[i] = hold,
                None => self.holds.push(hold),
            }
        }
        Err((frees_at - now_ms).max(1) as u64)
    }
}

/// Shares send slots among everything that sends through one integration.
#[async_trait]
pub trait Pacer: Send + Sync + 'static {
    /// Takes a slot for `who`'s send through `key` now, or says how long until one
    /// frees for it.
    async fn acquire(
        &self,
        key: &str,
        limit: WindowLimit,
        who: Claimant<'_>,
    ) -> StoreResult<Result<(), Duration>>;
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

/// The pacer of one process (`herald serve`), in memory. Idle logs are swept once the
/// map has doubled since the last sweep, so per-recipient limits (a log per member
/// ever messaged) do not grow the process without bound.
pub struct LocalPacer {
    clock: Box<dyn MillisClock>,
    logs: Mutex<Logs>,
}

#[derive(Default)]
struct Logs {
    by_key: HashMap<String, (WindowLimit, PaceLog)>,
    sweep_at: usize,
}

const FIRST_SWEEP: usize = 1024;

impl Default for LocalPacer {
    fn default() -> Self {
        Self::with_clock(Box::new(SystemMillis))
    }
}

impl LocalPacer {
    pub fn with_clock(clock: Box<dyn MillisClock>) -> Self {
        Self { clock, logs: Mutex::new(Logs { by_key: HashMap::new(), sweep_at: FIRST_SWEEP }) }
    }

    /// How many logs the pacer holds.
    pub fn len(&self) -> usize {
        self.logs.lock().expect("pacing logs").by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Pacer for LocalPacer {
    async fn acquire(
        &self,
        key: &str,
        limit: WindowLimit,
        who: Claimant<'_>,
    ) -> StoreResult<Result<(), Duration>> {
        let now = self.clock.now_ms();
        let mut logs = self.logs.lock().expect("pacing logs");
        if logs.by_key.len() >= logs.sweep_at {
            logs.by_key.retain(|_, (limit, log)| !log.is_idle(*limit, now));
            logs.sweep_at = (logs.by_key.len() * 2).max(FIRST_SWEEP);
        }
        let (kept, log) = logs.by_key.entry(key.to_owned()).or_insert((limit, PaceLog::default()));
        *kept = limit;
        Ok(log.admit(limit, now, who).map_err(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    const LOW: Claimant = Claimant { id: "dlv_low", priority: Priority::Low };

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
                match pacer.acquire("robot", limit, LOW).await.unwrap() {
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

    /// 20 lows fill the window and 30 more wait; a high that asks after them is
    /// refused too, but the first slot that frees is its, whichever asks first.
    #[test]
    fn a_waiting_high_send_takes_the_next_slot_before_waiting_lows() {
        let limit = WindowLimit { max: 20, window_seconds: 60 };
        let window = limit.paced_window_ms();
        let mut log = PaceLog::default();
        let low = |i: usize| format!("low{i}");
        for i in 0..20 {
            let who = Claimant { id: &low(i), priority: Priority::Low };
            assert!(log.admit(limit, i as i64, who).is_ok());
        }
        let high = Claimant { id: "high", priority: Priority::High };
        let wait = log.admit(limit, 100, high).unwrap_err();
        assert_eq!(100 + wait as i64, window, "the first slot to free");
        // When it frees, the lows ask first and are refused; the high is admitted.
        let later = window;
        for i in 20..50 {
            let who = Claimant { id: &low(i), priority: Priority::Low };
            assert!(log.admit(limit, later, who).is_err());
        }
        assert!(log.admit(limit, later, high).is_ok());
        assert!(log.holds.is_empty());
        // The next slot goes to a low.
        let who = Claimant { id: "low50", priority: Priority::Low };
        assert!(log.admit(limit, window + 1, who).is_ok());
    }

    /// Two highs wait in order; a medium waits behind them. A high whose send never
    /// comes back stops blocking the others after its grace time.
    #[test]
    fn holds_keep_their_order_and_lapse() {
        let limit = WindowLimit { max: 1, window_seconds: 10 };
        let window = limit.paced_window_ms();
        let mut log = PaceLog::default();
        let at = |id, priority| Claimant { id, priority };
        assert!(log.admit(limit, 0, at("first", Priority::Low)).is_ok());
        assert_eq!(log.admit(limit, 1, at("a", Priority::High)), Err(window as u64 - 1));
        assert_eq!(log.admit(limit, 2, at("b", Priority::High)), Err(2 * window as u64 - 2));
        assert_eq!(log.admit(limit, 3, at("m", Priority::Medium)), Err(3 * window as u64 - 3));
        assert!(log.admit(limit, window, at("b", Priority::High)).is_err(), "a is first");
        // `a` never returns: past its grace, `b` goes.
        let grace = (window / 5).max(2_000);
        assert!(log.admit(limit, window + grace + 1, at("b", Priority::High)).is_ok());
        assert!(log.admit(limit, 2 * window + grace + 1, at("m", Priority::Medium)).is_ok());
    }

    /// A log per recipient: the idle ones go at the next sweep, the busy ones stay.
    #[tokio::test]
    async fn idle_logs_are_swept() {
        let now = Arc::new(AtomicI64::new(0));
        let pacer = LocalPacer::with_clock(Box::new(Hand(now.clone())));
        let limit = WindowLimit { max: 30, window_seconds: 60 };
        for member in 0..FIRST_SWEEP {
            pacer.acquire(&format!("member{member}"), limit, LOW).await.unwrap().unwrap();
        }
        assert_eq!(pacer.len(), FIRST_SWEEP);
        // A window later every log is idle but one, which just sent.
        now.store(limit.paced_window_ms(), Ordering::SeqCst);
        pacer.acquire("member0", limit, LOW).await.unwrap().unwrap();
        pacer.acquire("newcomer", limit, LOW).await.unwrap().unwrap();
        assert_eq!(pacer.len(), 2);
        let mut log = PaceLog::default();
        assert!(log.is_idle(limit, 0));
        log.admit(limit, 0, LOW).unwrap();
        assert!(!log.is_idle(limit, limit.paced_window_ms() - 1));
    }

    #[tokio::test]
    async fn keys_are_paced_apart() {
        let pacer = LocalPacer::default();
        let limit = WindowLimit { max: 1, window_seconds: 60 };
        assert!(pacer.acquire("a", limit, LOW).await.unwrap().is_ok());
        assert!(pacer.acquire("b", limit, LOW).await.unwrap().is_ok());
        let wait = pacer.acquire("a", limit, LOW).await.unwrap().unwrap_err();
        assert!(wait > Duration::from_secs(60) && wait <= Duration::from_secs(63), "{wait:?}");
    }

    #[test]
    fn limits_are_checked() {
        assert!(WindowLimit { max: 0, window_seconds: 60 }.check().is_err());
        assert!(WindowLimit { max: 20, window_seconds: 0 }.check().is_err());
        assert!(WindowLimit::per_minute(20).check().is_ok());
    }
}
