//! Dispatch: expire or fan a notification out into one delivery per (recipient, channel)
//! and queue each on its channel. Safe to run twice for the same notification: delivery
//! ids are derived, inserts skip existing rows and queueing is deduplicated.

use super::send_job;
use crate::domain::notification::WebhookTarget;
use crate::domain::preferences::{Circumstances, Verdict};
use crate::domain::{
    Channel, Delivery, DeliveryId, DeliveryStatus, Notification, NotificationId,
    NotificationStatus, Recipient, Routing,
};
use crate::domain::{DeliveryUser, User};
use crate::ports::{CapWindow, GroupStore, PreferenceStore, Store, StoreError, UserStore};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchOutcome {
    Dispatched {
        queued: usize,
        suppressed: usize,
    },
    Expired,
    /// Canceled, already dispatched, or gone: nothing to do.
    Skipped,
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
    let profile = user.map(|u| &u.profile);
    Recipient {
        email: profile.and_then(|p| p.email.clone()),
        phone: profile.and_then(|p| p.phone.clone()),
        webhook: profile.and_then(|p| p.webhook_url.clone()).map(|url| WebhookTarget { url }),
        user_id: Some(id.to_owned()),
        group: None,
    }
}

/// A recipient with addresses, and the user record it came from (if any).
pub struct Resolved {
    pub recipient: Recipient,
    pub user: Option<User>,
}

