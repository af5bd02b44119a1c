//! Which providers a send may use, in order: the app's enabled integrations of the
//! channel by priority, or the installation's default provider when it has none.
//! Providers are built once per integration revision (secrets opened once), and each
//! integration's rate limit is one GCRA limiter per process. A window limit (a chat
//! robot's 20 a minute) is shared by every sender through the pacer (see `pacing`).

use super::pacing::{Claimant, LocalPacer, Pacer, WindowLimit};
use super::vault::{SecretValues, SecretVault};
use super::{Integration, IntegrationSet};
use crate::channels::{Provider, Providers};
use crate::domain::{Address, Channel};
use crate::ports::{IntegrationStore, StoreResult};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Builds a provider from an integration on this host. A host builds the providers it
/// was compiled with (`herald serve`: SMTP; the Lambda functions: SES and SNS).
pub trait ProviderFactory: Send + Sync + 'static {
    /// The provider, or why this host cannot build it.
    fn build(
        &self,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String>;
}

/// The integration a route belongs to (none for the installation default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteIntegration {
    pub id: String,
    pub name: String,
}

/// One way to send, in failover order.
#[derive(Clone)]
pub struct Route {
    pub integration: Option<RouteIntegration>,
    /// The provider, or why it could not be built (the send fails over past it).
    pub provider: Result<Arc<dyn Provider>, String>,
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// The window the integration's sends are paced to, with the pacer's key.
    pub window: Option<(String, WindowLimit)>,
}

impl Route {
    /// The provider's short name, as deliveries record it.
    pub fn provider_name(&self) -> String {
        match &self.provider {
            Ok(provider) => provider.name().to_owned(),
            Err(_) => "unavailable".to_owned(),
        }
    }

    /// How the timeline names this route: `smtp via "primary"`, or just `smtp`.
    pub fn label(&self) -> String {
        match &self.integration {
            Some(i) => format!("{} via integration \"{}\"", self.provider_name(), i.name),
            None => self.provider_name(),
        }
    }

    /// Waits for the route's rate limit, if it has one.
    pub async fn until_ready(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
    }
}

struct Built {
    revision: u64,
    provider: Result<Arc<dyn Provider>, String>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    window: Option<WindowLimit>,
}

pub struct IntegrationRouter {
    store: Arc<dyn IntegrationStore>,
    vault: Arc<dyn SecretVault>,
    factory: Arc<dyn ProviderFactory>,
    defaults: Providers,
    pacer: Arc<dyn Pacer>,
    /// How long an app's integrations are read from memory before the store again.
    set_ttl: Duration,
    sets: Mutex<HashMap<String, (Instant, Arc<IntegrationSet>)>>,
    built: Mutex<HashMap<String, Arc<Built>>>,
}

impl IntegrationRouter {
    pub fn new(
        store: Arc<dyn IntegrationStore>,
        vault: Arc<dyn SecretVault>,
        factory: Arc<dyn ProviderFactory>,
        defaults: Providers,
    ) -> Self {
        Self {
            store,
            vault,
            factory,
            defaults,
            pacer: Arc::new(LocalPacer::default()),
            set_ttl: Duration::ZERO,
            sets: Mutex::default(),
            built: Mutex::default(),
        }
    }

    /// A router whose secrets are sealed under a key that lives only in this process
    /// (for tests and tools that keep nothing across runs).
    pub fn with_ephemeral_key(store: Arc<dyn IntegrationStore>, defaults: Providers) -> Self {
        let factory = crate::channels::HostProviders::new(
            defaults.log(),
            Duration::from_secs(10),
            crate::net::policy().clone(),
        );
        let vault = super::LocalVault::new(rand::random());
        Self::new(store, Arc::new(vault), Arc::new(factory), defaults)
    }

    /// Keeps an app's integrations in memory this long (a Lambda instance cannot be
    /// told of a change; the local server is, through `forget`).
    pub fn with_set_ttl(mut self, ttl: Duration) -> Self {
        self.set_ttl = ttl;
        self
    }

    /// Shares window limits through `pacer` (the store, when senders are many
    /// processes) instead of this process's memory.
    pub fn with_pacer(mut self, pacer: Arc<dyn Pacer>) -> Self {
        self.pacer = pacer;
        self
    }

