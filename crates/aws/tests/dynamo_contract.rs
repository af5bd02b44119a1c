//! The Store contract on DynamoDB (with its outbox on SQS), through the real AWS SDK
//! against the moto server on loopback (`scripts/test.sh` starts it and sets
//! `AWS_ENDPOINT_URL`). Every test gets its own table and queues.

use herald_aws::dynamo::DynamoStore;
use herald_aws::sqs::SqsQueue;
use herald_contract as contract;
use herald_core::ports::{Acceptance, Queue};
use std::sync::Arc;

/// The key of an item, for a test that reaches past the store to the table.
type Key = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// An item in notification `id`'s deliveries partition (`D#{delivery}`, `C`).
fn item_key(id: &herald_core::domain::NotificationId, sk: String) -> Key {
    use aws_sdk_dynamodb::types::AttributeValue;
    Key::from([
        ("PK".to_owned(), AttributeValue::S(format!("N#{id}"))),
        ("SK".to_owned(), AttributeValue::S(sk)),
    ])
}

/// The notification's own item, in its app's list: the partition of its app's tag and
/// its shard (the random part's low 4 bits), as infra/README.md lays it out.
fn notification_key(id: &herald_core::domain::NotificationId) -> Key {
    use aws_sdk_dynamodb::types::AttributeValue;
    let partition = format!("L#{:04x}#{}", id.app_tag(), id.ulid().random() % 16);
    Key::from([
        ("PK".to_owned(), AttributeValue::S(partition)),
        ("SK".to_owned(), AttributeValue::S(format!("N#{id}"))),
    ])
}

/// A notification to one email address, accepted with its delivery planned (kept
/// inside its item), and that delivery's id.
async fn one_email_accepted(
    store: &DynamoStore,
) -> (herald_core::domain::Notification, herald_core::domain::DeliveryId) {
    use herald_core::domain::{Channel, Priority};
    use herald_core::ports::Store;
    let mut n = contract::notification("app-1", Priority::Medium);
    n.channels = vec![Channel::Email];
    let accepted = herald_core::pipeline::intake::acceptance(n.clone(), None, chrono::Utc::now());
    let id = accepted.deliveries[0].id.clone();
    store.accept(accepted).await.unwrap();
    (n, id)
}

async fn backends() -> Option<(DynamoStore, Arc<SqsQueue>)> {
    let config = contract::emulator_config().await?;
    let prefix = contract::unique_prefix();
    let sqs = aws_sdk_sqs::Client::new(&config);
    SqsQueue::create_all(&sqs, &prefix, 5).await.unwrap();
    let queue = Arc::new(SqsQueue::connect(sqs, &prefix).await.unwrap());
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    DynamoStore::create_table(&dynamodb, &prefix).await.unwrap();
    Some((DynamoStore::new(dynamodb, prefix, queue.clone()), queue))
}

/// The store, the SQS queues its outbox writes to, and nothing to keep alive.
async fn store() -> Option<(DynamoStore, Arc<dyn Queue>, ())> {
    let (store, queue) = backends().await?;
    Some((store, queue, ()))
}

herald_contract::store_contract!(store);

/// DynamoDB cannot hold the outbox in the same transaction as the fan-out, so
/// `record_dispatch` queues the sends before it marks the notification `dispatched`:
/// a crash before the mark leaves it `accepted`, and the redelivered dispatch message
/// plans again and queues the sends again (the rows already written stand). Once
/// marked, a redelivery queues nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_dispatch_queues_what_a_crash_left_unqueued() {
    use herald_core::domain::{Channel, NotificationStatus, Priority};
    use herald_core::pipeline::dispatch::{Directory, DispatchOutcome, dispatch};
    use herald_core::pipeline::plan::plan_deliveries;
    use herald_core::ports::{QueueStats, Store};

    let Some((store, queue)) = backends().await else { return };
    let n = contract::notification("app-1", Priority::Medium);
    store.accept(Acceptance::new(n.clone())).await.unwrap();
    // The "crash": the rows were written, the sends never reached SQS.
    store.insert_deliveries(&plan_deliveries(&n, chrono::Utc::now()), vec![]).await.unwrap();
    let email = herald_core::ports::QueueName::Send(Channel::Email);
    assert_eq!(queue.depth(email).await.unwrap(), 0);

    // The redelivered dispatch message, through the dispatch stage itself.
    let directory = Directory { users: &store, groups: &store, preferences: &store };
    let redelivered = dispatch(&store, directory, &n.id, chrono::Utc::now()).await.unwrap();
    assert!(matches!(redelivered, DispatchOutcome::Dispatched { .. }), "{redelivered:?}");
    assert_eq!(queue.depth(email).await.unwrap(), 1, "the redelivery queued the send");
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Dispatched);
    // Once marked, a further redelivery queues nothing.
    let again = dispatch(&store, directory, &n.id, chrono::Utc::now()).await.unwrap();
    assert_eq!(again, DispatchOutcome::Skipped);
    assert_eq!(queue.depth(email).await.unwrap(), 1);
}

