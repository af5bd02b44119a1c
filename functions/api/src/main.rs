//! The `api` Lambda function: API Gateway (HTTP API) events served by the same axum
//! router as `herald serve`.
//!
//! Until the DynamoDB and SQS backends land, it runs over the SQLite backend in
//! `HERALD_DATA_DIR` (default /tmp/herald), which suits `cargo lambda watch` locally.

use herald_core::channels::LogProvider;
use herald_core::http::{AppState, Limits, router};
use herald_core::sqlite::SqliteBackend;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time() // CloudWatch stamps each line
        .init();
    let data_dir = std::env::var("HERALD_DATA_DIR").unwrap_or_else(|_| "/tmp/herald".into());
    std::fs::create_dir_all(&data_dir)?;
    // Built once per container, reused by every invocation.
    let backend = SqliteBackend::open(&std::path::Path::new(&data_dir).join("herald.db"))?;
    let state = AppState::new(
        Arc::new(backend.clone()),
        Arc::new(backend),
        Arc::new(LogProvider::default()),
        Limits::default(),
    );
    lambda_http::run(router(state)).await
}
