//! The integration contract: sets replaced under a revision, and a send that fails
//! over from a broken integration to a working one, recorded the same way on every
//! backend.

use super::notification;
use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use herald_core::channels::{
    LogProvider, OutboundMessage, Provider, ProviderError, Providers, Receipt,
};
use herald_core::domain::{Channel, DeliveryStatus, Priority};
use herald_core::integrations::{
    Integration, IntegrationRouter, LocalVault, ProviderFactory, SecretValues, SecretVault,
};
use herald_core::pipeline::dispatch::{Directory, dispatch};
use herald_core::pipeline::personalize::Personalizer;
use herald_core::pipeline::retry::RetryPolicy;
use herald_core::pipeline::send::{SendContext, SendOutcome, send};
use herald_core::ports::{
    Acceptance, GroupStore, IntegrationStore, PreferenceStore, Queue, QueueName, Store,
    TemplateStore, UserStore,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn integration(id: &str, name: &str, priority: i32, enabled: bool, sealed: String) -> Integration {
    let now = Utc::now().trunc_subsecs(3);
    Integration {
        id: id.into(),
        channel: Channel::Webhook,
        provider: "webhook".into(),
        name: name.into(),
        config: Default::default(),
        enabled,
        priority,
        rate_limit_per_second: None,
        window_limit: None,
        secret_hints: Default::default(),
        sealed,
        revision: 1,
        created_at: now,
        updated_at: now,
    }
}

pub async fn integrations_are_replaced_under_a_revision(store: &dyn IntegrationStore) {
    let app = format!("int-{}", ulid::Ulid::new());
    let empty = store.integrations(&app).await.unwrap();
    assert_eq!((empty.items.len(), empty.revision), (0, 0));
    let first = vec![integration("int_a", "a", 0, true, "sealed-a".into())];
    assert!(store.replace_integrations(&app, &first, 0).await.unwrap());
    assert!(!store.replace_integrations(&app, &first, 0).await.unwrap(), "a second create loses");
    let stored = store.integrations(&app).await.unwrap();
    assert_eq!((stored.items.clone(), stored.revision), (first.clone(), 1));
    let second = vec![first[0].clone(), integration("int_b", "b", 1, true, "sealed-b".into())];
    assert!(!store.replace_integrations(&app, &second, 7).await.unwrap(), "a stale revision loses");
    assert!(store.replace_integrations(&app, &second, 1).await.unwrap());
    assert_eq!(store.integrations(&app).await.unwrap().revision, 2);
    let other = store.integrations(&format!("{app}-other")).await.unwrap();
    assert!(other.items.is_empty(), "sets are per app");
}

/// Providers by integration name: `broken` answers like a suspended account, `flaky`
/// like an outage, `working` records what it sends.
struct ScriptedProviders {
    sent: Arc<Mutex<Vec<String>>>,
}

struct Scripted {
    name: String,
    sent: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, ProviderError> {
        match self.name.as_str() {
            "broken" => Err(ProviderError::Unavailable("account suspended".into())),
            "flaky" => Err(ProviderError::transient("503 from the vendor")),
            _ => {
                self.sent.lock().unwrap().push(message.delivery_id.to_string());
                Ok(Receipt { provider_message_id: Some(format!("{}-1", self.name)) })
            }
        }
    }
}

impl ProviderFactory for ScriptedProviders {
    fn build(&self, i: &Integration, secrets: &SecretValues) -> Result<Arc<dyn Provider>, String> {
        assert_eq!(secrets.get("token").map(String::as_str), Some("opened"), "secrets open");
        Ok(Arc::new(Scripted { name: i.name.clone(), sent: self.sent.clone() }))
    }
}

/// A store with every port a send reads.
pub trait SendStores:
    Store + TemplateStore + UserStore + GroupStore + PreferenceStore + IntegrationStore
{
}
impl<T> SendStores for T where
    T: Store + TemplateStore + UserStore + GroupStore + PreferenceStore + IntegrationStore
{
}

/// A webhook send whose first integration is `first` (`broken` or `flaky`, retried
/// once at most) fails over to `working`, skipping a disabled one; the delivery
/// records the integration and the timeline names it.
pub async fn sends_fail_over_between_integrations<B: SendStores>(
    backend: Arc<B>,
    queue: &dyn Queue,
    first: &str,
) {
    let app = format!("failover-{}", ulid::Ulid::new());
    let vault = Arc::new(LocalVault::new([3; 32]));
    let secrets = SecretValues::from([("token".to_owned(), "opened".to_owned())]);
    let mut items = Vec::new();
    for (id, name, priority, enabled) in
        [("int_1", first, 0, true), ("int_2", "off", 1, false), ("int_3", "working", 2, true)]
    {
        let sealed = vault.seal(&app, id, &secrets).await.unwrap();
        items.push(integration(id, name, priority, enabled, sealed));
    }
    assert!(backend.replace_integrations(&app, &items, 0).await.unwrap());

    let sent = Arc::new(Mutex::new(Vec::new()));
    let factory = ScriptedProviders { sent: sent.clone() };
    let defaults = Providers::new(Arc::new(LogProvider::default()));
    let router = IntegrationRouter::new(backend.clone(), vault, Arc::new(factory), defaults);
    let links = Arc::new(herald_core::unsubscribe::UnsubscribeLinks::new(
        "http://localhost",
        backend.clone(),
    ));
    let renderer = Arc::new(herald_core::templates::Renderer::new());
    let personalizer = Personalizer::new(backend.clone(), renderer, links);
    let b = backend.as_ref();
    let directory = Directory { users: b, groups: b, preferences: b };
    let cx = SendContext {
        store: b,
        queue,
        router: &router,
        personalizer: &personalizer,
        directory,
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
    };

    let mut n = notification(&app, Priority::High);
    n.channels = vec![Channel::Webhook];
    n.content.webhook =
        Some(herald_core::domain::WebhookData(serde_json::json!({"hello": "world"})));
    b.accept(Acceptance::new(n.clone())).await.unwrap();
    dispatch(b, directory, &n.id, Utc::now()).await.unwrap();
    let delivery = b.deliveries(&n.id).await.unwrap().remove(0);

    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let jobs =
            queue.lease(QueueName::Send(Channel::Webhook), 10, Duration::from_secs(30)).await;
        for job in jobs.unwrap() {
            outcomes.push(send(&cx, &job).await.unwrap());
        }
        if outcomes.contains(&SendOutcome::Sent) {
            break;
        }
    }
    assert_eq!(outcomes, [SendOutcome::FailedOver, SendOutcome::Sent]);
    assert_eq!(*sent.lock().unwrap(), [delivery.id.to_string()]);
    let delivery = b.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Sent);
    assert_eq!(delivery.integration.as_deref(), Some("int_3"));
    let timeline = b.timeline(&n.id).await.unwrap();
    let event =
        |name: &str| timeline.iter().find(|e| e.event == name).and_then(|e| e.detail.clone());
    let failed = event("attempt_failed").unwrap();
    assert!(failed.contains(&format!("integration \"{first}\" failed")), "{failed}");
    assert!(event("failover").unwrap().contains("integration \"working\""));
    assert_eq!(event("sent").unwrap(), "scripted via integration \"working\": working-1");
}