/// A send that settled its delivery and stopped before counting it on the
/// notification: the redelivered message finds the delivery settled, and the recount
/// settles the notification.
#[tokio::test(flavor = "multi_thread")]
async fn a_count_lost_in_a_crash_is_recounted_on_redelivery() {
    use herald_core::domain::{Channel, NotificationStatus, Priority};
    use herald_core::pipeline::plan::plan_deliveries;
    use herald_core::ports::Store;

    let Some((store, _queue)) = backends().await else { return };
    let mut n = contract::notification("app-1", Priority::Medium);
    n.channels = vec![Channel::Email];
    store.accept(Acceptance::new(n.clone())).await.unwrap();
    let plan = plan_deliveries(&n, chrono::Utc::now());
    assert!(store.record_dispatch(&n.id, &plan, vec![]).await.unwrap());
    // The "crash": the delivery's own write, without the count that follows it.
    let config = contract::emulator_config().await.unwrap();
    let key = |sk: String| item_key(&n.id, sk);
    aws_sdk_dynamodb::Client::new(&config)
        .update_item()
        .table_name(store.table())
        .set_key(Some(key(format!("D#{}", plan[0].id))))
        .update_expression("SET #s = :sent")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(
            ":sent",
            aws_sdk_dynamodb::types::AttributeValue::S("sent".into()),
        )
        .send()
        .await
        .unwrap();
    let stuck = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stuck.status, NotificationStatus::Dispatched, "counted as still pending");

    store.recount_pending(&n.id).await.unwrap();
    let settled = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(settled.status, NotificationStatus::Sent);
    store.recount_pending(&n.id).await.unwrap();
}

/// A notification to one address written before its planned delivery moved inside
/// its item (no `inline` flag) goes on the way it began: its delivery is written as an
/// item of its own at its first change, and read from there.
#[tokio::test(flavor = "multi_thread")]
async fn a_notification_written_before_inline_deliveries_keeps_its_delivery_apart() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use herald_core::domain::{DeliveryStatus, NotificationStatus};
    use herald_core::ports::{DeliveryOutcome, Store};

    let Some((store, _queue)) = backends().await else { return };
    let (n, id) = one_email_accepted(&store).await;
    let client = aws_sdk_dynamodb::Client::new(&contract::emulator_config().await.unwrap());
    let item = |key: Key| {
        let (client, table) = (client.clone(), store.table().to_owned());
        async move {
            let read = client.get_item().table_name(table).set_key(Some(key));
            read.consistent_read(true).send().await.unwrap().item
        }
    };
    let written = item(notification_key(&n.id)).await.unwrap();
    assert!(written.contains_key("inline"), "written to keep its delivery inside");
    client
        .update_item()
        .table_name(store.table())
        .set_key(Some(notification_key(&n.id)))
        .update_expression("REMOVE #i")
        .expression_attribute_names("#i", "inline")
        .send()
        .await
        .unwrap();

    store.record_attempt(&id, 1, "timed out").await.unwrap();
    let delivery_key = item_key(&n.id, format!("D#{id}"));
    assert!(item(delivery_key.clone()).await.is_some(), "written as an item of its own");
    let sent = DeliveryOutcome { attempts: 2, ..Default::default() };
    assert!(store.transition_delivery(&id, DeliveryStatus::Sent, sent).await.unwrap());
    let delivery = item(delivery_key).await.unwrap();
    assert_eq!(delivery.get("status"), Some(&AttributeValue::S("sent".into())));
    let notification = item(notification_key(&n.id)).await.unwrap();
    assert!(!notification.contains_key("delivery"), "nothing kept inside");
    let read = store.delivery(&id).await.unwrap().unwrap();
    assert_eq!((read.status, read.attempts), (DeliveryStatus::Sent, 2));
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
}

