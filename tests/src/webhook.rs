//! A webhook receiver on loopback that verifies each request the way the Standard
//! Webhooks specification tells receivers to, independently of Herald's signing code.
//!
//! Behaviour per request comes from the URL's query, so one sink serves every case:
//! `?status=500` answers 500, `?delay_ms=5` waits before answering.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, get};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub body: Value,
}

#[derive(Default)]
struct Record {
    received: Vec<Received>,
    unique: HashSet<String>,
    bad_signatures: u64,
    requests: u64,
    started: u64,
}

#[derive(Clone)]
struct SinkState {
    key: Arc<Vec<u8>>,
    record: Arc<Mutex<Record>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SinkBehaviour {
    pub status: Option<u16>,
    pub delay_ms: Option<u64>,
}

pub struct WebhookSink {
    pub base_url: String,
    state: SinkState,
}

impl WebhookSink {
    pub async fn start(secret: &str) -> WebhookSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        Self::serve(listener, secret).await
    }

    pub async fn serve(listener: tokio::net::TcpListener, secret: &str) -> WebhookSink {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
            .expect("base64 secret");
        let state = SinkState { key: Arc::new(key), record: Arc::default() };
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/stats", get(stats))
            .fallback(any(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("sink serves") });
        WebhookSink { base_url, state }
    }

    /// A URL on this sink; `query` sets the behaviour, e.g. `status=500`.
    pub fn url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("{}/hook", self.base_url)
        } else {
            format!("{}/hook?{query}", self.base_url)
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.record.lock().unwrap().received.clone()
    }

    /// Requests with a valid signature (retries and duplicates included).
    pub fn count(&self) -> usize {
        self.state.record.lock().unwrap().received.len()
    }

    /// Distinct `webhook-id`s with a valid signature.
    pub fn unique(&self) -> usize {
        self.state.record.lock().unwrap().unique.len()
    }

    pub fn requests(&self) -> u64 {
        self.state.record.lock().unwrap().requests
    }

    /// Requests that have arrived, answered or not.
    pub fn started(&self) -> u64 {
        self.state.record.lock().unwrap().started
    }

    pub fn bad_signatures(&self) -> u64 {
        self.state.record.lock().unwrap().bad_signatures
    }
}

async fn stats(State(state): State<SinkState>) -> Json<Value> {
    let record = state.record.lock().unwrap();
    Json(json!({
        "requests": record.requests,
        "received": record.received.len(),
        "unique": record.unique.len(),
        "bad_signatures": record.bad_signatures,
    }))
}

async fn receive(
    State(state): State<SinkState>,
    Query(behaviour): Query<SinkBehaviour>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    state.record.lock().unwrap().started += 1;
    if let Some(ms) = behaviour.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let verdict = verify(&state.key, &headers, &body);
    let mut record = state.record.lock().unwrap();
    record.requests += 1;
    let Ok(webhook_id) = verdict else {
        record.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    };
    let status = behaviour.status.unwrap_or(200);
    if (200..300).contains(&status) {
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        record.unique.insert(webhook_id.clone());
        record.received.push(Received { webhook_id, body });
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

/// Checks the three Standard Webhooks headers; returns the webhook id.
fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<String, &'static str> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).ok_or("missing header");
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let sent: i64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    if (now - sent).abs() > 300 {
        return Err("timestamp outside tolerance");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    // The header may carry several space-separated signatures (key rotation).
    let valid = signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|s| s == expected);
    if valid { Ok(id.to_owned()) } else { Err("bad signature") }
}
