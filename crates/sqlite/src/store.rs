//! `Store` on SQLite.

use super::{SqliteBackend, insert_jobs, queues_of};
use crate::Db;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::auth::{ApiKeyRecord, Scope};
use herald_core::domain::{
    Delivery, DeliveryId, DeliveryStatus, Notification, NotificationId, NotificationStatus,
    TimelineEvent,
};
use herald_core::ports::{
    AcceptOutcome, Acceptance, DeliveryOutcome, DeliveryRead, Detail, IDEMPOTENCY_WINDOW, Job,
    KeyStore, NotificationFilter, NotificationList, ReceiptStore, SettingStore, Store, StoreError,
    StoreResult,
};
use herald_core::time::{format_time, parse_time};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

const NOTIFICATION_COLUMNS: &str = "body, status, updated_at";
const DELIVERY_COLUMNS: &str = "id, notification_id, recipient_index, channel, address, status, \
     attempts, provider, provider_message_id, reason, created_at, updated_at, user, deliver_after, integration";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} in the database"))
}

fn notification_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn decode_notification(
    (body, status, updated_at): (String, String, String),
) -> StoreResult<Notification> {
    let mut notification: Notification = serde_json::from_str(&body)?;
    notification.status = status.parse().map_err(|_| corrupt("notification status"))?;
    notification.updated_at = parse_time(&updated_at).ok_or_else(|| corrupt("timestamp"))?;
    Ok(notification)
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Delivery, StoreError>> {
    let id: String = row.get(0)?;
    let notification_id: String = row.get(1)?;
    let recipient_index: i64 = row.get(2)?;
    let channel: String = row.get(3)?;
    let address: String = row.get(4)?;
    let status: String = row.get(5)?;
    let attempts: i64 = row.get(6)?;
    let created_at: String = row.get(10)?;
    let updated_at: String = row.get(11)?;
    let provider = row.get(7)?;
    let provider_message_id = row.get(8)?;
    let reason = row.get(9)?;
    let user: Option<String> = row.get(12)?;
    let deliver_after: Option<String> = row.get(13)?;
    let integration: Option<String> = row.get(14)?;
    Ok((|| {
        Ok(Delivery {
            id: DeliveryId::parse(&id).map_err(|_| corrupt("delivery id"))?,
            notification_id: NotificationId::parse(&notification_id)
                .map_err(|_| corrupt("notification id"))?,
            recipient_index: recipient_index as usize,
            channel: channel.parse().map_err(|_| corrupt("channel"))?,
            address: serde_json::from_str(&address)?,
            status: status.parse().map_err(|_| corrupt("delivery status"))?,
            attempts: attempts as u32,
            provider,
            provider_message_id,
            integration,
            reason,
            user: user.map(|u| serde_json::from_str(&u)).transpose()?,
            deliver_after: match deliver_after {
                Some(at) => Some(parse_time(&at).ok_or_else(|| corrupt("timestamp"))?),
                None => None,
            },
            created_at: parse_time(&created_at).ok_or_else(|| corrupt("timestamp"))?,
            updated_at: parse_time(&updated_at).ok_or_else(|| corrupt("timestamp"))?,
        })
    })())
}

fn status_list<S: std::fmt::Display>(statuses: &[S]) -> String {
    statuses.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",")
}

fn add_event(
    conn: &Connection,
    notification: &str,
    delivery: Option<&str>,
    event: &str,
    detail: Option<&str>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO events (notification_id, delivery_id, event, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .db()?
    .execute(params![notification, delivery, event, detail, format_time(Utc::now())])
    .db()?;
    Ok(())
}

fn move_notification(
    conn: &Connection,
    id: &str,
    next: NotificationStatus,
    detail: Option<&str>,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE notifications SET status = ?1, updated_at = ?2 WHERE id = ?3 AND status IN ({})",
        status_list(&NotificationStatus::predecessors(next))
    );
    let moved = conn
        .prepare_cached(&sql)
        .db()?
        .execute(params![next.as_str(), format_time(Utc::now()), id])
        .db()?
        == 1;
    if moved {
        add_event(conn, id, None, next.as_str(), detail)?;
    }
    Ok(moved)
}

