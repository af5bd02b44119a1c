//! What every vendor fake shares: the record of what arrived, scripted answers, access
//! tokens it issued, and a robot's rate limit that counts violations. The vendor's own
//! module (`dingtalk`, `wecom`, …) holds its routes and the checks its documentation
//! describes.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scripted answer to the next send.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// The vendor's error code, in its own JSON shape; an expired-token code also
    /// invalidates the current access token, as an expiry would.
    Code(i64),
    /// A vendor's named error (Slack's `error` strings).
    Named(&'static str),
    /// This HTTP status with no JSON body.
    Status(u16),
}

/// The response to a scripted HTTP status.
pub fn status_response(status: u16) -> Response {
    (StatusCode::from_u16(status).unwrap(), "scripted").into_response()
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
pub struct Record {
    pub received: Vec<Received>,
    pub rejected: Vec<String>,
    pub script: VecDeque<Scripted>,
    pub tokens_issued: u64,
    pub valid_token: Option<String>,
    robot_sends: VecDeque<Instant>,
    pub violations: u64,
    /// Message (task) ids the fake issued, with the recipient each went to.
    pub issued: HashMap<String, String>,
    /// What a receipt query about a recipient answers, in order (the last repeats).
    pub fates: HashMap<String, VecDeque<&'static str>>,
    pub receipt_queries: u64,
}

/// The state a fake's handlers share.
#[derive(Clone)]
pub struct Shared {
    pub record: Arc<Mutex<Record>>,
    /// A robot takes this many in any `robot_window`.
    pub robot_max: usize,
    pub robot_window: Duration,
}

impl Shared {
    pub fn new(robot_max: usize, robot_window: Duration) -> Self {
        Self { record: Arc::default(), robot_max, robot_window }
    }

    /// Records a request refused for its form or signature.
    pub fn reject(&self, why: impl Into<String>) {
        self.record.lock().unwrap().rejected.push(why.into());
    }

    /// The next scripted answer; an `expired_code` also invalidates the current token.
    pub fn scripted(&self, expired_code: i64) -> Option<Scripted> {
        let mut record = self.record.lock().unwrap();
        let next = record.script.pop_front()?;
        if matches!(next, Scripted::Code(code) if code == expired_code) {
            record.valid_token = None;
        }
        Some(next)
    }

    /// Issues a new access token, which replaces the last.
    pub fn issue_token(&self) -> String {
        let mut record = self.record.lock().unwrap();
        record.tokens_issued += 1;
        let token = format!("access-token-{}", record.tokens_issued);
        record.valid_token = Some(token.clone());
        token
    }

    pub fn token_valid(&self, token: Option<&str>) -> bool {
        let record = self.record.lock().unwrap();
        token.is_some() && record.valid_token.as_deref() == token
    }

    /// Counts a robot message against its window: false (and a violation) past it.
    pub fn robot_admits(&self) -> bool {
        let now = Instant::now();
        let mut record = self.record.lock().unwrap();
        while record
            .robot_sends
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.robot_window)
        {
            record.robot_sends.pop_front();
        }
        if record.robot_sends.len() >= self.robot_max {
            record.violations += 1;
            return false;
        }
        record.robot_sends.push_back(now);
        true
    }

    pub fn accept(&self, path: &str, body: Value) {
        let mut record = self.record.lock().unwrap();
        record.received.push(Received { path: path.into(), body, at: Instant::now() });
    }

    /// The next answer to a receipt query about `recipient`, counting the query.
    pub fn fate(&self, recipient: &str, default: &'static str) -> &'static str {
        let mut record = self.record.lock().unwrap();
        record.receipt_queries += 1;
        let Some(fates) = record.fates.get_mut(recipient) else { return default };
        if fates.len() > 1 {
            fates.pop_front().unwrap()
        } else {
            fates.front().copied().unwrap_or(default)
        }
    }

    pub fn accepted_count(&self) -> usize {
        self.record.lock().unwrap().received.len()
    }
}

/// A fake on a loopback port: its base URL and shared state.
pub struct Fake {
    pub base_url: String,
    pub shared: Shared,
}

impl Fake {
    pub async fn serve(router: Router, shared: Shared) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await.expect("fake serves") });
        Fake { base_url, shared }
    }

    /// Answers the next sends with these, in order, then normally again.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.shared.record.lock().unwrap().script.extend(answers);
    }

    /// The messages accepted, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.record.lock().unwrap().received.clone()
    }

    /// Requests refused for their form or signature, with why.
    pub fn rejected(&self) -> Vec<String> {
        self.shared.record.lock().unwrap().rejected.clone()
    }

    pub fn tokens_issued(&self) -> u64 {
        self.shared.record.lock().unwrap().tokens_issued
    }

    /// Scripts what receipt queries about `recipient` answer, in order.
    pub fn fates(&self, recipient: &str, fates: &[&'static str]) {
        let mut record = self.shared.record.lock().unwrap();
        record.fates.insert(recipient.into(), fates.iter().copied().collect());
    }

    pub fn receipt_queries(&self) -> u64 {
        self.shared.record.lock().unwrap().receipt_queries
    }

    /// Robot messages that arrived past the robot's limit.
    pub fn violations(&self) -> u64 {
        self.shared.record.lock().unwrap().violations
    }
}

/// A string field of 1 to `max` bytes, or why not.
pub fn text_within(value: &Value, what: &str, max: usize) -> Result<(), String> {
    let text = value.as_str().ok_or(format!("{what} missing"))?;
    if text.is_empty() || text.len() > max {
        return Err(format!("{what} must be 1 to {max} bytes"));
    }
    Ok(())
}

/// Milliseconds since the epoch, as vendors' timestamps count them.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
