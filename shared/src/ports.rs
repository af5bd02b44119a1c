//! The ports the pipeline stages are written against. Each has a local backend (SQLite)
//! and, later, an AWS one; both must pass the same contract tests.

use crate::auth::ApiKeyRecord;
use crate::domain::preferences::Period;
use crate::domain::{CategorySettings, Group, Preferences, User};
use crate::domain::{
    Channel, Delivery, DeliveryId, DeliveryStatus, Notification, NotificationId,
    NotificationStatus, Priority, TimelineEvent,
};
use crate::templates::{Template, TemplateVersion};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What went wrong in a backend, in the classes the hosts act on: a job whose store
/// is `Unavailable` is tried again later; one that meets a `Corrupt` record goes to the
/// dead letters at once, since no retry will make the record readable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another write changed what this one was conditional on.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Throttled, busy, timed out or unreachable: worth trying again.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored record that does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the operation may succeed if tried again unchanged.
    pub fn is_transient(&self) -> bool {
        !matches!(self, StoreError::Corrupt(_))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the send stage reads first for a delivery (see `Store::delivery_to_send`): the
/// delivery, if stored, and its notification unless the delivery is settled.
pub type DeliveryRead = Option<(Delivery, Option<Notification>)>;

/// How long an idempotency key is honoured, on every backend.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// What `Store::accept` stores: a new notification, its idempotency claim, and the
/// queue messages that go out with it.
#[derive(Debug)]
pub struct Acceptance {
    pub notification: Notification,
    pub claim: Option<IdempotencyClaim>,
    /// Deliveries planned at intake (every recipient a direct address), stored with
    /// the notification, which is then stored `dispatched`: the dispatch stage is
    /// skipped. Empty when dispatch plans them.
    pub deliveries: Vec<Delivery>,
    pub outbox: Vec<Job>,
}

impl Acceptance {
    /// A notification for dispatch to plan, with no claim and no messages.
    pub fn new(notification: Notification) -> Self {
        Acceptance { notification, claim: None, deliveries: Vec::new(), outbox: Vec::new() }
    }

    pub fn with_claim(self, claim: Option<IdempotencyClaim>) -> Self {
        Acceptance { claim, ..self }
    }

    pub fn with_outbox(self, outbox: Vec<Job>) -> Self {
        Acceptance { outbox, ..self }
    }
}

/// An idempotency key together with a hash of the request body it was first used with.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub body_hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AcceptOutcome {
    Created,
    /// The key was used before with the same body: this is the notification it made.
    Replayed(NotificationId),
    /// The key was used before with a different body.
    KeyReused,
}

#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
    pub priority: Option<Priority>,
    pub channel: Option<Channel>,
    pub category: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Return notifications older than this one (ids sort by time).
    pub before_id: Option<NotificationId>,
    pub limit: usize,
}

/// A page of notifications, and the cursor to continue from when the backend stopped
/// reading before it found `limit` (DynamoDB's bounded filtered reads).
#[derive(Debug, Clone, Default)]
pub struct NotificationList {
    pub items: Vec<Notification>,
    pub resume_before: Option<NotificationId>,
}

/// How much later than its `created_at` a notification's id may have been made
/// (the id is made after the time is read, on the same clock).
const ID_AFTER_CREATED: chrono::Duration = chrono::Duration::seconds(60);