/// A send that settles between dispatch queueing it and marking the notification
/// `dispatched` (which sets the counts) must not count: the mark would overwrite it.
/// It is refused, and the send message's return recounts from the deliveries.
#[tokio::test(flavor = "multi_thread")]
async fn a_send_that_settles_before_dispatch_finishes_is_counted_when_it_comes_back() {
    use herald_core::domain::{Channel, DeliveryStatus, NotificationStatus, Priority};
    use herald_core::pipeline::plan::plan_deliveries;
    use herald_core::ports::{DeliveryOutcome, Store, StoreError};

    let Some((store, _queue)) = backends().await else { return };
    let mut n = contract::notification("app-1", Priority::Medium);
    n.channels = vec![Channel::Email];
    store.accept(Acceptance::new(n.clone())).await.unwrap();
    let plan = plan_deliveries(&n, chrono::Utc::now());
    // Dispatch wrote the delivery and queued its send, and has not marked it yet.
    store.insert_deliveries(&plan, vec![]).await.unwrap();
    let sent = DeliveryOutcome { attempts: 1, ..Default::default() };
    let refused = store.transition_delivery(&plan[0].id, DeliveryStatus::Sent, sent).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let delivery = store.delivery(&plan[0].id).await.unwrap().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Sent, "the send itself is kept");
    // Dispatch marks it; the send message comes back, finds its delivery settled and
    // recounts from the deliveries.
    assert!(store.record_dispatch(&n.id, &plan, vec![]).await.unwrap());
    store.recount_pending(&n.id).await.unwrap();
    let settled = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(settled.status, NotificationStatus::Sent);
}

/// A dispatch that wrote some deliveries and then crashed (before `record_dispatch`
/// moved the notification) is finished by its redelivery, which plans again. When the
/// new plan differs for a row already written (the user opted out in between, say),
/// the stored row stands: its send is queued and it counts as pending.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_dispatch_keeps_what_the_interrupted_run_wrote() {
    use herald_core::domain::{Channel, DeliveryStatus, NotificationStatus, Priority};
    use herald_core::pipeline::plan::plan_deliveries;
    use herald_core::ports::{DeliveryOutcome, QueueConsumer, QueueName, Store};
    use std::time::Duration;

    let Some((store, queue)) = backends().await else { return };
    let mut n = contract::notification("app-1", Priority::Medium);
    n.channels = vec![Channel::Email];
    store.accept(Acceptance::new(n.clone())).await.unwrap();
    let first_plan = plan_deliveries(&n, chrono::Utc::now());
    // The interrupted run: its row is written, nothing else.
    store.insert_deliveries(&first_plan, vec![]).await.unwrap();

    let mut second_plan = first_plan.clone();
    second_plan[0].status = DeliveryStatus::Suppressed;
    second_plan[0].reason = Some("opted_out".into());
    assert!(store.record_dispatch(&n.id, &second_plan, vec![]).await.unwrap());

    let email = QueueName::Send(Channel::Email);
    let leased = queue.lease(email, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leased.len(), 1, "the stored queued delivery's send went out");
    assert_eq!(leased[0].payload, first_plan[0].id.to_string());
    let stored = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.status, NotificationStatus::Dispatched, "still pending, not settled");

    let sent = DeliveryOutcome { attempts: 1, ..Default::default() };
    store.transition_delivery(&first_plan[0].id, DeliveryStatus::Sent, sent).await.unwrap();
    let settled = store.notification(&n.id).await.unwrap().unwrap();
    assert_eq!(settled.status, NotificationStatus::Sent);
}

/// A filtered list reads a bounded number of items per call and hands back where it
/// stopped, so a filter that matches little never reads the whole app in one request.
#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_list_reads_a_bounded_number_of_items_and_says_where_to_go_on() {
    use herald_core::domain::{NotificationId, Priority};
    use herald_core::ports::{NotificationFilter, Store};

    let Some((store, _)) = backends().await else { return };
    let store = store.with_list_read_budget(5);
    let app = format!("bounded-{}", NotificationId::new());
    // Twelve notifications; only the oldest matches.
    let mut oldest = None;
    for i in 0..12 {
        let n = contract::notification(&app, if i == 0 { Priority::High } else { Priority::Low });
        store.accept(Acceptance::new(n.clone())).await.unwrap();
        oldest.get_or_insert(n.id);
    }
    let mut filter =
        NotificationFilter { priority: Some(Priority::High), limit: 10, ..Default::default() };
    let (mut calls, mut found) = (0, Vec::new());
    loop {
        let page = store.list_notifications(&app, &filter).await.unwrap();
        calls += 1;
        found.extend(page.items.into_iter().map(|n| n.id));
        match page.resume_before {
            Some(cursor) => filter.before_id = Some(cursor),
            None => break,
        }
        assert!(calls < 10, "the cursor moves on");
    }
    assert_eq!(found, [oldest.unwrap()]);
    assert!(calls >= 3, "twelve items at five a call take three calls: {calls}");
}

