//! The `send` function: one binary, deployed once per channel family (email, SMS,
//! webhook) with its own queue, concurrency and permissions. Idempotent per delivery:
//! a redelivered message whose delivery is settled sends nothing.

use aws_lambda_events::sqs::SqsEvent;
use herald_aws::lambda::{Backends, handle_send_batch, init_tracing};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    // Built once per container, reused by every invocation.
    let backends = &Backends::from_env().await?;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_send_batch(&backends.stages(), event.payload).await)
    }))
    .await
}
