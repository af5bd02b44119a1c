//! The Store contract on DynamoDB (with its outbox on SQS), through the real AWS SDK
//! against the moto server on loopback (`scripts/test.sh` starts it and sets
//! `AWS_ENDPOINT_URL`). Every test gets its own table and queues.
#![cfg(feature = "aws")]

use herald_core::aws::dynamo::DynamoStore;
use herald_core::aws::sqs::SqsQueue;
use herald_core::contract;
use std::sync::Arc;

async fn backends() -> (DynamoStore, Arc<SqsQueue>) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL must point at an AWS emulator: run scripts/test.sh, which starts moto",
    );
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests talk to loopback only: {endpoint}");
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe {
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
    let config = herald_core::aws::sdk_config().await;
    let prefix = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
    let sqs = aws_sdk_sqs::Client::new(&config);
    SqsQueue::create_all(&sqs, &prefix, 5).await.unwrap();
    let queue = Arc::new(SqsQueue::connect(sqs, &prefix).await.unwrap());
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    DynamoStore::create_table(&dynamodb, &prefix).await.unwrap();
    (DynamoStore::new(dynamodb, prefix, queue.clone()), queue)
}

#[tokio::test(flavor = "multi_thread")]
async fn store_accepts_once_per_idempotency_key() {
    let (store, _) = backends().await;
    contract::store_accepts_once_per_idempotency_key(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_writes_the_outbox_with_the_notification() {
    let (store, queue) = backends().await;
    contract::store_writes_the_outbox_with_the_notification(&store, queue.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_enforces_the_status_machines() {
    let (store, queue) = backends().await;
    contract::store_enforces_the_status_machines(&store, queue.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_lists_by_app_with_filters() {
    contract::store_lists_by_app_with_filters(&backends().await.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_finds_stranded_notifications_page_by_page() {
    contract::store_finds_stranded_notifications_page_by_page(&backends().await.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_keeps_api_keys_hashed_and_settings() {
    contract::store_keeps_api_keys_hashed_and_settings(&backends().await.0).await;
}
