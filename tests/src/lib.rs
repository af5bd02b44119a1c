//! Test harness: a real `herald serve` process on loopback, and the loopback fakes that
//! stand in for the outside world (a webhook receiver that checks signatures, a real
//! SMTP server).

pub mod aliyun_sms;
pub mod aws_proxy;
pub mod dingtalk;
pub mod emulator;
pub mod event_filter;
pub mod feishu;
pub mod herald;
pub mod lambda_events;
pub mod onebot;
pub mod slack;
pub mod smtp;
pub mod tencent_sms;
pub mod twilio;
pub mod vendor_fake;
pub mod webhook;
pub mod wechat_oa;
pub mod wecom;
pub mod write_units;

pub use herald::Herald;
pub use smtp::SmtpSink;
pub use webhook::{SinkBehaviour, WebhookSink};

/// A webhook signing secret known to the tests (Standard Webhooks format).
pub const WEBHOOK_SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWhlcmFsZC10ZXN0cyEh";

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Where Debian's `faketime` package puts libfaketime (the thread-safe build the
/// "start at" mode needs in a multi-threaded process).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Settings that start `herald serve` on a clock that reads noon UTC on 3 December
/// 2026 and then runs at the normal rate (libfaketime, preloaded: an injected clock for
/// the whole process, SQLite's included), so a test whose daily frequency caps must
/// count two sends in one window never meets a UTC midnight. Tokio's timers keep the
/// real monotonic clock. `None` when libfaketime is not installed (the test command
/// installs it).
pub fn noon_utc_clock() -> Option<Vec<(&'static str, &'static str)>> {
    std::path::Path::new(LIBFAKETIME).exists().then(|| {
        vec![
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME", "@2026-12-03 12:00:00"),
            ("TZ", "UTC"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ]
    })
}

/// Waits (at most two minutes) until the next UTC midnight is more than two minutes
/// away, for tests whose daily frequency caps must count two sends in one window.
pub async fn clear_of_utc_midnight() {
    let seconds_into_day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        % 86_400;
    let left = 86_400 - seconds_into_day;
    if left < 120 {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}
