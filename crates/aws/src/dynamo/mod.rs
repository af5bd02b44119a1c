//! `Store` on DynamoDB: one table, on-demand, items keyed by `PK`/`SK` with one
//! overloaded global secondary index. Conditional writes and transactions make
//! idempotency and state transitions atomic; TTL expires idempotency keys and old data.
//! The key design is documented in infra/README.md.

mod app_list;
mod chat_state;
mod expr;
mod groups;
mod inline;
mod integrations;
mod items;
pub(crate) use items::{RecordKind, record_kind};
mod outbox;
pub use outbox::jobs_of_stream_record;
mod planned;
mod preferences;
mod send_reads;
mod store;
mod templates;
mod users;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use chrono::Duration;
use herald_core::domain::Priority;
use herald_core::ports::{QueueProducer, StoreError, StoreResult};
use std::sync::Arc;

/// Keys per BatchGetItem (DynamoDB's maximum) and such requests in flight at once.
pub(super) const BATCH_GET: usize = 100;
pub(super) const PARALLEL_BATCHES: usize = 4;
/// Rounds of asking again for unprocessed keys before giving up.
pub(super) const UNPROCESSED_ROUNDS: usize = 8;

pub use store::MAX_TRANSACTION_RETRIES;

/// Increments by (app, day) and counter name (`notifications_sent`, `email_delivered`).
pub type DailyCounters =
    std::collections::BTreeMap<(String, String), std::collections::BTreeMap<String, i64>>;

/// How long notifications, deliveries and timelines are kept before TTL removes them.
pub const DEFAULT_RETENTION: Duration = Duration::days(30);

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Where the outbox goes: DynamoDB cannot hold the queue, so jobs are sent to it
    /// around the write that makes them due (see `Store::accept`), or by `track` from
    /// the table's stream (`via_stream`, outbox.rs).
    queue: Arc<dyn QueueProducer>,
    retention: Duration,
    /// Items a filtered list reads at most per call (see `list_notifications`).
    list_read_budget: usize,
    /// Keep every notification's counts in a counts item of their own once it has
    /// two deliveries, whatever its size (tests run the contract suite both ways).
    always_counts_apart: bool,
    /// What send read before sending, for the write of the outcome (send_reads.rs).
    send_reads: Arc<send_reads::SendReads>,
    /// The priorities whose intake messages go by the table's stream (outbox.rs).
    via_stream: Vec<Priority>,
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("DynamoDB: {e}"))
}

pub(super) fn sdk_error<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::store_error("DynamoDB", e)
}

fn built<T>(result: Result<T, BuildError>) -> StoreResult<T> {
    result.map_err(backend)
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, queue: Arc<dyn QueueProducer>) -> Self {
        Self {
            client,
            table: table.into(),
            queue,
            retention: DEFAULT_RETENTION,
            list_read_budget: store::LIST_READ_BUDGET,
            always_counts_apart: false,
            send_reads: Arc::default(),
            via_stream: Vec::new(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// A smaller read budget for filtered lists (tests reach its edge with few items).
    pub fn with_list_read_budget(mut self, items: usize) -> Self {
        self.list_read_budget = items.max(1);
        self
    }

    /// Counts every notification with two deliveries or more in a counts item apart
    /// from its own, as the store does for large ones: for tests of that path.
    pub fn with_counts_always_apart(mut self) -> Self {
        self.always_counts_apart = true;
        self
    }

    /// A notification of one of these priorities has its intake messages sent by
    /// `track`, from the table's stream, rather than by `accept` (outbox.rs).
    pub fn with_stream_outbox(mut self, priorities: &[Priority]) -> Self {
        self.via_stream = priorities.to_vec();
        self
    }

    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Adds per-app, per-day counts once per `batch` key: the marker item and the
    /// increments commit together, so a retried batch adds nothing.
    pub async fn add_daily_counters(
        &self,
        batch: &str,
        counters: &DailyCounters,
    ) -> StoreResult<bool> {
        store::add_daily_counters(self, batch, counters).await
    }

    /// One app's counters for one day (`YYYY-MM-DD`).
    pub async fn daily_counters(
        &self,
        app: &str,
        day: &str,
    ) -> StoreResult<std::collections::BTreeMap<String, i64>> {
        store::daily_counters(self, app, day).await
    }

    /// Creates the table as the SAM template does (keys, indexes, stream, TTL), for
    /// emulators and tests.
    pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
        let attribute = |name: &str| {
            built(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )
        };
        let key = |name: &str, kind: KeyType| {
            built(KeySchemaElement::builder().attribute_name(name).key_type(kind).build())
        };
        let index = |name: &str, pk: &str, sk: &str, projection: ProjectionType| {
            built(
                GlobalSecondaryIndex::builder()
                    .index_name(name)
                    .key_schema(key(pk, KeyType::Hash)?)
                    .key_schema(key(sk, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(projection).build())
                    .build(),
            )
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(items::PK, KeyType::Hash)?)
            .key_schema(key(items::SK, KeyType::Range)?)
            // Users, templates and categories by app: small records, read whole.
            .global_secondary_indexes(index(
                "GSI1",
                items::GSI1PK,
                items::GSI1SK,
                ProjectionType::All,
            )?)
            .stream_specification(built(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )?);
        // No index of notifications: an app's list is the table's own partitions.
        for name in [items::PK, items::SK, items::GSI1PK, items::GSI1SK] {
            request = request.attribute_definitions(attribute(name)?);
        }
        request.send().await.map_err(sdk_error)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(built(
                TimeToLiveSpecification::builder().enabled(true).attribute_name(items::TTL).build(),
            )?)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}