impl NotificationFilter {
    /// The window of ids the filter can match, from its times and cursor: ids at or
    /// above the first, and below the second. Backends read this range by key; the
    /// exact time checks still apply on top.
    pub fn id_range(&self) -> (Option<String>, Option<String>) {
        let id_at = |t: DateTime<Utc>| {
            let millis = u64::try_from(t.timestamp_millis()).unwrap_or(0);
            format!("{}_{}", NotificationId::PREFIX, ulid::Ulid::from_parts(millis, 0))
        };
        let lowest = self.created_after.map(id_at);
        let by_time = self.created_before.map(|t| id_at(t + ID_AFTER_CREATED));
        let by_cursor = self.before_id.as_ref().map(ToString::to_string);
        let highest = match (by_time, by_cursor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (lowest, highest)
    }
}

/// What a settled delivery records besides its new status.
#[derive(Debug, Clone, Default)]
pub struct DeliveryOutcome {
    pub provider: Option<String>,
    /// How the timeline names the integration used (`smtp via integration "main"`),
    /// when the app's own integration sent it.
    pub integration: Option<String>,
    pub provider_message_id: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
}

impl DeliveryOutcome {
    /// What the timeline records with the new status: the reason, or the provider's
    /// message id, after the integration that sent it.
    pub fn timeline_detail(&self) -> Option<String> {
        let said = self.reason.as_deref().or(self.provider_message_id.as_deref());
        match (&self.integration, said) {
            (Some(via), Some(said)) => Some(format!("{via}: {said}")),
            (Some(via), None) => Some(via.clone()),
            (None, said) => said.map(str::to_owned),
        }
    }
}

/// API keys, stored by the hash of their secret.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn count_api_keys(&self) -> StoreResult<u64>;
}

/// Installation settings made once and kept (generated signing keys).
#[async_trait]
pub trait SettingStore: Send + Sync + 'static {
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
    /// Stores `value` unless the setting exists; returns the value in force.
    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String>;
}

/// Which delivery a vendor's message id belongs to, for vendors whose receipts name
/// only their own id (WeChat's `TEMPLATESENDJOBFINISH` names its `msgid`). Kept as long
/// as deliveries are.
#[async_trait]
pub trait ReceiptStore: Send + Sync + 'static {
    async fn remember_receipt(
        &self,
        provider: &str,
        message_id: &str,
        delivery: &DeliveryId,
    ) -> StoreResult<()>;
    async fn receipt_delivery(
        &self,
        provider: &str,
        message_id: &str,
    ) -> StoreResult<Option<DeliveryId>>;
}

/// Notifications, their deliveries and timelines: what the pipeline stages write.
/// A backend's `Store` also holds its keys, settings and receipt index.
#[async_trait]
pub trait Store: KeyStore + SettingStore + ReceiptStore {
    /// Stores a new notification (as `accepted`, or `dispatched` with the deliveries
    /// planned at intake), honouring the idempotency claim atomically: of many
    /// concurrent requests with one key, exactly one creates.
    ///
    /// `outbox` holds the queue messages that must go out if and only if the
    /// notification is created (a transactional outbox). A backend whose queue lives in
    /// the same database (SQLite) writes them in the same transaction; one whose queue
    /// does not (DynamoDB and SQS) sends them first, so a crash in between leaves a
    /// message for a notification that is not there (dispatch lets it go, see
    /// `DispatchOutcome::Missing`, and a send message the same), never a notification
    /// without its message.
    async fn accept(&self, acceptance: Acceptance) -> StoreResult<AcceptOutcome>;

    /// `accept` for many notifications (the batch endpoint), at most `in_flight` at
    /// once; one result per item, in order. A backend whose queue is apart (SQS)
    /// overrides it to send every outbox in as few queue calls as it can.
    async fn accept_many(
        &self,
        items: Vec<Acceptance>,
        in_flight: usize,
    ) -> Vec<StoreResult<AcceptOutcome>> {
        use futures::StreamExt;
        futures::stream::iter(items)
            .map(|a| self.accept(a))
            .buffered(in_flight.max(1))
            .collect()
            .await
    }

    async fn notification(&self, id: &NotificationId) -> StoreResult<Option<Notification>>;
    /// One page, newest first. A backend that reads a bounded number of records per
    /// call may stop before `limit` and say where to go on.
    async fn list_notifications(
        &self,
        app_id: &str,
        filter: &NotificationFilter,
    ) -> StoreResult<NotificationList>;
    /// Notifications still `accepted` that were created before `before`, oldest first:
    /// the ones a crash may have left without a queue message (none where the message
    /// is sent before the write).
    /// Pages by id: pass the last id of the previous page as `after`.
    async fn stranded_notifications(
        &self,
        before: DateTime<Utc>,
        after: Option<&NotificationId>,
        limit: usize,
    ) -> StoreResult<Vec<Notification>>;