    /// Takes a send slot on the route's window limit, or says how long until one frees.
    pub async fn pace(
        &self,
        route: &Route,
        who: Claimant<'_>,
    ) -> StoreResult<Result<(), Duration>> {
        match &route.window {
            Some((key, limit)) => self.pacer.acquire(key, *limit, who).await,
            None => Ok(Ok(())),
        }
    }

    /// Takes a slot on the provider's per-recipient limit, if it has one, for
    /// `recipient` (the pacer keys it by a hash of the address's JSON).
    pub async fn pace_recipient(
        &self,
        route: &Route,
        recipient: &Address,
        who: Claimant<'_>,
    ) -> StoreResult<Result<(), Duration>> {
        let (Ok(provider), Some(integration)) = (&route.provider, &route.integration) else {
            return Ok(Ok(()));
        };
        let Some(limit) = provider.recipient_window_limit() else { return Ok(Ok(())) };
        // Only now, for the providers that limit each recipient: most sends skip it.
        let recipient = serde_json::to_string(recipient).unwrap_or_default();
        use sha2::Digest;
        let digest = sha2::Sha256::digest(recipient.as_bytes());
        let digest: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.pacer.acquire(&format!("{}#{digest}", integration.id), limit, who).await
    }

    pub fn defaults(&self) -> &Providers {
        &self.defaults
    }

    pub fn vault(&self) -> &Arc<dyn SecretVault> {
        &self.vault
    }

    /// Drops what is cached of `app`'s integrations (after a change through the API).
    pub fn forget(&self, app: &str) {
        self.sets.lock().expect("integration cache").remove(app);
    }

    async fn set_of(&self, app: &str) -> StoreResult<Arc<IntegrationSet>> {
        if !self.set_ttl.is_zero() {
            let sets = self.sets.lock().expect("integration cache");
            if let Some((read_at, set)) = sets.get(app)
                && read_at.elapsed() < self.set_ttl
            {
                return Ok(set.clone());
            }
        }
        let set = Arc::new(self.store.integrations(app).await?);
        if !self.set_ttl.is_zero() {
            let mut sets = self.sets.lock().expect("integration cache");
            sets.insert(app.to_owned(), (Instant::now(), set.clone()));
        }
        Ok(set)
    }

    /// The routes for a send of `app` on `channel`, in the order to try them. A send to
    /// a group robot (`robot`) goes through the integration of that name only; any
    /// other skips robots.
    pub async fn routes(
        &self,
        app: &str,
        channel: Channel,
        robot: Option<&str>,
    ) -> StoreResult<Vec<Route>> {
        let set = self.set_of(app).await?;
        let is_robot = |i: &Integration| super::catalog::spec(&i.provider).is_some_and(|s| s.robot);
        let integrations: Vec<&Integration> = set
            .for_channel(channel)
            .into_iter()
            .filter(|i| match robot {
                Some(name) => i.name == name && is_robot(i),
                None => !is_robot(i),
            })
            .collect();
        if let Some(name) = robot
            && integrations.is_empty()
        {
            let why = format!("the app has no enabled {channel} robot integration named '{name}'");
            return Ok(vec![Route {
                integration: None,
                provider: Err(why),
                limiter: None,
                window: None,
            }]);
        }
        if integrations.is_empty() {
            let provider = self.defaults.for_channel(channel);
            return Ok(vec![Route {
                integration: None,
                provider: Ok(provider),
                limiter: None,
                window: None,
            }]);
        }
        let mut routes = Vec::with_capacity(integrations.len());
        for integration in integrations {
            routes.push(self.route(app, integration).await);
        }
        Ok(routes)
    }

    /// The route of one integration (also for a test send, enabled or not).
    pub async fn route(&self, app: &str, integration: &Integration) -> Route {
        let built = self.build(app, integration).await;
        Route {
            integration: Some(RouteIntegration {
                id: integration.id.clone(),
                name: integration.name.clone(),
            }),
            provider: built.provider.clone(),
            limiter: built.limiter.clone(),
            window: built.window.map(|limit| (format!("{app}/{}", integration.id), limit)),
        }
    }

