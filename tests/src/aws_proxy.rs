//! A loopback HTTP proxy in front of the AWS emulator that counts the requests passing
//! through it by service and operation, so a test can say how many AWS requests a
//! notification costs, and keeps their bodies, so a test can read what the SDK sent
//! where the emulator keeps less (moto records no SES message headers), and meters
//! DynamoDB write and read units (`write_units`).

use crate::write_units::WriteMeter;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Bodies = Arc<Mutex<Vec<(String, Bytes)>>>;

#[derive(Clone)]
struct Forward {
    upstream: String,
    client: reqwest::Client,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    bodies: Bodies,
    meter: Arc<WriteMeter>,
    write_units: Arc<Mutex<u64>>,
    read_half_units: Arc<Mutex<u64>>,
    /// Metered writes pass one at a time, so the items read around a write show
    /// only that write's change.
    write_gate: Arc<tokio::sync::Mutex<()>>,
}

pub struct CountingProxy {
    pub url: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    bodies: Bodies,
    write_units: Arc<Mutex<u64>>,
    read_half_units: Arc<Mutex<u64>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let bodies = Bodies::default();
        let write_units = Arc::new(Mutex::new(0));
        let read_half_units = Arc::new(Mutex::new(0));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        let forward = Forward {
            meter: Arc::new(WriteMeter::new(&upstream, client.clone())),
            upstream,
            client,
            counts: counts.clone(),
            bodies: bodies.clone(),
            write_units: write_units.clone(),
            read_half_units: read_half_units.clone(),
            write_gate: Default::default(),
        };
        let app = axum::Router::new().fallback(proxy).with_state(forward);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, counts, bodies, write_units, read_half_units })
    }

    /// The bodies of the requests named `operation` (`service:Operation`), oldest first.
    pub fn bodies(&self, operation: &str) -> Vec<String> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .filter(|(name, _)| name == operation)
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .collect()
    }

    /// `service:Operation` → requests since the last reset.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// DynamoDB write units since the last reset, as DynamoDB would bill them
    /// (see `write_units`).
    pub fn write_units(&self) -> u64 {
        *self.write_units.lock().unwrap()
    }

    /// DynamoDB read units since the last reset, as DynamoDB would bill them (see
    /// `write_units::read_half_units`).
    pub fn read_units(&self) -> f64 {
        *self.read_half_units.lock().unwrap() as f64 / 2.0
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
        self.bodies.lock().unwrap().clear();
        *self.write_units.lock().unwrap() = 0;
        *self.read_half_units.lock().unwrap() = 0;
    }
}

/// Names a request by the service in its SigV4 credential scope and the operation in
/// its `X-Amz-Target` header (JSON protocols) or its path (REST protocols).
fn operation(method: &Method, uri: &Uri, headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let service = header("authorization")
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown");
    let target = header("x-amz-target");
    let operation = match target.rsplit('.').next() {
        Some(op) if !target.is_empty() => op.to_owned(),
        _ => format!("{method} {}", uri.path()),
    };
    format!("{service}:{operation}")
}

async fn proxy(
    State(forward): State<Forward>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let name = operation(&method, &uri, &headers);
    *forward.counts.lock().unwrap().entry(name.clone()).or_default() += 1;
    forward.bodies.lock().unwrap().push((name.clone(), body.clone()));
    let request_body = body.clone();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = forward.client.request(method, format!("{}{path}", forward.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let sent = if WriteMeter::meters(&name) {
        let _one_at_a_time = forward.write_gate.lock().await;
        let authorization =
            headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (sent, units) = forward
            .meter
            .around(&authorization, &name, &body, request.body(body.clone()).send())
            .await;
        *forward.write_units.lock().unwrap() += units;
        sent
    } else {
        request.body(body).send().await
    };
    match sent {
        Ok(response) => {
            let mut builder = axum::response::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    builder = builder.header(name, value);
                }
            }
            let bytes = response.bytes().await.unwrap_or_default();
            if name.starts_with("dynamodb:") {
                let request: serde_json::Value =
                    serde_json::from_slice(&request_body).unwrap_or_default();
                let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let halves = crate::write_units::read_half_units(&name, &request, &answer);
                *forward.read_half_units.lock().unwrap() += halves;
            }
            builder.body(Body::from(bytes)).unwrap()
        }
        Err(e) => {
            axum::response::Response::builder().status(502).body(Body::from(e.to_string())).unwrap()
        }
    }
}
