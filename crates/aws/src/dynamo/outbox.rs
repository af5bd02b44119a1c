//! The table's stream as the outbox of medium- and low-priority notifications
//! (docs/design.md, "The stream as the outbox"). The api writes such a notification
//! with its queue messages inside its item (`outbox`) and sends nothing to SQS; `track`,
//! which reads the stream anyway, finds them in the item's INSERT record and sends them
//! ten to a SendMessageBatch with the other notifications of its batch. One write then
//! makes the accept durable and its messages certain, and a notification costs a tenth
//! of an SQS send instead of one.
//!
//! Only where the messages cost no write unit: for a notification that keeps its one
//! delivery inside its item (one address: most), whose first change of that delivery
//! (`inline_write`) removes the messages again, when they do not take the item into
//! another KB. The rest queue their messages themselves, as do a high-priority
//! notification (its send should not wait for the stream's poll) and a delayed message
//! (its delay would start over when `track` sends it).

use super::expr::s;
use super::inline::KEEPS_INLINE;
use super::items::{Item, item_size};
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::domain::Priority;
use herald_core::ports::{Job, QueueName};
use serde_json::Value;
use std::collections::HashMap;

/// The attribute of a notification's item that holds its messages.
pub(super) const OUTBOX: &str = "outbox";

/// Moves `jobs` into `item` when they may go by the stream: the item keeps its one
/// delivery inside, their priority is one of `via_stream`, none is delayed, and the
/// item stays within as many KB as without them. An update is billed on the larger of
/// the item before and after it, so the first change, which removes them, costs what it
/// would have cost without them. Returns the jobs the caller must queue (all, or none).
pub(super) fn stash(item: &mut Item, jobs: Vec<Job>, via_stream: &[Priority]) -> Vec<Job> {
    let plain =
        |job: &Job| job.delay.is_zero() && job.dedup_key.as_deref() == Some(job.payload.as_str());
    let may = |job: &Job| via_stream.contains(&job.priority) && plain(job);
    if jobs.is_empty() || !item.contains_key(KEEPS_INLINE) || !jobs.iter().all(may) {
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
    AttributeValue::M(HashMap::from([
        ("q".to_owned(), s(job.queue.as_str())),
        ("p".to_owned(), s(job.priority.as_str())),
        ("b".to_owned(), s(&job.payload)),
    ]))
}

/// The messages a stream record asks to be sent: those of a notification's item when it
/// was first written (an INSERT), read from the record's attribute-value JSON. A later
/// change of the item still carries them and sends nothing. A message that does not
/// parse is logged as an error and left out rather than failing the batch, whose
/// retries would fail the same way and hold up the stream behind it.
pub fn jobs_of_stream_record(record: &Value) -> Vec<Job> {
    if record.get("eventName").and_then(Value::as_str) != Some("INSERT") {
        return Vec::new();
    }
    let Some(outbox) = record.pointer(&format!("/dynamodb/NewImage/{OUTBOX}/L")) else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    for entry in outbox.as_array().into_iter().flatten() {
        match decode(entry) {
            Some(job) => jobs.push(job),
            None => tracing::error!(%entry, "an outbox message that does not parse was not sent"),
        }
    }
    jobs
}

fn decode(entry: &Value) -> Option<Job> {
    let text = |field: &str| entry.pointer(&format!("/M/{field}/S")).and_then(Value::as_str);
    let payload = text("b")?.to_owned();
    Some(Job {
        queue: QueueName::named(text("q")?)?,
        priority: text("p")?.parse().ok()?,
        dedup_key: Some(payload.clone()),
        payload,
        delay: std::time::Duration::ZERO,
    })
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
            delay: std::time::Duration::ZERO,
        }
    }

    /// The item's outbox as the stream shows it: attribute-value JSON.
    fn as_stream_json(value: &AttributeValue) -> Value {
        match value {
            AttributeValue::S(text) => json!({ "S": text }),
            AttributeValue::N(number) => json!({ "N": number }),
            AttributeValue::Bool(flag) => json!({ "BOOL": flag }),
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

    /// A notification's item that keeps its one delivery inside.
    fn keeping_inline(body: &str) -> Item {
        Item::from([
            ("body".to_owned(), s(body)),
            (KEEPS_INLINE.to_owned(), AttributeValue::Bool(true)),
        ])
    }

    #[test]
    fn medium_and_low_jobs_ride_in_the_item_and_come_back_from_its_insert() {
        let mut item = keeping_inline("{}");
        let mut dispatch = job(Priority::Medium, "ntf_b");
        dispatch.queue = QueueName::Dispatch;
        let jobs = vec![job(Priority::Low, "dlv_a"), dispatch];
        assert!(stash(&mut item, jobs, &[Priority::Medium, Priority::Low]).is_empty());
        let mut record = insert_record(&item);
        let back = jobs_of_stream_record(&record);
        let summary: Vec<_> =
            back.iter().map(|j| (j.queue, j.priority, j.payload.as_str())).collect();
        assert_eq!(
            summary,
            [
                (QueueName::Send(Channel::Email), Priority::Low, "dlv_a"),
                (QueueName::Dispatch, Priority::Medium, "ntf_b"),
            ]
        );
        assert!(back.iter().all(|j| j.dedup_key.as_deref() == Some(j.payload.as_str())));
        record["dynamodb"]["NewImage"]["outbox"]["L"][1]["M"]["q"]["S"] = json!("send.pigeon");
        assert_eq!(jobs_of_stream_record(&record).len(), 1, "what parses is still sent");
        record["eventName"] = json!("MODIFY");
        assert!(jobs_of_stream_record(&record).is_empty(), "only the first write sends");
    }

    #[test]
    fn high_priority_delays_many_deliveries_and_a_larger_bill_queue_directly() {
        let via_stream = [Priority::Medium, Priority::Low];
        let mut item = keeping_inline("{}");
        let high = vec![job(Priority::High, "dlv_a")];
        assert_eq!(stash(&mut item, high, &via_stream).len(), 1);
        assert!(!item.contains_key(OUTBOX));
        let medium = vec![job(Priority::Medium, "dlv_a")];
        assert_eq!(stash(&mut item, medium.clone(), &[]).len(), 1, "turned off");
        let mut delayed = job(Priority::Medium, "dlv_a");
        delayed.delay = std::time::Duration::from_secs(60);
        assert_eq!(stash(&mut item, vec![delayed], &via_stream).len(), 1);
        let mut apart = Item::from([("body".to_owned(), s("{}"))]);
        assert_eq!(stash(&mut apart, medium.clone(), &via_stream).len(), 1, "not inline");
        // An item just under 1 KB: the messages would make it 2 write units.
        let mut full = keeping_inline(&"x".repeat(1000));
        assert_eq!(stash(&mut full, medium, &via_stream).len(), 1);
        assert!(!full.contains_key(OUTBOX));
    }
}
