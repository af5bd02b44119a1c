//! What the Lambda functions share: the backends built once per container from the
//! environment, and the handlers that turn Lambda events into pipeline stages. Each
//! function's `main.rs` only wires one handler to the runtime.

mod batch;
mod track;

pub use batch::{RecordQueue, Stages, handle_dispatch_batch, handle_send_batch};
pub use track::{StreamCounters, TrackSummary, Tracking, handle_track};

use super::dynamo::DynamoStore;
use super::sqs::SqsQueue;
use herald_core::auth::Scope;
use herald_core::channels::{
    HostProviders, LogProvider, Providers, SesProvider, SnsSmsProvider, WebhookProvider,
    WebhookSecret,
};
use herald_core::domain::Channel;
use herald_core::integrations::IntegrationRouter;
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::retry::RetryPolicy;
use herald_core::ports::{KeyStore, SettingStore};
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

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set (the SAM template sets it)"))
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
    pub async fn from_env() -> Result<Self, String> {
        let config = super::sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let queue = match optional("HERALD_QUEUE_URL_PREFIX") {
            Some(url_prefix) => SqsQueue::with_url_prefix(sqs, &url_prefix),
            None => SqsQueue::connect(sqs, &required("HERALD_QUEUE_PREFIX")?)
                .await
                .map_err(|e| e.to_string())?,
        };
        let queue = Arc::new(queue);
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            required("HERALD_TABLE")?,
            queue.clone(),
        ));
        let retry = RetryPolicy::default();
        let links = Arc::new(UnsubscribeLinks::new(
            &optional("HERALD_PUBLIC_URL").unwrap_or_else(|| "http://localhost".to_owned()),
            store.clone(),
        ));
        let personalizer =
            Arc::new(Personalizer::new(store.clone(), Arc::new(Renderer::new()), links));
        let log = Arc::new(LogProvider::default());
        let router = |providers: Providers| {
            let mut factory = HostProviders::new(
                providers.log(),
                Duration::from_secs(10),
                herald_core::net::policy().clone(),
            );
            factory.aws = Some(config.clone());
            let path = optional("HERALD_INTEGRATION_SECRETS_PATH")
                .unwrap_or_else(|| "/herald/integrations".to_owned());
            let vault = super::ssm::SsmVault::new(
                aws_sdk_ssm::Client::new(&config),
                &path,
                Duration::from_secs(300),
            );
            let cache = optional("HERALD_INTEGRATION_CACHE_SECS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(30);
            Arc::new(
                IntegrationRouter::new(
                    store.clone(),
                    Arc::new(vault),
                    Arc::new(factory),
                    providers,
                )
                .with_set_ttl(Duration::from_secs(cache)),
            )
        };
        if optional("HERALD_PROVIDERS").as_deref() == Some("none") {
            // dispatch and track never send: no default provider clients, no secrets.
            let router = router(Providers::new(log));
            return Ok(Self { store, queue, router, retry, personalizer, config });
        }
        // The signing secret is read at the first webhook send, not at init: a cold
        // start of send-email or send-sms never needs it, and send-webhook's first
        // invocation pays for it once.
        let webhooks = LazyWebhooks {
            config: config.clone(),
            store: store.clone(),
            provider: tokio::sync::OnceCell::new(),
        };
        let mut providers = Providers::new(log).with(Channel::Webhook, Arc::new(webhooks)).with(
            Channel::Sms,
            Arc::new(SnsSmsProvider::new(
                aws_sdk_sns::Client::new(&config),
                optional("HERALD_SMS_SENDER_ID"),
            )),
        );
        if let Some(from) = optional("HERALD_EMAIL_FROM") {
            let ses = SesProvider::new(
                aws_sdk_sesv2::Client::new(&config),
                from,
                optional("HERALD_SES_CONFIGURATION_SET"),
            )
            .with_list_unsubscribe(optional("HERALD_LIST_UNSUBSCRIBE"));
            providers = providers.with(Channel::Email, Arc::new(ses));
        }
        let router = router(providers);
        Ok(Self { store, queue, router, retry, personalizer, config })
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
            queue: self.queue.as_ref(),
            counters: self.store.as_ref(),
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

    /// Makes sure the admin key in the SSM SecureString parameter named by
    /// `HERALD_ADMIN_KEY_PARAMETER` exists for app `default` (the `api` function calls
    /// this at cold start, so a fresh stack can be used at once).
    pub async fn ensure_admin_key(&self) -> Result<(), String> {
        let Some(name) = optional("HERALD_ADMIN_KEY_PARAMETER") else {
            return Ok(());
        };
        let secret = secure_parameter(&self.config, &name).await?;
        let key = herald_core::auth::key_from_secret(
            &secret,
            "default",
            "admin",
            vec![Scope::Admin, Scope::Operator],
        );
        let store = self.store.as_ref();
        if store.api_key_by_hash(&key.record.hash).await.map_err(|e| e.to_string())?.is_none() {
            store.insert_api_key(&key.record).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

async fn secure_parameter(config: &aws_config::SdkConfig, name: &str) -> Result<String, String> {
    aws_sdk_ssm::Client::new(config)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!("SSM parameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(e))
        })?
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| format!("SSM parameter {name} has no value"))
}

/// The installation's webhook provider, built when the first webhook is sent.
struct LazyWebhooks {
    config: aws_config::SdkConfig,
    store: Arc<DynamoStore>,
    provider: tokio::sync::OnceCell<WebhookProvider>,
}

#[async_trait::async_trait]
impl herald_core::channels::Provider for LazyWebhooks {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(
        &self,
        message: &herald_core::channels::OutboundMessage,
    ) -> Result<herald_core::channels::Receipt, herald_core::channels::ProviderError> {
        let provider = self
            .provider
            .get_or_try_init(|| async {
                let secret = webhook_secret(&self.config, self.store.as_ref()).await?;
                let policy = herald_core::net::policy().clone();
                Ok::<_, String>(WebhookProvider::new(secret, Duration::from_secs(10), policy))
            })
            .await
            // Not fatal for good: the next attempt reads the parameter again.
            .map_err(herald_core::channels::ProviderError::transient)?;
        herald_core::channels::Provider::send(provider, message).await
    }
}

/// The webhook signing secret: from an SSM SecureString parameter when one is named
/// (the template creates it), else generated once and kept in the table.
async fn webhook_secret(
    config: &aws_config::SdkConfig,
    store: &DynamoStore,
) -> Result<WebhookSecret, String> {
    let text = match optional("HERALD_WEBHOOK_SECRET_PARAMETER") {
        Some(name) => secure_parameter(config, &name).await?,
        None => store
            .init_setting("webhook_secret", &WebhookSecret::generate())
            .await
            .map_err(|e| e.to_string())?,
    };
    WebhookSecret::parse(&text)
}
