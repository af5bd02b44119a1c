//! `herald serve`: the all-in-one local server.

use crate::config::{ServeArgs, Settings};
use anyhow::Context;
use herald_core::auth::{Scope, hash_key, key_from_secret, mint_key};
use herald_core::channels::{
    HostProviders, LogProvider, Providers, SmtpProvider, WebhookProvider, WebhookSecret,
};
use herald_core::domain::Channel;
use herald_core::integrations::{IntegrationRouter, LocalVault};
use herald_core::pipeline::intake::requeue_stranded;
use herald_core::pipeline::personalize::Personalizer;
use herald_core::ports::{KeyStore, Queue, SettingStore, Store, Stores};
use herald_core::templates::Renderer;
use herald_core::unsubscribe::UnsubscribeLinks;
use herald_core::workers::{Pipeline, spawn_all};
use herald_http::{AppState, router};
use herald_sqlite::SqliteBackend;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DEFAULT_APP: &str = "default";
/// How long shutdown waits for in-flight sends before leaving them to the next start.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.check().context("configuration error")?;
    init_logging(settings.json_logs);
    herald_core::net::install(settings.networks.clone());

    let data_dir = &args.data.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("HERALD_DATA_DIR: cannot create {}", data_dir.display()))?;
    let _lock = lock_data_dir(data_dir)?;
    let backend = SqliteBackend::open(&args.data.database())?;

    // Work a previous run held when it died comes back now, not after its lease expires.
    let released = backend.release_all_leases().await?;
    let requeued = requeue_stranded(&backend, &backend, chrono::Utc::now()).await?;
    if released + requeued as u64 > 0 {
        tracing::info!(released, requeued, "recovered work left by the previous run");
    }
    bootstrap_admin_key(&backend, &settings).await?;
    let providers = providers(&backend, &settings).await?;

    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("HERALD_ADDR: cannot listen on {}", settings.addr))?;
    let public_url = match &settings.public_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let stores = Stores::of(Arc::new(backend.clone()));
    let vault = LocalVault::from_env_or_file(settings.master_key.as_deref(), data_dir)
        .map_err(anyhow::Error::msg)
        .context("integration secrets")?;
    let mut factory =
        HostProviders::new(providers.log(), settings.webhook_timeout, settings.networks.clone());
    factory.public_url = Some(public_url.clone());
    let integrations = Arc::new(
        IntegrationRouter::new(
            stores.integrations.clone(),
            Arc::new(vault),
            Arc::new(factory),
            providers,
        )
        // The API and the workers share this router, and every write through the API drops
        // the app's cached set: sends need not read it from the database each time.
        .with_set_ttl(Duration::from_secs(300)),
    );
    let queue: Arc<dyn Queue> = Arc::new(backend.clone());
    let renderer = Arc::new(Renderer::with_max_part_bytes(settings.render_max_bytes));
    let links = Arc::new(UnsubscribeLinks::new(&public_url, stores.store.clone()));
    let personalizer =
        Arc::new(Personalizer::new(stores.templates.clone(), renderer.clone(), links.clone()));
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline {
        stores: stores.clone(),
        queue: queue.clone(),
        router: integrations.clone(),
        personalizer,
        config: settings.workers,
    };
    let worker_runtime = worker_runtime(settings.worker_nice)?;
    let mut workers = {
        let _on_worker_threads = worker_runtime.enter();
        spawn_all(pipeline, shutdown.clone())
    };
    tokio::spawn(purge_idempotency_keys(stores.store.clone(), shutdown.clone()));

    let state = AppState::new(stores, queue, integrations, settings.limits, renderer, links);
    println!("herald: listening on http://{}", listener.local_addr()?);
    let stop_http = CancellationToken::new();
    tokio::spawn({
        let (shutdown, stop_http) = (shutdown.clone(), stop_http.clone());
        async move {
            shutdown_signal(shutdown).await;
            stop_http.cancel();
        }
    });
    herald_http::server::serve(listener, router(state), settings.server, stop_http).await?;

    tracing::info!("draining in-flight work");
    shutdown.cancel();
    let drained =
        tokio::time::timeout(DRAIN_TIMEOUT, async { while workers.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!("some work did not finish in time; it resumes at the next start");
    }
    // Dropping a runtime inside another one's task would panic; nothing is left on it.
    worker_runtime.shutdown_background();
    if let Err(e) = backend.checkpoint_wal().await {
        tracing::warn!(error = %e, "the WAL was not emptied; the next start replays it");
    }
    println!("herald: stopped");
    Ok(())
}

