//! What the Lambda functions share: the backends built once per container from the
//! environment, and the handlers that turn Lambda events into pipeline stages. Each
//! function's `main.rs` only wires one handler to the runtime.

mod batch;
mod error;
#[cfg(feature = "senders")]
mod senders;
mod track;

pub use batch::{RecordQueue, Stages, handle_dispatch_batch, handle_send_batch};
pub use error::LambdaError;
pub use track::{StreamCounters, TrackSummary, Tracking, handle_track};

use super::dynamo::DynamoStore;
use super::sqs::SqsQueue;
use herald_core::channels::{HostProviders, LogProvider, Providers};
use herald_core::integrations::IntegrationRouter;
#[cfg(not(feature = "senders"))]
use herald_core::integrations::{SecretValues, SecretVault, VaultError};
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::retry::RetryPolicy;
use herald_core::templates::Renderer;
use herald_core::unsubscribe::UnsubscribeLinks;
use std::sync::Arc;
use std::time::Duration;

/// JSON logs filtered by `RUST_LOG`, without timestamps (CloudWatch stamps each line).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
}

/// Everything a function needs, built once per container and reused by every
/// invocation (SDK clients keep their connection pools warm between invocations).
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsQueue>,
    /// The apps' integrations, over the installation's default providers.
    pub router: Arc<IntegrationRouter>,
    pub retry: RetryPolicy,
    /// Renders per recipient and signs unsubscribe links (api and send share the key).
    pub personalizer: Arc<Personalizer>,
    /// The SDK configuration the clients were built from, for clients built later.
    pub config: aws_config::SdkConfig,
}

fn required(name: &'static str) -> Result<String, LambdaError> {
    std::env::var(name).map_err(|_| LambdaError::MissingSetting(name))
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Backends {
    /// Reads `HERALD_TABLE`, `HERALD_QUEUE_URL_PREFIX` (or `HERALD_QUEUE_PREFIX`, looked
    /// up by name), `HERALD_PROVIDERS=none` (for functions that never send) and the
    /// provider settings (`HERALD_EMAIL_FROM`, `HERALD_SES_CONFIGURATION_SET`,
    /// `HERALD_SMS_SENDER_ID`, `HERALD_WEBHOOK_SECRET_PARAMETER`) and `HERALD_PUBLIC_URL`
    /// (where unsubscribe links point: the API's URL); region, credentials
    /// and `AWS_ENDPOINT_URL` come from the usual AWS environment.
    pub async fn from_env() -> Result<Self, LambdaError> {
        let config = super::sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let queue = match optional("HERALD_QUEUE_URL_PREFIX") {
            Some(url_prefix) => SqsQueue::with_url_prefix(sqs, &url_prefix),
            None => SqsQueue::connect(sqs, &required("HERALD_QUEUE_PREFIX")?).await?,
        };
        let queue = Arc::new(queue);
        let store = Arc::new(
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                required("HERALD_TABLE")?,
                queue.clone(),
            )
            .with_stream_outbox(&stream_outbox()?),
        );
        let retry = RetryPolicy::default();
        let links = Arc::new(UnsubscribeLinks::new(
            &optional("HERALD_PUBLIC_URL").unwrap_or_else(|| "http://localhost".to_owned()),
            store.clone(),
        ));
        let personalizer =
            Arc::new(Personalizer::new(store.clone(), Arc::new(Renderer::new()), links));
        let log = Arc::new(LogProvider::default());
        let providers = if optional("HERALD_PROVIDERS").as_deref() == Some("none") {
            // dispatch and track never send: no default provider clients, no secrets.
            Providers::new(log)
        } else {
            default_providers(&config, &store, log)?
        };
        let cache = optional("HERALD_INTEGRATION_CACHE_SECS").and_then(|s| s.parse().ok());
        let router = Arc::new(
            IntegrationRouter::new(
                store.clone(),
                secret_vault(&config),
                Arc::new(provider_factory(&config, providers.log(), &store)),
                providers,
            )
            .with_set_ttl(Duration::from_secs(cache.unwrap_or(30)))
            // Window limits hold across every instance: the pacing log is in the table.
            .with_pacer(store.clone()),
        );
        Ok(Self { store, queue, router, retry, personalizer, config })
    }
}

