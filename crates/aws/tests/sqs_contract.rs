//! The Queue contract on SQS, through the real AWS SDK against the moto server on
//! loopback (`scripts/test.sh` starts it and sets `AWS_ENDPOINT_URL`).

use herald_aws::sqs::SqsQueue;
use herald_core::contract;

/// A fresh set of queues per test, so tests never see each other's messages.
async fn queue() -> Option<SqsQueue> {
    let client = aws_sdk_sqs::Client::new(&contract::emulator_config().await?);
    let prefix = contract::unique_prefix();
    SqsQueue::create_all(&client, &prefix, 5).await.unwrap();
    Some(SqsQueue::connect(client, &prefix).await.unwrap())
}

macro_rules! contract_tests {
    ($($name:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let Some(queue) = queue().await else { return };
            contract::$name(&queue).await;
        }
    )+};
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_leases_hide_jobs_until_they_expire() {
    let Some(queue) = queue().await else { return };
    contract::queue_leases_hide_jobs_until_they_expire(&queue, false, &contract::WallClock).await;
}

// SQS keeps its own time (moto's wall clock): these wait for it.
#[tokio::test(flavor = "multi_thread")]
async fn queue_retries_after_a_delay() {
    let Some(queue) = queue().await else { return };
    contract::queue_retries_after_a_delay(&queue, &contract::WallClock).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_delays_jobs() {
    let Some(queue) = queue().await else { return };
    contract::queue_delays_jobs(&queue, &contract::WallClock).await;
}

contract_tests!(
    queue_serves_strict_priority,
    queue_dead_letters_keep_the_job,
    queue_takes_large_batches,
);
