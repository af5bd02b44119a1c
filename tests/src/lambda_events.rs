//! Lambda's SQS event source, played by hand against the emulator: receive what a
//! queue holds as the SQS event a function gets, and afterwards delete what the
//! handler did not report as failed, as Lambda does.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";

/// moto's queue URL form; the harness, like Lambda's pollers, never looks URLs up.
pub fn queue_url(queue: &str) -> String {
    format!("{}/123456789012/{queue}", std::env::var("AWS_ENDPOINT_URL").unwrap())
}

/// Receives what is waiting on `queue` and wraps it as Lambda's SQS event.
pub async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    max: i32,
    visibility: i32,
) -> SqsEvent {
    let url = queue_url(queue);
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(max)
        .visibility_timeout(visibility)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = received
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v)))
                .collect();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, json!({"stringValue": v.string_value, "dataType": v.data_type})))
                .collect();
            json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": attributes, "messageAttributes": message_attributes,
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:{queue}"),
                "awsRegion": REGION,
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// What Lambda does after a handler returns: deletes every message not reported.
pub async fn finish_batch(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    batch: &SqsEvent,
    response: &SqsBatchResponse,
) {
    let url = queue_url(queue);
    for message in &batch.records {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| Some(&f.item_identifier) == message.message_id.as_ref());
        if !failed {
            let handle = message.receipt_handle.clone().unwrap();
            sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await.unwrap();
        }
    }
}
