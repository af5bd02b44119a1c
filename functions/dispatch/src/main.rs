//! The `dispatch` function: SQS batches from the high, medium and low dispatch queues
//! (three event sources with different maximum concurrency), each notification fanned
//! out onto the channel queues. Failed messages are reported one by one.

use aws_lambda_events::sqs::SqsEvent;
use herald_aws::lambda::{Backends, handle_dispatch_batch, init_tracing};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    // Built once per container, reused by every invocation.
    let backends = &Backends::from_env().await?;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_dispatch_batch(&backends.stages(), event.payload).await)
    }))
    .await
}
