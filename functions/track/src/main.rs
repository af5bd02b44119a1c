//! The `track` function: the table's stream (per-day status counters, and the queue
//! messages of new medium- and low-priority notifications), SES events through SNS
//! (delivered, bounced, opened, clicked, complained), in one handler that tells them
//! apart.

use herald_aws::lambda::{Backends, handle_track, init_tracing};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let backends = &Backends::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let summary = handle_track(&backends.tracking(), event.payload).await?;
        Ok::<_, Error>(serde_json::json!({
            "counted": summary.counted,
            "forwarded": summary.forwarded,
            "provider_events": summary.provider_events,
            "unknown": summary.unknown,
        }))
    }))
    .await
}