/// Once a dispatched notification has no pending delivery, it is `sent` if any delivery
/// reached its recipient and `failed` otherwise. `reached` says one is known to have
/// (the delivery just moved), which spares a lookup on every send.
fn settle(conn: &Connection, notification: &str, reached: bool) -> StoreResult<bool> {
    // Index lookups, not a count: a 10,000-member group's notification settles as
    // often as it has deliveries.
    let pending: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE notification_id = ?1 AND status = 'queued')",
        ).db()?
        .query_row([notification], |r| r.get(0)).db()?;
    if pending {
        return Ok(false);
    }
    let reached = reached
        || conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE notification_id = ?1
                                AND status IN ('sent', 'delivered'))",
            )
            .db()?
            .query_row([notification], |r| r.get(0))
            .db()?;
    if reached {
        move_notification(conn, notification, NotificationStatus::Sent, None)
    } else {
        let detail = Some("no delivery reached its recipient");
        move_notification(conn, notification, NotificationStatus::Failed, detail)
    }
}

/// A delivery by id, read on `conn`.
fn read_delivery(conn: &Connection, id: &str) -> StoreResult<Option<Delivery>> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1");
    conn.prepare_cached(&sql).db()?.query_row([id], delivery_from_row).optional().db()?.transpose()
}

/// A notification by id, read on `conn`.
fn read_notification(conn: &Connection, id: &str) -> StoreResult<Option<Notification>> {
    let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?1");
    let row =
        conn.prepare_cached(&sql).db()?.query_row([id], notification_from_row).optional().db()?;
    row.map(decode_notification).transpose()
}

