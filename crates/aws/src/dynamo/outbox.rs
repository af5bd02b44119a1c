//! The table's stream as the outbox of medium- and low-priority notifications
//! (docs/design.md, "The stream as the outbox"). The api writes such a notification
//! with its queue messages inside its item (`outbox`) and sends nothing to SQS; `track`,
//! which reads the stream anyway, finds them in the item's INSERT record and sends them
//! ten to a SendMessageBatch with the other notifications of its batch. One write then
//! makes the accept durable and its messages certain, and a notification costs a tenth
//! of an SQS send instead of one.
//!
//! Only where the messages cost no write unit: an item that the outbox would take into
//! another KB queues its messages itself, as does a high-priority notification (its
//! send should not wait for the stream's poll).

use super::expr::{n, s};
use super::items::{Item, item_size};
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::domain::Priority;
use herald_core::ports::{Job, QueueName};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// The attribute of a notification's item that holds its messages.
pub(super) const OUTBOX: &str = "outbox";

/// Moves `jobs` into `item` when they may go by the stream: their priority is one of
/// `via_stream` and the item stays within as many KB as without them. Returns the jobs
/// the caller must queue itself (all of them, or none).
pub(super) fn stash(item: &mut Item, jobs: Vec<Job>, via_stream: &[Priority]) -> Vec<Job> {
    let standard = |job: &Job| job.dedup_key.as_deref() == Some(job.payload.as_str());
    if jobs.is_empty()
        || !jobs.iter().all(|job| via_stream.contains(&job.priority) && standard(job))
    {
        return jobs;
    }
    let units = |item: &Item| item_size(item).div_ceil(1024).max(1);
    let before = units(item);
    let encoded = AttributeValue::L(jobs.iter().map(encode).collect());
    item.insert(OUTBOX.to_owned(), encoded);
    if units(item) > before {
        item.remove(OUTBOX);
        return jobs;
    }
    Vec::new()
}

fn encode(job: &Job) -> AttributeValue {
    let mut fields = HashMap::from([
        ("q".to_owned(), s(job.queue.as_str())),
        ("p".to_owned(), s(job.priority.as_str())),
        ("b".to_owned(), s(&job.payload)),
    ]);
    if !job.delay.is_zero() {
        fields.insert("d".to_owned(), n(job.delay.as_secs() as i64));
    }
    AttributeValue::M(fields)
}

/// The messages a stream record asks to be sent: those of a notification's item when it
/// was first written (an INSERT), read from the record's attribute-value JSON. A later
/// change of the item still carries them and sends nothing. A job that does not parse
/// is left out rather than failing the batch, whose retry would fail the same way.
pub fn jobs_of_stream_record(record: &Value) -> Vec<Job> {
    if record.get("eventName").and_then(Value::as_str) != Some("INSERT") {
        return Vec::new();
    }
    let Some(outbox) = record.pointer(&format!("/dynamodb/NewImage/{OUTBOX}/L")) else {
        return Vec::new();
    };
    let jobs = outbox.as_array().into_iter().flatten();
    jobs.filter_map(|entry| {
        let text = |field: &str| entry.pointer(&format!("/M/{field}/S")).and_then(Value::as_str);
        let payload = text("b")?.to_owned();
        let delay = match entry.pointer("/M/d/N").and_then(Value::as_str) {
            Some(seconds) => Duration::from_secs(seconds.parse().ok()?),
            None => Duration::ZERO,
        };
        Some(Job {
            queue: QueueName::named(text("q")?)?,
            priority: text("p")?.parse().ok()?,
            dedup_key: Some(payload.clone()),
            payload,
            delay,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::domain::Channel;
    use serde_json::json;

    fn job(priority: Priority, payload: &str) -> Job {
        Job {
            queue: QueueName::Send(Channel::Email),
            priority,
            dedup_key: Some(payload.to_owned()),
            payload: payload.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// The item's outbox as the stream shows it: attribute-value JSON.
    fn as_stream_json(value: &AttributeValue) -> Value {
        match value {
            AttributeValue::S(text) => json!({ "S": text }),
            AttributeValue::N(number) => json!({ "N": number }),
            AttributeValue::L(list) => {
                json!({ "L": list.iter().map(as_stream_json).collect::<Vec<_>>() })
            }
            AttributeValue::M(map) => {
                let fields: serde_json::Map<String, Value> =
                    map.iter().map(|(k, v)| (k.clone(), as_stream_json(v))).collect();
                json!({ "M": fields })
            }
            other => panic!("not used here: {other:?}"),
        }
    }

    fn insert_record(item: &Item) -> Value {
        let image: serde_json::Map<String, Value> =
            item.iter().map(|(k, v)| (k.clone(), as_stream_json(v))).collect();
        json!({"eventName": "INSERT", "dynamodb": {"NewImage": image}})
    }

    #[test]
    fn medium_and_low_jobs_ride_in_the_item_and_come_back_from_its_insert() {
        let mut item = Item::from([("PK".to_owned(), s("L#0001#3"))]);
        let mut delayed = job(Priority::Low, "dlv_b");
        delayed.queue = QueueName::Dispatch;
        delayed.delay = Duration::from_secs(90);
        let jobs = vec![job(Priority::Low, "dlv_a"), delayed];
        assert!(stash(&mut item, jobs, &[Priority::Medium, Priority::Low]).is_empty());
        let back = jobs_of_stream_record(&insert_record(&item));
        let summary: Vec<_> =
            back.iter().map(|j| (j.queue, j.priority, j.payload.as_str(), j.delay)).collect();
        assert_eq!(
            summary,
            [
                (QueueName::Send(Channel::Email), Priority::Low, "dlv_a", Duration::ZERO),
                (QueueName::Dispatch, Priority::Low, "dlv_b", Duration::from_secs(90)),
            ]
        );
        assert!(back.iter().all(|j| j.dedup_key.as_deref() == Some(j.payload.as_str())));
        let mut modified = insert_record(&item);
        modified["eventName"] = json!("MODIFY");
        assert!(jobs_of_stream_record(&modified).is_empty(), "only the first write sends");
    }

    #[test]
    fn high_priority_and_a_larger_bill_queue_directly() {
        let via_stream = [Priority::Medium, Priority::Low];
        let mut item = Item::from([("PK".to_owned(), s("L#0001#3"))]);
        let high = vec![job(Priority::High, "dlv_a")];
        assert_eq!(stash(&mut item, high, &via_stream).len(), 1);
        assert!(!item.contains_key(OUTBOX));
        let medium = vec![job(Priority::Medium, "dlv_a")];
        assert_eq!(stash(&mut item, medium.clone(), &[]).len(), 1, "turned off");
        // An item just under 1 KB: the outbox would make it 2 write units.
        let mut full = Item::from([("body".to_owned(), s("x".repeat(1000)))]);
        assert_eq!(stash(&mut full, medium, &via_stream).len(), 1);
        assert!(!full.contains_key(OUTBOX));
    }
}