/// The runtime the dispatch and send workers run on, apart from the API's: its
/// threads run at `nice`. At 0 (the default) they share the CPU evenly with the API's
/// threads and the SQLite writer; above it, a saturated machine serves intake first
/// and drains deliveries with the rest (docs/performance.md compares the two).
/// Returns once its worker threads have started: each names itself and sets its
/// niceness on its own thread, after the runtime is built.
fn worker_runtime(nice: i32) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("herald-worker")
        .on_thread_start({
            let started = started.clone();
            move || {
                lower_thread_priority(nice);
                let (count, changed) = &*started;
                *count.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
                changed.notify_all();
            }
        })
        .enable_all()
        .build()
        .context("start the workers' runtime")?;
    // tokio spawns the worker threads as it builds the runtime. The bound only keeps a
    // change in that from hanging the start: the workers would still run, just later.
    let (count, changed) = &*started;
    let count = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let waited = changed.wait_timeout_while(count, Duration::from_secs(10), |n| *n < threads);
    if waited.is_ok_and(|(_, timeout)| timeout.timed_out()) {
        tracing::warn!(threads, "the workers' threads had not all started after 10 s");
    }
    Ok(runtime)
}

/// Sets the calling thread's niceness: on Linux it is a per-thread attribute, and
/// raising it needs no privilege. Elsewhere, or if it fails, the thread keeps the
/// default, which costs latency, not correctness.
fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority only read their arguments.
        let result = unsafe {
            let thread = libc::gettid() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, thread, nice)
        };
        if result != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the worker threads' priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// One server per data directory: a second one would hand out the same leases.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<File> {
    let path = dir.join("herald.lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!("HERALD_DATA_DIR: another herald serve is using {}", dir.display())
    })?;
    Ok(file)
}

async fn bootstrap_admin_key(store: &SqliteBackend, settings: &Settings) -> anyhow::Result<()> {
    // The installation's own key: admin of `default`, operator of every app.
    let admin = vec![Scope::Admin, Scope::Operator];
    if let Some(secret) = &settings.admin_key {
        if store.api_key_by_hash(&hash_key(secret)).await?.is_none() {
            let key = key_from_secret(secret, DEFAULT_APP, "HERALD_ADMIN_KEY", admin);
            store.insert_api_key(&key.record).await?;
        }
    } else if store.count_api_keys().await? == 0 {
        let key = mint_key(DEFAULT_APP, "bootstrap", admin);
        store.insert_api_key(&key.record).await?;
        println!("herald: created an admin API key for app '{DEFAULT_APP}' (shown only once):");
        println!("herald: admin key: {}", key.secret);
    }
    Ok(())
}

async fn providers(store: &SqliteBackend, settings: &Settings) -> anyhow::Result<Providers> {
    let secret = match &settings.webhook_secret {
        Some(secret) => secret.clone(),
        None => {
            let stored = store.init_setting("webhook_secret", &WebhookSecret::generate()).await?;
            WebhookSecret::parse(&stored)
                .map_err(anyhow::Error::msg)
                .context("stored webhook secret")?
        }
    };
    let mut providers = Providers::new(Arc::new(LogProvider::default()));
    if settings.webhooks_over_http {
        let webhooks =
            WebhookProvider::new(secret, settings.webhook_timeout, settings.networks.clone());
        providers = providers.with(Channel::Webhook, Arc::new(webhooks));
    }
    if let Some(smtp) = &settings.smtp {
        let provider = SmtpProvider::new(smtp.clone()).map_err(anyhow::Error::msg)?;
        providers = providers.with(Channel::Email, Arc::new(provider));
    }
    Ok(providers)
}

async fn purge_idempotency_keys(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        let cutoff = chrono::Utc::now() - herald_core::ports::IDEMPOTENCY_WINDOW;
        if let Err(e) = store.purge_idempotency_keys(cutoff).await {
            tracing::warn!(error = %e, "could not purge idempotency keys");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn shutdown_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
        _ = shutdown.cancelled() => {}
    }
}