fn insert_delivery_rows(conn: &Connection, deliveries: &[Delivery]) -> StoreResult<()> {
    let mut insert = conn
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO deliveries ({DELIVERY_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ))
        .db()?;
    for d in deliveries {
        let (id, notification) = (d.id.to_string(), d.notification_id.to_string());
        let inserted = insert
            .execute(params![
                id,
                notification,
                d.recipient_index as i64,
                d.channel.as_str(),
                serde_json::to_string(&d.address)?,
                d.status.as_str(),
                d.attempts as i64,
                d.provider,
                d.provider_message_id,
                d.reason,
                format_time(d.created_at),
                format_time(d.updated_at),
                d.user.as_ref().map(serde_json::to_string).transpose()?,
                d.deliver_after.map(format_time),
                d.integration,
            ])
            .db()?
            == 1;
        if inserted {
            let detail = d.planned_detail();
            add_event(conn, &notification, Some(&id), d.status.as_str(), detail.as_deref())?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteBackend {
    async fn accept(&self, acceptance: Acceptance) -> StoreResult<AcceptOutcome> {
        let Acceptance { notification: n, claim, deliveries, outbox } = acceptance;
        let queues = queues_of(&outbox);
        let body = serde_json::to_string(&n)?;
        let channels = serde_json::to_string(&n.channels)?;
        let now = self.now_ms();
        let outcome = self
            .writer()
            .run(move |conn| {
                let id = n.id.to_string();
                let created_at = format_time(n.created_at);
                if let Some(claim) = &claim {
                    let earlier: Option<(String, String, String)> = conn
                        .prepare_cached(
                            "SELECT body_hash, notification_id, created_at FROM idempotency_keys
                             WHERE app_id = ?1 AND key = ?2",
                        ).db()?
                        .query_row(params![n.app_id, claim.key], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional().db()?;
                    let window_start = format_time(Utc::now() - IDEMPOTENCY_WINDOW);
                    match earlier {
                        Some((hash, earlier_id, at)) if at >= window_start => {
                            return Ok(if hash == claim.body_hash {
                                AcceptOutcome::Replayed(
                                    NotificationId::parse(&earlier_id)
                                        .map_err(|_| corrupt("notification id"))?,
                                )
                            } else {
                                AcceptOutcome::KeyReused
                            });
                        }
                        _ => {}
                    }
                    conn.prepare_cached(
                        "INSERT OR REPLACE INTO idempotency_keys
                         (app_id, key, body_hash, notification_id, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    ).db()?
                    .execute(params![n.app_id, claim.key, claim.body_hash, id, created_at]).db()?;
                }
                conn.prepare_cached(
                    "INSERT INTO notifications
                     (id, app_id, status, priority, category, channels, created_at, updated_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                ).db()?
                .execute(params![
                    id,
                    n.app_id,
                    n.status.as_str(),
                    n.priority.as_str(),
                    n.category,
                    channels,
                    created_at,
                    body
                ]).db()?;
                let mut by_channel = conn.prepare_cached(
                    "INSERT OR IGNORE INTO notification_channels (app_id, channel, notification_id)
                     VALUES (?1, ?2, ?3)",
                ).db()?;
                for channel in &n.channels {
                    by_channel.execute(params![n.app_id, channel.as_str(), id]).db()?;
                }
                add_event(conn, &id, None, NotificationStatus::Accepted.as_str(), None)?;
                if n.status == NotificationStatus::Dispatched {
                    // Planned at intake: the rest of what dispatch would record.
                    add_event(conn, &id, None, n.status.as_str(), None)?;
                    insert_delivery_rows(conn, &deliveries)?;
                    if deliveries.iter().all(|d| d.status.is_settled()) {
                        settle(conn, &id, false)?; // None to send (no address, say).
                    }
                }
                insert_jobs(conn, &outbox, now)?;
                Ok(AcceptOutcome::Created)
            })
            .await?;
        if outcome == AcceptOutcome::Created {
            self.wake(&queues);
        }
        Ok(outcome)
    }

    async fn notification(&self, id: &NotificationId) -> StoreResult<Option<Notification>> {
        let id = id.to_string();
        self.read(move |conn| read_notification(conn, &id)).await
    }

    async fn list_notifications(
        &self,
        app_id: &str,
        filter: &NotificationFilter,
    ) -> StoreResult<NotificationList> {
        let (sql, args) = list_query(app_id, filter);
        let items = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&sql).db()?;
                let rows =
                    statement.query_map(params_from_iter(args), notification_from_row).db()?;
                rows.map(|row| decode_notification(row.db()?)).collect::<StoreResult<Vec<_>>>()
            })
            .await?;
        Ok(NotificationList { items, resume_before: None })
    }

    async fn stranded_notifications(
        &self,
        before: DateTime<Utc>,
        after: Option<&NotificationId>,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE status = 'accepted' AND created_at < ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            );
            let mut statement = conn.prepare_cached(&sql).db()?;
            let rows = statement
                .query_map(params![format_time(before), after, limit as i64], notification_from_row)
                .db()?;
            rows.map(|row| decode_notification(row.db()?)).collect()
        })
        .await
    }

    async fn transition_notification(
        &self,
        id: &NotificationId,
        next: NotificationStatus,
        detail: Option<String>,
    ) -> StoreResult<bool> {
        let id = id.to_string();
        self.writer()
            .run(move |conn| {
                let moved = move_notification(conn, &id, next, detail.as_deref())?;
                if moved
                    && matches!(next, NotificationStatus::Canceled | NotificationStatus::Expired)
                {
                    let delivery_status = if next == NotificationStatus::Canceled {
                        DeliveryStatus::Canceled
                    } else {
                        DeliveryStatus::Expired
                    };
                    let ids: Vec<String> = conn
                        .prepare_cached(
                            "UPDATE deliveries SET status = ?1, updated_at = ?2
                             WHERE notification_id = ?3 AND status = 'queued' RETURNING id",
                        )
                        .db()?
                        .query_map(
                            params![delivery_status.as_str(), format_time(Utc::now()), id],
                            |r| r.get(0),
                        )
                        .db()?
                        .collect::<rusqlite::Result<_>>()
                        .db()?;
                    for delivery in ids {
                        add_event(conn, &id, Some(&delivery), delivery_status.as_str(), None)?;
                    }
                }
                Ok(moved)
            })
            .await
    }

    async fn insert_deliveries(
        &self,
        deliveries: &[Delivery],
        outbox: Vec<Job>,
    ) -> StoreResult<()> {
        let deliveries = deliveries.to_vec();
        let queues = queues_of(&outbox);
        let now = self.now_ms();
        self.writer()
            .run(move |conn| {
                insert_delivery_rows(conn, &deliveries)?;
                insert_jobs(conn, &outbox, now)
            })
            .await?;
        self.wake(&queues);
        Ok(())
    }

    async fn record_dispatch(
        &self,
        id: &NotificationId,
        deliveries: &[Delivery],
        outbox: Vec<Job>,
    ) -> StoreResult<bool> {
        let id = id.to_string();
        let deliveries = deliveries.to_vec();
        let queues = queues_of(&outbox);
        let now = self.now_ms();
        let moved = self
            .writer()
            .run(move |conn| {
                insert_delivery_rows(conn, &deliveries)?;
                insert_jobs(conn, &outbox, now)?;
                let moved = move_notification(conn, &id, NotificationStatus::Dispatched, None)?;
                if moved {
                    // Every delivery may have been settled at creation (all suppressed).
                    settle(conn, &id, false)?;
                }
                Ok(moved)
            })
            .await?;
        self.wake(&queues);
        Ok(moved)
    }

    async fn delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        let id = id.to_string();
        self.read(move |conn| read_delivery(conn, &id)).await
    }

    async fn delivery_to_send(&self, id: &DeliveryId) -> StoreResult<DeliveryRead> {
        Ok(self.deliveries_to_send(std::slice::from_ref(id)).await?.pop().flatten())
    }

    async fn deliveries_to_send(&self, ids: &[DeliveryId]) -> StoreResult<Vec<DeliveryRead>> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.read(move |conn| {
            // One read transaction for the batch, not two per delivery. A reader's
            // transaction takes the WAL's read lock (fcntl calls on the -shm file), and
            // after any commit starts from an empty page cache: per delivery that was a
            // fifth of a send worker's time (docs/performance.md).
            let snapshot = conn.unchecked_transaction().db()?;
            let mut reads = Vec::with_capacity(ids.len());
            for id in &ids {
                reads.push(match read_delivery(conn, id)? {
                    Some(delivery) if !delivery.status.is_settled() => {
                        let parent = delivery.notification_id.to_string();
                        let notification = read_notification(conn, &parent)?;
                        Some((delivery, notification))
                    }
                    settled_or_none => settled_or_none.map(|delivery| (delivery, None)),
                });
            }
            snapshot.finish().db()?;
            Ok(reads)
        })
        .await
    }

    async fn deliveries(&self, notification: &NotificationId) -> StoreResult<Vec<Delivery>> {
        let id = notification.to_string();
        self.read(move |conn| read_deliveries(conn, &id)).await
    }

    async fn transition_delivery(
        &self,
        id: &DeliveryId,
        next: DeliveryStatus,
        outcome: DeliveryOutcome,
    ) -> StoreResult<bool> {
        let id = id.to_string();
        self.writer()
            .run(move |conn| {
                let sql = format!(
                    "UPDATE deliveries SET status = ?1, attempts = MAX(attempts, ?2),
                         provider = COALESCE(?3, provider),
                         provider_message_id = COALESCE(?4, provider_message_id),
                         reason = ?5, updated_at = ?6
                     WHERE id = ?7 AND status IN ({}) RETURNING notification_id",
                    status_list(&DeliveryStatus::predecessors(next))
                );
                let notification: Option<String> = conn
                    .prepare_cached(&sql)
                    .db()?
                    .query_row(
                        params![
                            next.as_str(),
                            outcome.attempts as i64,
                            outcome.provider,
                            outcome.provider_message_id,
                            outcome.reason,
                            format_time(Utc::now()),
                            id
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .db()?;
                let Some(notification) = notification else {
                    return Ok(false);
                };
                let detail = outcome.timeline_detail();
                add_event(conn, &notification, Some(&id), next.as_str(), detail.as_deref())?;
                settle(conn, &notification, next.reached_recipient())?;
                Ok(true)
            })
            .await
    }

    async fn record_attempt(&self, id: &DeliveryId, attempts: u32, error: &str) -> StoreResult<()> {
        let (id, error) = (id.to_string(), error.to_owned());
        self.writer()
            .run(move |conn| {
                let notification: Option<String> = conn
                    .prepare_cached(
                        "UPDATE deliveries SET attempts = ?1, reason = ?2, updated_at = ?3
                         WHERE id = ?4 RETURNING notification_id",
                    )
                    .db()?
                    .query_row(params![attempts as i64, error, format_time(Utc::now()), id], |r| {
                        r.get(0)
                    })
                    .optional()
                    .db()?;
                if let Some(notification) = notification {
                    add_event(conn, &notification, Some(&id), "attempt_failed", Some(&error))?;
                }
                Ok(())
            })
            .await
    }

    async fn switch_integration(
        &self,
        id: &DeliveryId,
        integration: &str,
        detail: &str,
    ) -> StoreResult<bool> {
        let (id, integration, detail) = (id.to_string(), integration.to_owned(), detail.to_owned());
        self.writer()
            .run(move |conn| {
                let sql = format!(
                    "UPDATE deliveries SET integration = ?1, updated_at = ?2
                     WHERE id = ?3 AND status = '{}' RETURNING notification_id",
                    DeliveryStatus::Queued
                );
                let notification: Option<String> = conn
                    .prepare_cached(&sql)
                    .db()?
                    .query_row(params![integration, format_time(Utc::now()), id], |r| r.get(0))
                    .optional()
                    .db()?;
                let Some(notification) = notification else {
                    return Ok(false);
                };
                add_event(conn, &notification, Some(&id), "failover", Some(&detail))?;
                Ok(true)
            })
            .await
    }

    async fn record_delivery_event(
        &self,
        id: &DeliveryId,
        event: &str,
        detail: Option<&str>,
    ) -> StoreResult<bool> {
        let (id, event, detail) = (id.to_string(), event.to_owned(), detail.map(str::to_owned));
        self.writer()
            .run(move |conn| {
                let notification: Option<String> = conn
                    .prepare_cached("SELECT notification_id FROM deliveries WHERE id = ?1")
                    .db()?
                    .query_row([&id], |r| r.get(0))
                    .optional()
                    .db()?;
                let Some(notification) = notification else {
                    return Ok(false);
                };
                add_event(conn, &notification, Some(&id), &event, detail.as_deref())?;
                Ok(true)
            })
            .await
    }

    async fn timeline(&self, id: &NotificationId) -> StoreResult<Vec<TimelineEvent>> {
        let id = id.to_string();
        self.read(move |conn| read_timeline(conn, &id)).await
    }

    async fn notification_detail(&self, id: &NotificationId) -> StoreResult<Option<Detail>> {
        let id = id.to_string();
        self.read(move |conn| {
            // One snapshot: a send that settles in between cannot show its delivery
            // `sent` beside a notification still `dispatched`.
            let snapshot = conn.unchecked_transaction().db()?;
            let detail = match read_notification(conn, &id)? {
                Some(notification) => Some(Detail {
                    notification,
                    deliveries: read_deliveries(conn, &id)?,
                    timeline: read_timeline(conn, &id)?,
                }),
                None => None,
            };
            snapshot.finish().db()?;
            Ok(detail)
        })
        .await
    }

    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.writer()
            .run(move |conn| {
                let n = conn
                    .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")
                    .db()?
                    .execute([format_time(before)])
                    .db()?;
                // Counters of closed frequency-cap windows go with them (DynamoDB's
                // TTL does the same there).
                conn.prepare_cached("DELETE FROM cap_slots WHERE expires_at < ?1")
                    .db()?
                    .execute([Utc::now().timestamp()])
                    .db()?;
                Ok(n as u64)
            })
            .await
    }
}