    /// Moves a notification to `next` if its current status allows it; returns whether
    /// it moved. Records the change in the timeline.
    async fn transition_notification(
        &self,
        id: &NotificationId,
        next: NotificationStatus,
        detail: Option<String>,
    ) -> StoreResult<bool>;

    /// Inserts deliveries that do not exist yet (same id = same delivery) and records
    /// their initial status in the timeline; then queues `outbox` (deduplicated).
    async fn insert_deliveries(&self, deliveries: &[Delivery], outbox: Vec<Job>)
    -> StoreResult<()>;
    /// Records a notification's fan-out in one step: inserts the deliveries, queues
    /// `outbox`, moves the notification to `dispatched` and settles it if no delivery
    /// is pending. Safe to repeat: existing deliveries and queued jobs are kept.
    async fn record_dispatch(
        &self,
        id: &NotificationId,
        deliveries: &[Delivery],
        outbox: Vec<Job>,
    ) -> StoreResult<bool>;
    /// For a send message that comes back for a delivery already settled: makes the
    /// notification's pending count agree with its deliveries (and settles it), in case
    /// the run that settled the delivery stopped before counting it. Nothing to do
    /// where both are one transaction (SQLite).
    async fn recount_pending(&self, _notification: &NotificationId) -> StoreResult<()> {
        Ok(())
    }
    async fn delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>>;
    /// A delivery and, unless it is settled, its notification (None if that is not
    /// stored yet): what the send stage reads first. One call, so that a backend that
    /// finds a delivery through its notification (DynamoDB, for one planned at intake)
    /// reads the notification once.
    async fn delivery_to_send(&self, id: &DeliveryId) -> StoreResult<DeliveryRead> {
        let Some(delivery) = self.delivery(id).await? else { return Ok(None) };
        if delivery.status.is_settled() {
            return Ok(Some((delivery, None)));
        }
        let notification = self.notification(&delivery.notification_id).await?;
        Ok(Some((delivery, notification)))
    }
    /// `delivery_to_send` for each of `ids`, in their order: what a worker reads for a
    /// leased batch of send jobs. A backend that can read them together (SQLite, in one
    /// read transaction) overrides it.
    async fn deliveries_to_send(&self, ids: &[DeliveryId]) -> StoreResult<Vec<DeliveryRead>> {
        let mut reads = Vec::with_capacity(ids.len());
        for id in ids {
            reads.push(self.delivery_to_send(id).await?);
        }
        Ok(reads)
    }
    async fn deliveries(&self, notification: &NotificationId) -> StoreResult<Vec<Delivery>>;
    /// Moves a delivery to `next` if its current status allows it, and then settles the
    /// notification (`sent` or `failed`) once none of its deliveries is pending.
    async fn transition_delivery(
        &self,
        id: &DeliveryId,
        next: DeliveryStatus,
        outcome: DeliveryOutcome,
    ) -> StoreResult<bool>;
    /// Records a failed attempt that will be retried.
    async fn record_attempt(&self, id: &DeliveryId, attempts: u32, error: &str) -> StoreResult<()>;
    /// Moves an unsettled delivery to another of its app's integrations (a failover)
    /// and records `detail` in its timeline; false if it is settled or unknown.
    async fn switch_integration(
        &self,
        id: &DeliveryId,
        integration: &str,
        detail: &str,
    ) -> StoreResult<bool>;
    /// Adds an event that changes no status (a provider's `opened`, `clicked`,
    /// `complained`) to the delivery's timeline; false if the delivery is unknown.
    async fn record_delivery_event(
        &self,
        id: &DeliveryId,
        event: &str,
        detail: Option<&str>,
    ) -> StoreResult<bool>;