/// The notification's recipients with users and groups replaced by addresses: a
/// group by its members in id order, so a repeated dispatch plans the same deliveries.
pub async fn resolve_recipients(
    notification: &Notification,
    directory: Directory<'_>,
) -> Result<Vec<Resolved>, StoreError> {
    let app = &notification.app_id;
    let mut resolved = Vec::with_capacity(notification.to.len());
    fn add_users(resolved: &mut Vec<Resolved>, ids: &[String], users: Vec<Option<User>>) {
        for (id, user) in ids.iter().zip(users) {
            resolved.push(Resolved { recipient: user_recipient(user.as_ref(), id), user });
        }
    }
    for recipient in &notification.to {
        if let Some(id) = &recipient.user_id {
            let ids = std::slice::from_ref(id);
            add_users(&mut resolved, ids, directory.users.users(app, ids).await?);
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
            resolved.push(Resolved { recipient: recipient.clone(), user: None });
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
    let Some(mut notification) = store.notification(id).await? else {
        return Ok(DispatchOutcome::Skipped);
    };
    if notification.status != NotificationStatus::Accepted {
        return Ok(DispatchOutcome::Skipped);
    }
    if notification.is_expired_at(now) {
        let detail = Some("expires_at passed before dispatch".to_owned());
        store.transition_notification(id, NotificationStatus::Expired, detail).await?;
        return Ok(DispatchOutcome::Expired);
    }
    let mut users = Vec::new();
    if notification.to.iter().any(Recipient::is_indirect) {
        let resolved = resolve_recipients(&notification, directory).await?;
        (notification.to, users) = resolved.into_iter().map(|r| (r.recipient, r.user)).unzip();
    }
    let mut deliveries = plan_deliveries(&notification, now);
    if !users.is_empty() {
        apply_preferences(&notification, &users, &mut deliveries, directory.preferences, now)
            .await?;
    }
    let jobs: Vec<_> = deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Queued)
        .map(|d| {
            let mut job = send_job(&d.id, d.channel, notification.priority);
            if let Some(after) = d.deliver_after {
                job.delay = (after - now).to_std().unwrap_or_default();
            }
            job
        })
        .collect();
    let queued = jobs.len();
    store.record_dispatch(id, &deliveries, jobs).await?;
    Ok(DispatchOutcome::Dispatched { queued, suppressed: deliveries.len() - queued })
}

/// Marks each delivery to a user with who it is for, then applies what they want:
/// opted out → `suppressed` (`opted_out`); over a frequency cap → `suppressed`
/// (`frequency_cap`); inside quiet hours → `deliver_after` the window's end.
async fn apply_preferences(
    notification: &Notification,
    users: &[Option<User>],
    deliveries: &mut [Delivery],
    store: &dyn PreferenceStore,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let category = notification.category.as_deref();
    let settings = match category {
        Some(name) => store.category(&notification.app_id, name).await?,
        None => None,
    };
    for delivery in deliveries {
        let Some(recipient_id) =
            notification.to.get(delivery.recipient_index).and_then(|r| r.user_id.clone())
        else {
            continue;
        };
        let user = users.get(delivery.recipient_index).and_then(Option::as_ref);
        let profile = user.map(|u| &u.profile);
        delivery.user = Some(DeliveryUser {
            id: recipient_id.clone(),
            unsubscribable: !settings.as_ref().is_some_and(|s| s.critical),
            locale: profile.and_then(|p| p.locale.clone()),
            time_zone: profile.and_then(|p| p.time_zone.clone()),
        });
        let Some(user) = user else { continue };
        if delivery.status != DeliveryStatus::Queued {
            continue;
        }
        let circumstances = Circumstances {
            category,
            settings: settings.as_ref(),
            channel: delivery.channel,
            priority: notification.priority,
            user_zone: user
                .profile
                .time_zone
                .as_deref()
                .and_then(|z| z.parse().ok())
                .unwrap_or(Tz::UTC),
            now,
        };
        let after = match user.preferences.verdict(&circumstances) {
            Verdict::OptedOut => {
                suppress(delivery, "opted_out");
                continue;
            }
            Verdict::Send { after } => after,
        };
        if let Some(category) = category
            && let Some(cap) = user.preferences.cap(category, delivery.channel, settings.as_ref())
        {
            let window = CapWindow {
                app_id: notification.app_id.clone(),
                user_id: recipient_id,
                category: category.to_owned(),
                channel: delivery.channel,
                period: cap.period,
                start: cap.period.window_start(now),
            };
            if !store.take_cap_slot(&window, &delivery.id, cap.limit).await? {
                suppress(delivery, "frequency_cap");
                continue;
            }
        }
        delivery.deliver_after = after;
    }
    Ok(())
}

fn suppress(delivery: &mut Delivery, reason: &str) {
    delivery.status = DeliveryStatus::Suppressed;
    delivery.reason = Some(reason.to_owned());
}

/// The deliveries a notification starts with. With `all` routing, one per recipient and
/// channel; with `fallback`, per recipient the first channel it has an address for
/// (channels skipped on the way are recorded as suppressed, so the timeline says why).
pub fn plan_deliveries(notification: &Notification, now: DateTime<Utc>) -> Vec<Delivery> {
    let mut planned = Vec::new();
    for (index, recipient) in notification.to.iter().enumerate() {
        for &channel in &notification.channels {
            let delivery = new_delivery(notification, index, recipient, channel, now);
            let queued = delivery.status == DeliveryStatus::Queued;
            planned.push(delivery);
            if queued && notification.routing == Routing::Fallback {
                break;
            }
        }
    }
    planned
}

/// The next delivery to try when one fails under `fallback` routing, if any channel is
/// left that the recipient has an address for.
pub fn next_fallback(
    notification: &Notification,
    failed: &Delivery,
    now: DateTime<Utc>,
) -> Option<Delivery> {
    if notification.routing != Routing::Fallback {
        return None;
    }
    let recipient = notification.to.get(failed.recipient_index)?;
    let position = notification.channels.iter().position(|c| *c == failed.channel)?;
    notification.channels[position + 1..]
        .iter()
        .map(|&channel| new_delivery(notification, failed.recipient_index, recipient, channel, now))
        .find(|d| d.status == DeliveryStatus::Queued)
}

fn new_delivery(
    notification: &Notification,
    index: usize,
    recipient: &Recipient,
    channel: Channel,
    now: DateTime<Utc>,
) -> Delivery {
    let address = recipient.address_for(channel);
    let (status, reason) = match address {
        Some(_) => (DeliveryStatus::Queued, None),
        None => (DeliveryStatus::Suppressed, Some("no_address".to_owned())),
    };
    Delivery {
        id: DeliveryId::derive(&notification.id, index, channel.as_str()),
        notification_id: notification.id.clone(),
        recipient_index: index,
        channel,
        // A suppressed delivery keeps the recipient's first address for reference.
        address: address.unwrap_or_else(|| first_address(recipient)),
        status,
        attempts: 0,
        provider: None,
        provider_message_id: None,
        reason,
        user: None,
        deliver_after: None,
        created_at: now,
        updated_at: now,
    }
}

fn first_address(recipient: &Recipient) -> crate::domain::Address {
    Channel::ALL.into_iter().find_map(|c| recipient.address_for(c)).unwrap_or_else(|| {
        crate::domain::Address::User(recipient.user_id.clone().unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::WebhookTarget;
    use crate::domain::{EmailAddress, Priority, WebhookUrl};

    fn notification(routing: Routing, to: Vec<Recipient>) -> Notification {
        Notification {
            to,
            routing,
            channels: vec![Channel::Webhook, Channel::Email],
            ..crate::contract::notification("app", Priority::Medium)
        }
    }

    fn email_only() -> Recipient {
        Recipient {
            email: Some(EmailAddress::parse("ann@example.com").unwrap()),
            phone: None,
            webhook: None,
            user_id: None,
            group: None,
        }
    }

    fn both() -> Recipient {
        Recipient {
            webhook: Some(WebhookTarget {
                url: WebhookUrl::parse("https://example.com/h").unwrap(),
            }),
            ..email_only()
        }
    }

    #[test]
    fn all_routing_makes_one_delivery_per_recipient_and_channel() {
        let n = notification(Routing::All, vec![both(), email_only()]);
        let planned = plan_deliveries(&n, Utc::now());
        let statuses: Vec<_> =
            planned.iter().map(|d| (d.recipient_index, d.channel, d.status)).collect();
        assert_eq!(
            statuses,
            vec![
                (0, Channel::Webhook, DeliveryStatus::Queued),
                (0, Channel::Email, DeliveryStatus::Queued),
                (1, Channel::Webhook, DeliveryStatus::Suppressed),
                (1, Channel::Email, DeliveryStatus::Queued),
            ]
        );
        assert_eq!(planned[2].reason.as_deref(), Some("no_address"));
    }

    #[test]
    fn fallback_routing_starts_with_the_first_reachable_channel() {
        let n = notification(Routing::Fallback, vec![both(), email_only()]);
        let planned = plan_deliveries(&n, Utc::now());
        let statuses: Vec<_> =
            planned.iter().map(|d| (d.recipient_index, d.channel, d.status)).collect();
        assert_eq!(
            statuses,
            vec![
                (0, Channel::Webhook, DeliveryStatus::Queued),
                (1, Channel::Webhook, DeliveryStatus::Suppressed),
                (1, Channel::Email, DeliveryStatus::Queued),
            ]
        );
        let next = next_fallback(&n, &planned[0], Utc::now()).unwrap();
        assert_eq!((next.recipient_index, next.channel), (0, Channel::Email));
        assert!(next_fallback(&n, &planned[2], Utc::now()).is_none());
    }

    #[test]
    fn planning_twice_gives_the_same_deliveries() {
        let n = notification(Routing::All, vec![both()]);
        let a: Vec<_> = plan_deliveries(&n, Utc::now()).into_iter().map(|d| d.id).collect();
        let b: Vec<_> = plan_deliveries(&n, Utc::now()).into_iter().map(|d| d.id).collect();
        assert_eq!(a, b);
    }
}
