//! The integration contract: sets replaced under a revision, a send that fails over
//! from a broken integration to a working one, and a send that gave up and stopped
//! before its dead letter, recorded the same way on every backend.

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
    Acceptance, GroupStore, HeldJobs, IntegrationStore, LeasedJob, PreferenceStore, Queue,
    QueueName, Store, StoreError, StoreResult, TemplateStore, UserStore,
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

/// What a send needs beyond its store and queue: an app whose webhook integrations are
/// scripted by name (see `ScriptedProviders`), and what the working ones sent.
struct Sending {
    app: String,
    router: IntegrationRouter,
    personalizer: Personalizer,
    sent: Arc<Mutex<Vec<String>>>,
}

/// `Sending` for a new app with one enabled or disabled integration per `(name,
/// enabled)`, in that order of priority.
async fn sending<B: SendStores>(backend: &Arc<B>, prefix: &str, names: &[(&str, bool)]) -> Sending {
    let app = format!("{prefix}-{}", ulid::Ulid::new());
    let vault = Arc::new(LocalVault::new([3; 32]));
    let secrets = SecretValues::from([("token".to_owned(), "opened".to_owned())]);
    let mut items = Vec::new();
    for (priority, (name, enabled)) in names.iter().enumerate() {
        let id = format!("int_{}", priority + 1);
        let sealed = vault.seal(&app, &id, &secrets).await.unwrap();
        items.push(integration(&id, name, priority as i32, *enabled, sealed));
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
    Sending { app, router, personalizer, sent }
}

/// A high-priority webhook notification of `app`, accepted and dispatched: its one
/// delivery's send job is queued.
async fn dispatched_webhook<B: SendStores>(
    backend: &B,
    app: &str,
) -> herald_core::domain::Delivery {
    let mut n = notification(app, Priority::High);
    n.channels = vec![Channel::Webhook];
    n.content.webhook =
        Some(herald_core::domain::WebhookData(serde_json::json!({"hello": "world"})));
    backend.accept(Acceptance::new(n.clone())).await.unwrap();
    let directory = Directory { users: backend, groups: backend, preferences: backend };
    dispatch(backend, directory, &n.id, Utc::now()).await.unwrap();
    backend.deliveries(&n.id).await.unwrap().remove(0)
}

/// A webhook send whose first integration is `first` (`broken` or `flaky`, retried
/// once at most) fails over to `working`, skipping a disabled one; the delivery
/// records the integration and the timeline names it.
pub async fn sends_fail_over_between_integrations<B: SendStores>(
    backend: Arc<B>,
    queue: &dyn Queue,
    first: &str,
) {
    let names = [(first, true), ("off", false), ("working", true)];
    let Sending { router, personalizer, sent, app } = sending(&backend, "failover", &names).await;
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
    let delivery = dispatched_webhook(b, &app).await;
    let n_id = delivery.notification_id.clone();

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
    let timeline = b.timeline(&n_id).await.unwrap();
    let event =
        |name: &str| timeline.iter().find(|e| e.event == name).and_then(|e| e.detail.clone());
    let failed = event("attempt_failed").unwrap();
    assert!(failed.contains(&format!("integration \"{first}\" failed")), "{failed}");
    assert!(event("failover").unwrap().contains("integration \"working\""));
    assert_eq!(event("sent").unwrap(), "scripted via integration \"working\": working-1");
}

/// A queue whose first dead letter fails, as if the process stopped just before it.
struct StopsBeforeTheDeadLetter {
    queue: Arc<dyn Queue>,
    stopped: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl herald_core::ports::QueueProducer for StopsBeforeTheDeadLetter {
    async fn enqueue(&self, jobs: Vec<herald_core::ports::Job>) -> StoreResult<()> {
        self.queue.enqueue(jobs).await
    }
}

#[async_trait]
impl HeldJobs for StopsBeforeTheDeadLetter {
    async fn ack(&self, jobs: &[LeasedJob]) -> StoreResult<()> {
        self.queue.ack(jobs).await
    }
    async fn retry(&self, job: &LeasedJob, delay: Duration, error: &str) -> StoreResult<()> {
        self.queue.retry(job, delay, error).await
    }
    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()> {
        if !self.stopped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("stopped before the dead letter".into()));
        }
        self.queue.dead_letter(job, error).await
    }
}

/// A send that runs out of attempts marks its delivery failed and then dead-letters the
/// job. If it stops between the two, the job comes back, finds the delivery failed,
/// and is dead-lettered then: once, with the provider's error.
pub async fn sends_dead_letter_a_job_given_up_just_before_a_stop<B: SendStores>(
    backend: Arc<B>,
    queue: Arc<dyn Queue>,
) {
    let Sending { router, personalizer, app, .. } =
        sending(&backend, "gaveup", &[("flaky", true)]).await;
    let b = backend.as_ref();
    let stopping = StopsBeforeTheDeadLetter { queue: queue.clone(), stopped: Default::default() };
    let cx = SendContext {
        store: b,
        queue: &stopping,
        router: &router,
        personalizer: &personalizer,
        directory: Directory { users: b, groups: b, preferences: b },
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
    };
    let delivery = dispatched_webhook(b, &app).await;
    let lease = |visibility| queue.lease(QueueName::Send(Channel::Webhook), 10, visibility);

    let first = lease(Duration::from_secs(30)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(send(&cx, &first[0]).await.is_err(), "the run stops before its dead letter");
    let failed = b.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(failed.status, DeliveryStatus::Failed);
    // The stopped run's lease runs out.
    queue.retry(&first[0], Duration::ZERO, "stopped").await.unwrap();

    let again = lease(Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 1, "the job comes back");
    assert!(again[0].attempts > first[0].attempts);
    assert_eq!(send(&cx, &again[0]).await.unwrap(), SendOutcome::DeadLettered);
    let dead: Vec<_> = queue
        .dead_letters(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.payload.contains(&delivery.id.to_string()))
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].error, "503 from the vendor");
    assert!(lease(Duration::from_secs(30)).await.unwrap().is_empty(), "and does not come back");
}
