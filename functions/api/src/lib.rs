//! The `api` function's wiring, separate from `main` so tests can build the same
//! service and feed it the API Gateway payloads in `events/api/`.

use herald_core::channels::LogProvider;
use herald_core::http::{AppState, Limits, router};
use herald_core::sqlite::SqliteBackend;
use std::path::Path;
use std::sync::Arc;

/// The router over the SQLite backend in `data_dir`. Until the DynamoDB and SQS
/// backends land this is what the function serves; it suits `cargo lambda watch`.
pub fn app(data_dir: &Path) -> Result<axum::Router, Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(data_dir)?;
    let backend = SqliteBackend::open(&data_dir.join("herald.db"))?;
    let state = AppState::new(
        Arc::new(backend.clone()),
        Arc::new(backend),
        Arc::new(LogProvider::default()),
        Limits::default(),
    );
    Ok(router(state))
}