/// The priorities whose intake messages go by the table's stream
/// (`HERALD_STREAM_OUTBOX`: `medium,low`, `low`, or empty or `none` for none).
fn stream_outbox() -> Result<Vec<herald_core::domain::Priority>, LambdaError> {
    let setting = optional("HERALD_STREAM_OUTBOX").unwrap_or_default();
    if setting == "none" {
        return Ok(Vec::new());
    }
    let priorities = setting.split(',').map(str::trim).filter(|p| !p.is_empty());
    priorities
        .map(|p| {
            p.parse().map_err(|message| LambdaError::BadSetting {
                setting: "HERALD_STREAM_OUTBOX",
                message,
            })
        })
        .collect()
}

/// Builds an app's providers from its integrations; with `senders`, also SES and SNS
/// integrations on this SDK configuration. Vendors' access tokens are shared by every
/// instance through the table.
fn provider_factory(
    _config: &aws_config::SdkConfig,
    log: Arc<LogProvider>,
    store: &Arc<DynamoStore>,
) -> HostProviders {
    let mut factory =
        HostProviders::new(log, Duration::from_secs(10), herald_core::net::policy().clone());
    factory.tokens = herald_core::channels::chat::tokens::TokenCache::shared(store.clone());
    factory.public_url = optional("HERALD_PUBLIC_URL");
    #[cfg(feature = "senders")]
    {
        factory.aws = Some(_config.clone());
    }
    factory
}

#[cfg(feature = "senders")]
use senders::{default_providers, secret_vault};

/// Without `senders` the function never sends: it has no provider but the log and
/// opens no integration's secrets.
#[cfg(not(feature = "senders"))]
fn default_providers(
    _config: &aws_config::SdkConfig,
    _store: &Arc<DynamoStore>,
    _log: Arc<LogProvider>,
) -> Result<Providers, LambdaError> {
    Err(LambdaError::BadSetting {
        setting: "HERALD_PROVIDERS",
        message: "this function is built without the `senders` feature: set it to none".into(),
    })
}

#[cfg(not(feature = "senders"))]
fn secret_vault(_config: &aws_config::SdkConfig) -> Arc<dyn SecretVault> {
    Arc::new(NoSecrets)
}

/// The vault of a function that never sends: it holds nothing and opens nothing.
#[cfg(not(feature = "senders"))]
struct NoSecrets;

#[cfg(not(feature = "senders"))]
#[async_trait::async_trait]
impl SecretVault for NoSecrets {
    async fn seal(&self, _: &str, _: &str, _: &SecretValues) -> Result<String, VaultError> {
        Err(VaultError::Unavailable("this function keeps no secrets".into()))
    }
    async fn open(&self, _: &str, _: &str, _: &str) -> Result<SecretValues, VaultError> {
        Err(VaultError::Unavailable("this function reads no secrets".into()))
    }
    async fn remove(&self, _: &str, _: &str) -> Result<(), VaultError> {
        Err(VaultError::Unavailable("this function keeps no secrets".into()))
    }
}

impl Backends {
    /// The ports the batch handlers run the stages with.
    pub fn stages(&self) -> Stages<'_> {
        Stages {
            store: self.store.as_ref(),
            directory: self.directory(),
            queue: self.queue.clone(),
            router: &self.router,
            personalizer: &self.personalizer,
            retry: self.retry.clone(),
        }
    }

    /// The ports `track` works with.
    pub fn tracking(&self) -> Tracking<'_> {
        Tracking {
            store: self.store.as_ref(),
            counters: self.store.as_ref(),
            queue: self.queue.as_ref(),
        }
    }

    /// Where dispatch and fallback look up users, groups and preferences.
    pub fn directory(&self) -> herald_core::pipeline::dispatch::Directory<'_> {
        let store = self.store.as_ref();
        herald_core::pipeline::dispatch::Directory {
            users: store,
            groups: store,
            preferences: store,
        }
    }
}