    async fn build(&self, app: &str, integration: &Integration) -> Arc<Built> {
        let key = format!("{app}\0{}", integration.id);
        if let Some(built) = self.built.lock().expect("provider cache").get(&key)
            && built.revision == integration.revision
        {
            return built.clone();
        }
        let (provider, cacheable) =
            match self.vault.open(app, &integration.id, &integration.sealed).await {
                Ok(secrets) => (self.factory.build(integration, &secrets), true),
                // Unreadable stays unreadable until the record changes; an outage may not.
                Err(e) => (Err(e.to_string()), matches!(e, super::VaultError::Unreadable(_))),
            };
        let per_second = integration
            .rate_limit_per_second
            .or_else(|| provider.as_ref().ok().and_then(|p| p.rate_limit_per_second()));
        let limiter = per_second
            .and_then(NonZeroU32::new)
            .map(|n| Arc::new(RateLimiter::direct(Quota::per_second(n))));
        let window = integration
            .window_limit
            .or_else(|| provider.as_ref().ok().and_then(|p| p.window_limit()));
        let built = Arc::new(Built { revision: integration.revision, provider, limiter, window });
        if cacheable {
            self.built.lock().expect("provider cache").insert(key, built.clone());
        }
        built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::LogProvider;
    use crate::integrations::{LocalVault, SecretVault};
    use async_trait::async_trait;
    use chrono::Utc;

    /// An app whose integrations are given up front (the store is not under test).
    struct Fixed(IntegrationSet);

    #[async_trait]
    impl IntegrationStore for Fixed {
        async fn integrations(&self, _app: &str) -> StoreResult<IntegrationSet> {
            Ok(self.0.clone())
        }
        async fn replace_integrations(
            &self,
            _: &str,
            _: &[Integration],
            _: u64,
        ) -> StoreResult<bool> {
            Ok(false)
        }
    }

    async fn integration(
        vault: &LocalVault,
        id: &str,
        priority: i32,
        enabled: bool,
        limit: Option<u32>,
    ) -> Integration {
        Integration {
            id: id.into(),
            channel: Channel::Email,
            provider: "log".into(),
            name: id.into(),
            config: Default::default(),
            enabled,
            priority,
            rate_limit_per_second: limit,
            window_limit: None,
            secret_hints: Default::default(),
            sealed: vault.seal("app", id, &SecretValues::new()).await.unwrap(),
            revision: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    async fn router(items: Vec<Integration>, vault: LocalVault) -> IntegrationRouter {
        let defaults = Providers::new(Arc::new(LogProvider::default()));
        let factory = crate::channels::HostProviders::new(
            defaults.log(),
            Duration::from_secs(1),
            crate::net::policy().clone(),
        );
        let store = Arc::new(Fixed(IntegrationSet { items, revision: 1 }));
        IntegrationRouter::new(store, Arc::new(vault), Arc::new(factory), defaults)
    }

    #[tokio::test]
    async fn routes_follow_priority_skip_disabled_and_fall_back_to_the_default() {
        let vault = LocalVault::new([1; 32]);
        let items = vec![
            integration(&vault, "int_b", 2, true, None).await,
            integration(&vault, "int_off", 0, false, None).await,
            integration(&vault, "int_a", 1, true, Some(1)).await,
        ];
        let router = router(items, vault).await;
        let routes = router.routes("app", Channel::Email, None).await.unwrap();
        let ids: Vec<&str> =
            routes.iter().map(|r| r.integration.as_ref().unwrap().id.as_str()).collect();
        assert_eq!(ids, ["int_a", "int_b"]);
        // One send a second through int_a: the second is refused until a second passes.
        let limiter = routes[0].limiter.as_ref().expect("int_a is limited");
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        assert!(routes[1].limiter.is_none());
        // No integration on SMS: the installation's default provider.
        let sms = router.routes("app", Channel::Sms, None).await.unwrap();
        assert!(sms.len() == 1 && sms[0].integration.is_none());
    }

    #[tokio::test]
    async fn secrets_that_do_not_open_make_the_route_unavailable() {
        let vault = LocalVault::new([1; 32]);
        let mut broken = integration(&vault, "int_x", 0, true, None).await;
        broken.sealed = "aes256gcm:AAAA".into();
        let router = router(vec![broken], LocalVault::new([2; 32])).await;
        let routes = router.routes("app", Channel::Email, None).await.unwrap();
        let why = routes[0].provider.as_ref().err().expect("unavailable");
        assert!(why.contains("cannot be opened"), "{why}");
    }
}
