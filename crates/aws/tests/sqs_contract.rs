//! The Queue contract on SQS, through the real AWS SDK against the moto server on
//! loopback (`scripts/test.sh` starts it and sets `AWS_ENDPOINT_URL`).

use herald_aws::sqs::SqsQueue;
use herald_contract as contract;
use herald_contract::TimePasses;
use std::sync::Arc;

/// A fresh set of queues per test, so tests never see each other's messages. SQS
/// keeps its own time (moto's wall clock): the timing tests wait for it.
async fn queue() -> Option<(SqsQueue, Arc<dyn TimePasses>, ())> {
    let client = aws_sdk_sqs::Client::new(&contract::emulator_config().await?);
    let prefix = contract::unique_prefix();
    SqsQueue::create_all(&client, &prefix, 5).await.unwrap();
    Some((SqsQueue::connect(client, &prefix).await.unwrap(), Arc::new(contract::WallClock), ()))
}

// SQS documents an old receipt handle as invalid only for the latest one; moto honours
// old ones, so a late acknowledgement is not checked here.
herald_contract::queue_contract!(queue, late_ack_ignored: false);
