//! Dispatch: expire or fan a notification out into one delivery per (recipient, channel)
//! and queue each on its channel. Safe to run twice for the same notification: delivery
//! ids are derived, inserts skip existing rows and queueing is deduplicated.

use super::delivery_job;
use super::plan::{Planner, plan_deliveries, plan_recipient};
use crate::domain::{
    Delivery, DeliveryStatus, Notification, NotificationId, NotificationStatus, Recipient, Routing,
    User,
};
use crate::ports::{GroupStore, LeasedJob, PreferenceStore, Store, StoreError, UserStore};
use chrono::{DateTime, Utc};
use futures::StreamExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchOutcome {
    Dispatched {
        queued: usize,
        suppressed: usize,
    },
    Expired,
    /// Canceled or already dispatched: nothing to do.
    Skipped,
    /// No such notification. Where the dispatch message is queued before the
    /// notification is written (DynamoDB), the write may still be under way, or may
    /// have failed (the request got no 202): see `retry_missing`.
    Missing,
}

/// A message for a `Missing` notification is tried again this many times, this far
/// apart, then let go: the write it waits for takes milliseconds when it happens.
pub const MISSING_ATTEMPTS: u32 = 5;
pub const MISSING_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether (and after how long) to try the dispatch message `job` again.
pub fn retry_missing(outcome: DispatchOutcome, job: &LeasedJob) -> Option<std::time::Duration> {
    (outcome == DispatchOutcome::Missing && job.attempts < MISSING_ATTEMPTS)
        .then_some(MISSING_RETRY_DELAY)
}

/// Where dispatch looks up users and groups named as recipients, and what they want.
#[derive(Clone, Copy)]
pub struct Directory<'a> {
    pub users: &'a dyn UserStore,
    pub groups: &'a dyn GroupStore,
    pub preferences: &'a dyn PreferenceStore,
}

/// Group members read per page while resolving a group.
const MEMBER_PAGE: usize = 1000;

/// The recipient a user is: their identities, or, with none for a channel, the user id
/// (so the delivery is suppressed with `no_address`).
fn user_recipient(user: Option<&User>, id: &str) -> Recipient {
    Recipient::of_user(id, user.map(|u| &u.profile))
}

/// A recipient with addresses, the user record it came from (if any), and its
/// `recipient_index`.
pub struct Resolved {
    pub index: usize,
    pub recipient: Recipient,
    pub user: Option<User>,
}

/// Recipients planned at once: their cap counters are taken concurrently.
const PLAN_CONCURRENCY: usize = 32;

/// The notification's recipients with users and groups replaced by addresses. A direct
/// address keeps its position in `to` as its index (so fallback finds it there again);
/// users follow from `to.len()` on, in the order of `to` and a group's members by id,
/// so a repeated dispatch plans the same deliveries. Users named directly are read in
/// one batch, a group's members a page at a time.
pub async fn resolve_recipients(
    notification: &Notification,
    directory: Directory<'_>,
) -> Result<Vec<Resolved>, StoreError> {
    let app = &notification.app_id;
    let mut resolved = Vec::with_capacity(notification.to.len());
    let mut next_index = notification.to.len();
    let mut add_users = |resolved: &mut Vec<Resolved>, ids: &[String], users: Vec<Option<User>>| {
        for (id, user) in ids.iter().zip(users) {
            let recipient = user_recipient(user.as_ref(), id);
            resolved.push(Resolved { index: next_index, recipient, user });
            next_index += 1;
        }
    };
    let named: Vec<String> = notification.to.iter().filter_map(|r| r.user_id.clone()).collect();
    let mut named_users = directory.users.users(app, &named).await?.into_iter();
    for (position, recipient) in notification.to.iter().enumerate() {
        if let Some(id) = &recipient.user_id {
            let user = named_users.next().flatten();
            add_users(&mut resolved, std::slice::from_ref(id), vec![user]);
        } else if let Some(group) = &recipient.group {
            let mut after: Option<String> = None;
            loop {
                let page =
                    directory.groups.members(app, group, after.as_deref(), MEMBER_PAGE).await?;
                add_users(&mut resolved, &page, directory.users.users(app, &page).await?);
                if page.len() < MEMBER_PAGE {
                    break;
                }
                after = page.last().cloned();
            }
        } else {
            resolved.push(Resolved { index: position, recipient: recipient.clone(), user: None });
        }
    }
    Ok(resolved)
}

pub async fn dispatch(
    store: &dyn Store,
    directory: Directory<'_>,
    id: &NotificationId,
    now: DateTime<Utc>,
) -> Result<DispatchOutcome, StoreError> {
    let Some(notification) = store.notification(id).await? else {
        return Ok(DispatchOutcome::Missing);
    };
    if notification.status != NotificationStatus::Accepted {
        return Ok(DispatchOutcome::Skipped);
    }
    if notification.is_expired_at(now) {
        let detail = Some("expires_at passed before dispatch".to_owned());
        store.transition_notification(id, NotificationStatus::Expired, detail).await?;
        return Ok(DispatchOutcome::Expired);
    }
    let deliveries = if notification.to.iter().any(Recipient::is_indirect) {
        let resolved = resolve_recipients(&notification, directory).await?;
        let planner = Planner::new(&notification, directory.preferences, now).await?;
        let channels = &notification.channels;
        // Up to PLAN_CONCURRENCY recipients at once, results in order. (A loop, not a
        // stream combinator: a closure returning a borrowing future is not Send.)
        let mut pending = futures::stream::FuturesOrdered::new();
        let mut deliveries = Vec::with_capacity(resolved.len() * channels.len());
        for r in &resolved {
            if pending.len() >= PLAN_CONCURRENCY
                && let Some(planned) = pending.next().await
            {
                deliveries.extend(planned?);
            }
            pending.push_back(planner.plan(r.index, &r.recipient, r.user.as_ref(), channels));
        }
        while let Some(planned) = pending.next().await {
            deliveries.extend(planned?);
        }
        deliveries
    } else {
        plan_deliveries(&notification, now)
    };
    let jobs: Vec<_> = deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Queued)
        .map(|d| delivery_job(d, notification.priority, now))
        .collect();
    let queued = jobs.len();
    store.record_dispatch(id, &deliveries, jobs).await?;
    Ok(DispatchOutcome::Dispatched { queued, suppressed: deliveries.len() - queued })
}

/// What to try when a delivery fails for good under `fallback` routing: the recipient's
/// remaining channels up to the first one allowed, planned as dispatch would (with the
/// user's current identities and preferences); empty when none is left.
pub async fn next_fallback(
    notification: &Notification,
    failed: &Delivery,
    directory: Directory<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, StoreError> {
    let position = notification.channels.iter().position(|c| *c == failed.channel);
    let (Routing::Fallback, Some(position)) = (notification.routing, position) else {
        return Ok(Vec::new());
    };
    let rest = &notification.channels[position + 1..];
    let index = failed.recipient_index;
    if let Some(user) = &failed.user {
        let record = directory.users.user(&notification.app_id, &user.id).await?;
        let recipient = user_recipient(record.as_ref(), &user.id);
        let planner = Planner::new(notification, directory.preferences, now).await?;
        return planner.plan(index, &recipient, record.as_ref(), rest).await;
    }
    Ok(match notification.to.get(index) {
        Some(recipient) => plan_recipient(notification, index, recipient, rest, now),
        None => Vec::new(),
    })
}