    async fn timeline(&self, id: &NotificationId) -> StoreResult<Vec<TimelineEvent>>;

    /// A notification with its deliveries and timeline. A backend that can read the
    /// three at one point in time (SQLite, in one read transaction) overrides it, so
    /// that the status never lags behind the deliveries shown with it.
    async fn notification_detail(&self, id: &NotificationId) -> StoreResult<Option<Detail>> {
        let Some(notification) = self.notification(id).await? else { return Ok(None) };
        let deliveries = self.deliveries(id).await?;
        let timeline = self.timeline(id).await?;
        Ok(Some(Detail { notification, deliveries, timeline }))
    }

    /// Deletes idempotency keys older than `before`.
    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// A queue. `Dispatch` takes whole notifications; each channel has its own send queue
/// of deliveries, so a slow provider never holds up the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    Dispatch,
    Send(Channel),
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Dispatch => "dispatch",
            QueueName::Send(channel) => channel.queue_name(),
        }
    }

    /// Every queue: dispatch, then each channel's send queue.
    pub fn all() -> impl Iterator<Item = QueueName> {
        std::iter::once(QueueName::Dispatch).chain(Channel::ALL.into_iter().map(QueueName::Send))
    }

    /// The queue whose `as_str` is `name`.
    pub fn named(name: &str) -> Option<QueueName> {
        QueueName::all().find(|queue| queue.as_str() == name)
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub queue: QueueName,
    pub priority: Priority,
    /// While a job with the same key waits in the same queue, another is not added.
    pub dedup_key: Option<String>,
    pub payload: String,
    pub delay: Duration,
}

#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: i64,
    pub queue: QueueName,
    pub priority: Priority,
    pub payload: String,
    /// How many times this job has been leased, this lease included.
    pub attempts: u32,
    /// Proves the lease is still ours when acknowledging: an expired lease may have
    /// been given to another worker.
    pub lease_token: String,
}

impl LeasedJob {
    /// A new job carrying the same work, due after `delay` (a queue that cannot take
    /// a lease off a job's attempts puts this back instead).
    pub fn copy_after(&self, delay: Duration) -> Job {
        Job {
            queue: self.queue,
            priority: self.priority,
            dedup_key: None,
            payload: self.payload.clone(),
            delay,
        }
    }
}

/// The producer side of a queue: what intake and the transactional outbox need.
#[async_trait]
pub trait QueueProducer: Send + Sync + 'static {
    async fn enqueue(&self, jobs: Vec<Job>) -> StoreResult<()>;
}

/// Settles a job a stage holds, however the host got it (a worker's lease, a message
/// of a Lambda batch).
#[async_trait]
pub trait HeldJobs: Send + Sync + 'static {
    /// Done with the job: it will not come back.
    async fn ack(&self, jobs: &[LeasedJob]) -> StoreResult<()>;
    /// Makes the job visible again after `delay`.
    async fn retry(&self, job: &LeasedJob, delay: Duration, error: &str) -> StoreResult<()>;
    /// Makes the job visible again after `delay` without counting this lease as one of
    /// its attempts (a send paced to a window limit was not tried). Backends that cannot
    /// uncount a lease retry it.
    async fn defer(&self, job: &LeasedJob, delay: Duration, why: &str) -> StoreResult<()> {
        self.retry(job, delay, why).await
    }
    /// Moves the job to the dead-letter store.
    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()>;
}

/// The consumer side a long-running host's worker loops need (on Lambda, the event
/// source mapping consumes instead).
#[async_trait]
pub trait QueueConsumer: Send + Sync + 'static {
    /// Leases up to `max` visible jobs, highest priority first. A leased job becomes
    /// visible again after `visibility` unless acknowledged: that is how work held by a
    /// crashed worker comes back.
    async fn lease(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> StoreResult<Vec<LeasedJob>>;
    /// Returns when work may have arrived on `queue`, or after `timeout`.
    async fn wait_for_work(&self, queue: QueueName, timeout: Duration);
}