#[async_trait]
impl KeyStore for SqliteBackend {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.writer()
            .run(move |conn| {
                let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                conn.prepare_cached(
                    "INSERT INTO api_keys (id, app_id, name, hash, scopes, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .db()?
                .execute(params![
                    key.id,
                    key.app_id,
                    key.name,
                    key.hash,
                    scopes.join(","),
                    format_time(key.created_at)
                ])
                .db()?;
                Ok(())
            })
            .await
    }

    async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT id, app_id, name, hash, scopes, created_at FROM api_keys WHERE hash = ?1",
                ).db()?
                .query_row([hash], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })
                .optional().db()?;
            row.map(|(id, app_id, name, hash, scopes, created_at)| {
                Ok(ApiKeyRecord {
                    id,
                    app_id,
                    name,
                    hash,
                    scopes: scopes
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse::<Scope>().map_err(|_| corrupt("scope")))
                        .collect::<StoreResult<_>>()?,
                    created_at: parse_time(&created_at).ok_or_else(|| corrupt("timestamp"))?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn count_api_keys(&self) -> StoreResult<u64> {
        self.read(|conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0)).db()?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl SettingStore for SqliteBackend {
    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT value FROM settings WHERE name = ?1")
                .db()?
                .query_row([name], |r| r.get(0))
                .optional()
                .db()
        })
        .await
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.writer()
            .run(move |conn| {
                conn.prepare_cached("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)")
                    .db()?
                    .execute(params![name, value])
                    .db()?;
                conn.prepare_cached("SELECT value FROM settings WHERE name = ?1")
                    .db()?
                    .query_row([&name], |r| r.get(0))
                    .db()
            })
            .await
    }
}

