//! The `api` function's wiring, separate from `main` so tests can build the same
//! service and feed it the API Gateway payloads in `events/api/`.

use herald_aws::lambda::Backends;
use herald_core::channels::{HostProviders, LogProvider, Providers};
use herald_core::integrations::{IntegrationRouter, LocalVault};
use herald_core::ports::Stores;
use herald_core::templates::Renderer;
use herald_core::unsubscribe::UnsubscribeLinks;
use herald_http::{AppState, Limits, router};
use herald_sqlite::SqliteBackend;
use std::path::Path;
use std::sync::Arc;

/// The router over DynamoDB and SQS: what the function serves in AWS.
pub fn aws_app(backends: &Backends) -> axum::Router {
    let state = AppState::new(
        Stores::of(backends.store.clone()),
        backends.queue.clone(),
        backends.router.clone(),
        Limits::default(),
        Arc::new(Renderer::new()),
        backends.personalizer.links.clone(),
    );
    router(state)
}

/// The router over a SQLite file in `data_dir`: what the function serves when no
/// table is configured, which suits `cargo lambda watch` with nothing else running.
pub fn local_app(
    data_dir: &Path,
) -> Result<axum::Router, Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(data_dir)?;
    let backend = SqliteBackend::open(&data_dir.join("herald.db"))?;
    let stores = Stores::of(Arc::new(backend.clone()));
    let links = Arc::new(UnsubscribeLinks::new("http://localhost:9000", stores.store.clone()));
    let defaults = Providers::new(Arc::new(LogProvider::default()));
    let factory = HostProviders::new(
        defaults.log(),
        std::time::Duration::from_secs(10),
        herald_core::net::policy().clone(),
    );
    let vault =
        LocalVault::from_env_or_file(std::env::var("HERALD_MASTER_KEY").ok().as_deref(), data_dir)?;
    let integrations = IntegrationRouter::new(
        stores.integrations.clone(),
        Arc::new(vault),
        Arc::new(factory),
        defaults,
    );
    let state = AppState::new(
        stores,
        Arc::new(backend),
        Arc::new(integrations),
        Limits::default(),
        Arc::new(Renderer::new()),
        links,
    );
    Ok(router(state))
}