/// What an operator reads of the queues.
#[async_trait]
pub trait QueueStats: Send + Sync + 'static {
    async fn depth(&self, queue: QueueName) -> StoreResult<u64>;
    /// The most recent dead letters of every queue, newest first.
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>>;
}

/// What a pipeline stage needs of its queue: add jobs, settle the one it holds.
pub trait StageQueue: QueueProducer + HeldJobs {}
impl<T: QueueProducer + HeldJobs + ?Sized> StageQueue for T {}

/// A whole queue backend (SQLite, SQS), as the local host and the tests use it.
pub trait Queue: StageQueue + QueueConsumer + QueueStats {}
impl<T: StageQueue + QueueConsumer + QueueStats + ?Sized> Queue for T {}

/// A notification, its deliveries and its status timeline, as `GET` shows them.
#[derive(Debug, Clone)]
pub struct Detail {
    pub notification: Notification,
    pub deliveries: Vec<Delivery>,
    pub timeline: Vec<TimelineEvent>,
}

/// A job that failed for good, kept for an operator to look at.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub queue: String,
    /// The notification or delivery id the job was about.
    pub payload: String,
    pub attempts: u32,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

/// Templates and their immutable versions, per app.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Creates a template with its first version; false if the id is taken in the app.
    async fn create_template(
        &self,
        template: &Template,
        first: &TemplateVersion,
    ) -> StoreResult<bool>;
    /// Adds `version`, which must be the template's next one (latest + 1): false if
    /// the template is gone or another publish got there first.
    async fn publish_template_version(
        &self,
        app_id: &str,
        version: &TemplateVersion,
    ) -> StoreResult<bool>;
    async fn template(&self, app_id: &str, id: &str) -> StoreResult<Option<Template>>;
    async fn template_version(
        &self,
        app_id: &str,
        id: &str,
        version: u32,
    ) -> StoreResult<Option<TemplateVersion>>;
    /// The app's templates, by id.
    async fn list_templates(&self, app_id: &str) -> StoreResult<Vec<Template>>;
    /// Deletes the template and every version; false if there was none.
    async fn delete_template(&self, app_id: &str, id: &str) -> StoreResult<bool>;
}

/// Users of an app, keyed by the caller's own ids.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates or replaces each user's profile, keeping `created_at` of those that
    /// exist; returns, per user, whether it was created.
    async fn upsert_users(&self, users: &[User]) -> StoreResult<Vec<bool>>;
    async fn user(&self, app_id: &str, id: &str) -> StoreResult<Option<User>>;
    /// Many users at once, in the order of `ids` (None for an unknown id). Backends
    /// with a batch read override this; the default reads one by one.
    async fn users(&self, app_id: &str, ids: &[String]) -> StoreResult<Vec<Option<User>>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(self.user(app_id, id).await?);
        }
        Ok(found)
    }
    /// The app's users by id, after `after`.
    async fn list_users(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>>;
    async fn delete_user(&self, app_id: &str, id: &str) -> StoreResult<bool>;
}

/// Groups of users and their memberships, per app.
#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    /// Creates the group or renames it (keeping `created_at`); true if created.
    async fn put_group(&self, group: &Group) -> StoreResult<bool>;
    async fn group(&self, app_id: &str, id: &str) -> StoreResult<Option<Group>>;
    async fn list_groups(&self, app_id: &str) -> StoreResult<Vec<Group>>;
    /// Deletes the group and its memberships; false if there was none.
    async fn delete_group(&self, app_id: &str, id: &str) -> StoreResult<bool>;
    /// Adds users to a group; returns how many were not members yet.
    async fn add_members(&self, app_id: &str, group: &str, users: &[String]) -> StoreResult<usize>;
    /// Removes users from a group; returns how many were members.
    async fn remove_members(
        &self,
        app_id: &str,
        group: &str,
        users: &[String],
    ) -> StoreResult<usize>;
    /// A group's members by user id, after `after`.
    async fn members(
        &self,
        app_id: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>>;
    /// The groups a user is in, by id.
    async fn groups_of(&self, app_id: &str, user: &str) -> StoreResult<Vec<String>>;
}