#[async_trait]
impl ReceiptStore for SqliteBackend {
    async fn remember_receipt(
        &self,
        provider: &str,
        message_id: &str,
        delivery: &DeliveryId,
    ) -> StoreResult<()> {
        let (provider, message_id) = (provider.to_owned(), message_id.to_owned());
        let (delivery, now) = (delivery.to_string(), format_time(Utc::now()));
        self.writer()
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO receipts (provider, message_id, delivery_id, created_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .db()?
                .execute(params![provider, message_id, delivery, now])
                .db()?;
                Ok(())
            })
            .await
    }

    async fn receipt_delivery(
        &self,
        provider: &str,
        message_id: &str,
    ) -> StoreResult<Option<DeliveryId>> {
        let (provider, message_id) = (provider.to_owned(), message_id.to_owned());
        let id: Option<String> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT delivery_id FROM receipts WHERE provider = ?1 AND message_id = ?2",
                )
                .db()?
                .query_row(params![provider, message_id], |r| r.get(0))
                .optional()
                .db()
            })
            .await?;
        Ok(id.and_then(|id| DeliveryId::parse(&id).ok()))
    }
}

/// The SQL and arguments of one page of an app's notifications; every filter reads
/// an index (see the query-plan test).
pub(crate) fn list_query(app_id: &str, filter: &NotificationFilter) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE app_id = ?");
    let mut args: Vec<Value> = vec![app_id.to_owned().into()];
    let mut clause = |condition: &str, value: Value| {
        sql.push_str(" AND ");
        sql.push_str(condition);
        args.push(value);
    };
    if let Some(status) = filter.status {
        clause("status = ?", status.as_str().to_owned().into());
    }
    if let Some(priority) = filter.priority {
        clause("priority = ?", priority.as_str().to_owned().into());
    }
    if let Some(channel) = filter.channel {
        clause(
            "id IN (SELECT notification_id FROM notification_channels
                    WHERE app_id = notifications.app_id AND channel = ?)",
            channel.as_str().to_owned().into(),
        );
    }
    if let Some(category) = &filter.category {
        clause("category = ?", category.clone().into());
    }
    // Ids sort by creation time: a time window is also an id range, which the
    // (app_id, id) index reads directly instead of every row of the app.
    let (lowest, highest) = filter.id_range();
    if let Some(after) = filter.created_after {
        clause("created_at >= ?", format_time(after).into());
    }
    if let Some(lowest) = lowest {
        clause("id >= ?", lowest.into());
    }
    if let Some(before) = filter.created_before {
        clause("created_at < ?", format_time(before).into());
    }
    if let Some(highest) = highest {
        clause("id < ?", highest.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push((filter.limit as i64).into());
    (sql, args)
}

fn read_deliveries(conn: &Connection, notification: &str) -> StoreResult<Vec<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = ?1
         ORDER BY recipient_index, created_at, id"
    );
    let mut statement = conn.prepare_cached(&sql).db()?;
    let rows = statement.query_map([notification], delivery_from_row).db()?;
    rows.map(|row| row.db()?).collect()
}