/// The same contract with every notification's counts in a counts item of their own,
/// as the store keeps them for a large notification with many deliveries.
mod counts_apart {
    use super::*;

    async fn store() -> Option<(DynamoStore, Arc<dyn Queue>, ())> {
        let (store, queue) = backends().await?;
        Some((store.with_counts_always_apart(), queue, ()))
    }

    herald_contract::store_contract!(store);
}

/// Send writes a delivery's outcome on the read it made before sending (the store
/// holds it: send_reads.rs). When the item changed in between, that read is stale: the
/// write's condition fails and it reads again, so the change in between is kept.
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_written_on_a_read_gone_stale_keeps_the_change_in_between() {
    use herald_core::domain::{DeliveryStatus, NotificationStatus};
    use herald_core::ports::{DeliveryOutcome, Store};

    let Some((store, _queue)) = backends().await else { return };
    let (n, id) = one_email_accepted(&store).await;

    let (read, _) = store.delivery_to_send(&id).await.unwrap().unwrap();
    assert_eq!(read.status, DeliveryStatus::Queued);
    store.record_attempt(&id, 1, "timed out").await.unwrap();
    let sent = DeliveryOutcome { attempts: 2, ..Default::default() };
    assert!(store.transition_delivery(&id, DeliveryStatus::Sent, sent).await.unwrap());

    let events: Vec<String> =
        store.timeline(&n.id).await.unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"attempt_failed".to_owned()), "kept: {events:?}");
    assert_eq!(store.delivery(&id).await.unwrap().unwrap().status, DeliveryStatus::Sent);
    assert_eq!(store.notification(&n.id).await.unwrap().unwrap().status, NotificationStatus::Sent);
}

/// With the table's stream as the outbox (outbox.rs), a medium-priority email to one
/// address is written with its send message inside its item and nothing on SQS; the
/// first change of its delivery (here the send's `sent`) takes the message out, so no
/// later update is billed for it. A high-priority email is queued at once, as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_medium_email_carries_its_message_in_its_item_until_its_delivery_changes() {
    use herald_core::domain::{Channel, DeliveryStatus, Priority};
    use herald_core::ports::{DeliveryOutcome, QueueConsumer, QueueName, Store};
    use std::time::Duration;

    let Some((store, queue)) = backends().await else { return };
    let store = store.with_stream_outbox(&[Priority::Medium, Priority::Low]);
    let (n, id) = one_email_accepted(&store).await;
    let email = QueueName::Send(Channel::Email);
    let lease = || queue.lease(email, 10, Duration::from_secs(30));
    assert!(lease().await.unwrap().is_empty(), "nothing on SQS");
    let client = aws_sdk_dynamodb::Client::new(&contract::emulator_config().await.unwrap());
    let item = || {
        let read =
            client.get_item().table_name(store.table()).set_key(Some(notification_key(&n.id)));
        async move { read.consistent_read(true).send().await.unwrap().item.unwrap() }
    };
    let outbox = item().await["outbox"].as_l().unwrap().clone();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].as_m().unwrap()["b"].as_s().unwrap(), &id.to_string());

    let sent = DeliveryOutcome { attempts: 1, ..Default::default() };
    assert!(store.transition_delivery(&id, DeliveryStatus::Sent, sent).await.unwrap());
    assert!(!item().await.contains_key("outbox"), "taken out at the delivery's first change");

    let mut urgent = contract::notification("app-1", Priority::High);
    urgent.channels = vec![Channel::Email];
    let now = chrono::Utc::now();
    store.accept(herald_core::pipeline::intake::acceptance(urgent, None, now)).await.unwrap();
    assert_eq!(lease().await.unwrap().len(), 1, "high priority: queued at once");
}
