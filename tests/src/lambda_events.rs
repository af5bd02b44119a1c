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

/// Lambda's DynamoDB stream event source, played by hand against the emulator: reads
/// what the table's stream recorded since the last read (moto's one shard), keeps what
/// template.yaml's filter for the function lets through, and wraps it as the event the
/// function gets. Reads moto directly, not through a counting proxy: Lambda's reads of
/// a stream are not billed.
///
/// Each read starts at the shard's oldest record and skips those already handed over
/// (by event id): moto replaces a table's shard when it rolls back a failed
/// transaction, so a kept iterator would stop seeing new records, and it numbers the
/// records after the rollback from where the rolled-back ones began.
pub struct StreamSource {
    moto: String,
    stream_arn: String,
    shard: Value,
    seen: std::collections::HashSet<String>,
    patterns: Vec<Value>,
}

impl StreamSource {
    /// Nothing handed over yet, filtered as `event` of `resource` is.
    pub async fn open(moto: &str, table: &str, resource: &str, event: &str) -> Self {
        let template = std::fs::read_to_string(format!(
            "{}/../template.yaml",
            std::env::var("CARGO_MANIFEST_DIR").unwrap()
        ))
        .unwrap();
        let patterns = crate::event_filter::template_patterns(&template, resource, event);
        let streams = streams_call(moto, "ListStreams", json!({"TableName": table})).await;
        let stream_arn = streams["Streams"][0]["StreamArn"].as_str().unwrap().to_owned();
        let stream = streams_call(moto, "DescribeStream", json!({"StreamArn": stream_arn})).await;
        let shard = stream["StreamDescription"]["Shards"][0]["ShardId"].clone();
        let seen = std::collections::HashSet::new();
        Self { moto: moto.to_owned(), stream_arn, shard, seen, patterns }
    }

    /// Everything recorded since the last call that passes the filter, as one event.
    pub async fn next_event(&mut self) -> Value {
        let request = json!({"StreamArn": self.stream_arn, "ShardId": self.shard,
                             "ShardIteratorType": "TRIM_HORIZON"});
        let start = streams_call(&self.moto, "GetShardIterator", request).await;
        let mut iterator = start["ShardIterator"].as_str().unwrap().to_owned();
        let mut records = Vec::new();
        loop {
            let request = json!({"ShardIterator": iterator, "Limit": 1000});
            let page = streams_call(&self.moto, "GetRecords", request).await;
            iterator = page["NextShardIterator"].as_str().unwrap().to_owned();
            let batch = page["Records"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            let new = batch
                .into_iter()
                .filter(|record| self.seen.insert(record["eventID"].as_str().unwrap().to_owned()));
            records.extend(new);
        }
        let records: Vec<Value> = records
            .into_iter()
            .map(|mut record| {
                record["eventSourceARN"] = json!(self.stream_arn);
                record
            })
            .filter(|record| crate::event_filter::passes(&self.patterns, record))
            .collect();
        json!({ "Records": records })
    }
}

/// One call of the DynamoDB Streams API (JSON 1.0). moto checks no signature; the
/// credential scope tells it which service the call is for.
async fn streams_call(moto: &str, action: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(moto)
        .header("x-amz-target", format!("DynamoDBStreams_20120810.{action}"))
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261205/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{action}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}