/// What a preferences write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferencesWrite {
    Saved {
        revision: u64,
    },
    /// There is no such user.
    NoUser,
    /// Another write got there first (only with an expected revision).
    Conflict,
}

/// One frequency-cap counter: a user's deliveries of a category on a channel in one
/// window of a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapWindow {
    pub app_id: String,
    pub user_id: String,
    pub category: String,
    pub channel: Channel,
    pub period: Period,
    pub start: DateTime<Utc>,
}

impl CapWindow {
    /// One string naming the counter, for backends that key by string.
    pub fn key(&self) -> String {
        format!(
            "{}#{}#{}#{}#{}",
            self.user_id,
            self.category,
            self.channel.as_str(),
            self.period.as_str(),
            self.start.timestamp()
        )
    }
}

/// Users' preferences (kept in the user record), the app's category settings, and the
/// counters behind frequency caps.
#[async_trait]
pub trait PreferenceStore: Send + Sync + 'static {
    /// Replaces a user's preferences; with `expected_revision`, only if the stored
    /// ones are still at that revision (a read-modify-write such as an unsubscribe).
    async fn put_preferences(
        &self,
        app_id: &str,
        user_id: &str,
        preferences: &Preferences,
        expected_revision: Option<u64>,
    ) -> StoreResult<PreferencesWrite>;

    /// Creates or replaces a category's settings (keeping `created_at`); true if created.
    async fn put_category(&self, settings: &CategorySettings) -> StoreResult<bool>;
    async fn category(&self, app_id: &str, name: &str) -> StoreResult<Option<CategorySettings>>;
    /// The app's categories, by name.
    async fn list_categories(&self, app_id: &str) -> StoreResult<Vec<CategorySettings>>;
    async fn delete_category(&self, app_id: &str, name: &str) -> StoreResult<bool>;

    /// Counts `delivery` in `window` if fewer than `limit` are counted there; true if
    /// it is counted (now or before: asking twice for one delivery counts it once).
    async fn take_cap_slot(
        &self,
        window: &CapWindow,
        delivery: &DeliveryId,
        limit: u32,
    ) -> StoreResult<bool>;
}

/// Each app's integrations, kept as one set (see `integrations::IntegrationSet`).
#[async_trait]
pub trait IntegrationStore: Send + Sync + 'static {
    /// The app's set; empty at revision 0 if it never had one.
    async fn integrations(&self, app_id: &str) -> StoreResult<crate::integrations::IntegrationSet>;
    /// Stores `items` as the app's set if the stored one is still at `expected`
    /// (optimistic concurrency: a read-modify-write retries on false). The stored set's
    /// revision becomes `expected + 1`.
    async fn replace_integrations(
        &self,
        app_id: &str,
        items: &[crate::integrations::Integration],
        expected: u64,
    ) -> StoreResult<bool>;
}

/// Every store port of one backend, as the hosts hand them to the API and the workers.
#[derive(Clone)]
pub struct Stores {
    pub store: std::sync::Arc<dyn Store>,
    pub templates: std::sync::Arc<dyn TemplateStore>,
    pub users: std::sync::Arc<dyn UserStore>,
    pub groups: std::sync::Arc<dyn GroupStore>,
    pub preferences: std::sync::Arc<dyn PreferenceStore>,
    pub integrations: std::sync::Arc<dyn IntegrationStore>,
}

impl Stores {
    /// All ports from one backend that has them all (SQLite, DynamoDB).
    pub fn of<B>(backend: std::sync::Arc<B>) -> Self
    where
        B: Store + TemplateStore + UserStore + GroupStore + PreferenceStore + IntegrationStore,
    {
        Self {
            store: backend.clone(),
            templates: backend.clone(),
            users: backend.clone(),
            groups: backend.clone(),
            preferences: backend.clone(),
            integrations: backend,
        }
    }
}