fn read_timeline(conn: &Connection, notification: &str) -> StoreResult<Vec<TimelineEvent>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT at, event, delivery_id, detail FROM events
             WHERE notification_id = ?1 ORDER BY seq",
        )
        .db()?;
    let rows = statement
        .query_map([notification], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, Option<String>>(2)?, r.get(3)?))
        })
        .db()?;
    rows.map(|row| {
        let (at, event, delivery, detail) = row.db()?;
        Ok(TimelineEvent {
            at: parse_time(&at).ok_or_else(|| corrupt("timestamp"))?,
            event,
            delivery_id: delivery.and_then(|d| DeliveryId::parse(&d).ok()),
            detail,
        })
    })
    .collect()
}

#[cfg(test)]
mod list_plan_tests {
    use super::*;
    use herald_core::domain::{Channel, NotificationStatus, Priority};

    /// What SQLite plans for one list query, one line per step.
    fn plan(filter: &NotificationFilter) -> String {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("schema.sql")).unwrap();
        let (sql, args) = list_query("app", filter);
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps: Vec<String> = statement
            .query_map(params_from_iter(args), |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        steps.join("\n")
    }

    #[test]
    fn every_documented_filter_reads_an_index() {
        let base = NotificationFilter { limit: 50, ..Default::default() };
        let now = Utc::now();
        let cases = [
            (
                NotificationFilter { status: Some(NotificationStatus::Failed), ..base.clone() },
                "notifications_by_app_status",
            ),
            (
                NotificationFilter { priority: Some(Priority::High), ..base.clone() },
                "notifications_by_app_priority",
            ),
            (
                NotificationFilter { category: Some("news".into()), ..base.clone() },
                "notifications_by_app_category",
            ),
            (
                NotificationFilter { channel: Some(Channel::Sms), ..base.clone() },
                "notification_channels",
            ),
            (
                NotificationFilter { created_after: Some(now), ..base.clone() },
                "notifications_by_app (app_id=? AND id>?",
            ),
            (
                NotificationFilter { created_before: Some(now), ..base.clone() },
                "notifications_by_app (app_id=? AND id<?",
            ),
            (base.clone(), "notifications_by_app (app_id=?)"),
        ];
        for (filter, index) in cases {
            let plan = plan(&filter);
            assert!(plan.contains(index), "{filter:?} should use {index}:\n{plan}");
            assert!(!plan.contains("SCAN notifications"), "{filter:?} scans:\n{plan}");
        }
    }
}
