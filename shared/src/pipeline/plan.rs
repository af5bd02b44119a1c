//! Planning deliveries: one per (recipient, channel), or under `fallback` routing up to
//! the first channel that may be used. For a user, what they want decides each one:
//! opted out → `suppressed` (`opted_out`), over a frequency cap → `suppressed`
//! (`frequency_cap`), inside quiet hours → `deliver_after` the window's end.

use crate::domain::preferences::{Circumstances, Verdict};
use crate::domain::{
    Address, CategorySettings, Channel, Delivery, DeliveryId, DeliveryStatus, DeliveryUser,
    Notification, Recipient, Routing, User,
};
use crate::ports::{CapWindow, PreferenceStore, StoreError, UserStore};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Plans for recipients that are users: reads the category's settings once.
pub struct Planner<'a> {
    notification: &'a Notification,
    settings: Option<CategorySettings>,
    preferences: &'a dyn PreferenceStore,
    now: DateTime<Utc>,
}

impl<'a> Planner<'a> {
    pub async fn new(
        notification: &'a Notification,
        preferences: &'a dyn PreferenceStore,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let settings = match &notification.category {
            Some(name) => preferences.category(&notification.app_id, name).await?,
            None => None,
        };
        Ok(Self { notification, settings, preferences, now })
    }

    /// One recipient's deliveries over `channels`; `user` is the record a user
    /// recipient was resolved from (None for a direct address or an unknown user).
    pub async fn plan(
        &self,
        index: usize,
        recipient: &Recipient,
        user: Option<&User>,
        channels: &[Channel],
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut planned = Vec::new();
        for &channel in channels {
            let mut delivery = new_delivery(self.notification, index, recipient, channel, self.now);
            if let Some(id) = &recipient.user_id {
                self.apply_preferences(&mut delivery, id, user).await?;
            }
            let last = ends_plan(self.notification, &delivery);
            planned.push(delivery);
            if last {
                break;
            }
        }
        Ok(planned)
    }

    async fn apply_preferences(
        &self,
        delivery: &mut Delivery,
        user_id: &str,
        user: Option<&User>,
    ) -> Result<(), StoreError> {
        let settings = self.settings.as_ref();
        let profile = user.map(|u| &u.profile);
        delivery.user = Some(DeliveryUser {
            id: user_id.to_owned(),
            // Only a category can be unsubscribed from: mail without one is
            // transactional, and critical categories are never optional.
            unsubscribable: self.notification.category.is_some()
                && !settings.is_some_and(|s| s.critical),
            locale: profile.and_then(|p| p.locale.clone()),
            time_zone: profile.and_then(|p| p.time_zone.clone()),
            since: user.map(|u| u.created_at.timestamp_millis()),
        });
        let Some(user) = user else { return Ok(()) };
        if delivery.status != DeliveryStatus::Queued {
            return Ok(());
        }
        let category = self.notification.category.as_deref();
        let circumstances = Circumstances {
            category,
            settings,
            channel: delivery.channel,
            priority: self.notification.priority,
            user_zone: user
                .profile
                .time_zone
                .as_deref()
                .and_then(|z| z.parse().ok())
                .unwrap_or(Tz::UTC),
            now: self.now,
        };
        let after = match user.preferences.verdict(&circumstances) {
            Verdict::OptedOut => {
                suppress(delivery, "opted_out");
                return Ok(());
            }
            Verdict::Send { after } => after,
        };
        if let Some(category) = category
            && let Some(cap) = user.preferences.cap(category, delivery.channel, settings)
        {
            let window = CapWindow {
                app_id: self.notification.app_id.clone(),
                user_id: user_id.to_owned(),
                category: category.to_owned(),
                channel: delivery.channel,
                period: cap.period,
                // The notification's own time, not the clock's: a redelivered
                // dispatch counts in the same window as the first attempt.
                start: cap.period.window_start(self.notification.created_at),
            };
            if !self.preferences.take_cap_slot(&window, &delivery.id, cap.limit).await? {
                suppress(delivery, "frequency_cap");
                return Ok(());
            }
        }
        delivery.deliver_after = after;
        Ok(())
    }
}

/// For a delivery that waited for quiet hours to end: why it must not go now (its user
/// opted out or unsubscribed meanwhile, or was deleted), or None if it may.
pub async fn reason_to_hold_back(
    notification: &Notification,
    delivery: &Delivery,
    users: &dyn UserStore,
    preferences: &dyn PreferenceStore,
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, StoreError> {
    let Some(user_id) = delivery.user.as_ref().map(|u| &u.id) else { return Ok(None) };
    let Some(user) = users.user(&notification.app_id, user_id).await? else {
        return Ok(Some("user_deleted"));
    };
    let settings = match &notification.category {
        Some(name) => preferences.category(&notification.app_id, name).await?,
        None => None,
    };
    let allowed = user.preferences.allows(&Circumstances {
        category: notification.category.as_deref(),
        settings: settings.as_ref(),
        channel: delivery.channel,
        priority: notification.priority,
        user_zone: Tz::UTC,
        now,
    });
    Ok((!allowed).then_some("opted_out"))
}

fn suppress(delivery: &mut Delivery, reason: &str) {
    delivery.status = DeliveryStatus::Suppressed;
    delivery.reason = Some(reason.to_owned());
}

/// The deliveries of a notification to direct addresses (no preferences apply). With
/// `all` routing, one per recipient and channel; with `fallback`, per recipient the
/// first channel it has an address for (channels skipped on the way are recorded as
/// suppressed, so the timeline says why).
pub fn plan_deliveries(notification: &Notification, now: DateTime<Utc>) -> Vec<Delivery> {
    let mut planned = Vec::new();
    for (index, recipient) in notification.to.iter().enumerate() {
        planned.extend(plan_recipient(notification, index, recipient, &notification.channels, now));
    }
    planned
}

/// One direct recipient's deliveries over `channels`.
pub fn plan_recipient(
    notification: &Notification,
    index: usize,
    recipient: &Recipient,
    channels: &[Channel],
    now: DateTime<Utc>,
) -> Vec<Delivery> {
    let mut planned = Vec::new();
    for &channel in channels {
        let delivery = new_delivery(notification, index, recipient, channel, now);
        let last = ends_plan(notification, &delivery);
        planned.push(delivery);
        if last {
            break;
        }
    }
    planned
}

/// Under `fallback` routing a recipient's plan ends at the first delivery that will be
/// tried; the channels after it wait until it fails.
fn ends_plan(notification: &Notification, delivery: &Delivery) -> bool {
    notification.routing == Routing::Fallback && delivery.status == DeliveryStatus::Queued
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
        integration: None,
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

fn first_address(recipient: &Recipient) -> Address {
    Channel::ALL
        .into_iter()
        .find_map(|c| recipient.address_for(c))
        .unwrap_or_else(|| Address::User(recipient.user_id.clone().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WebhookTarget;
    use crate::domain::{EmailAddress, Priority, WebhookUrl};
    use chrono::Utc;

    fn notification(routing: Routing, to: Vec<Recipient>) -> Notification {
        Notification {
            to,
            routing,
            channels: vec![Channel::Webhook, Channel::Email],
            id: crate::domain::NotificationId::new(),
            app_id: "app".into(),
            status: crate::domain::NotificationStatus::Accepted,
            priority: Priority::Medium,
            category: None,
            content: crate::domain::Content::default(),
            expires_at: None,
            metadata: None,
            resent_from: None,
            template: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn email_only() -> Recipient {
        Recipient {
            email: Some(EmailAddress::parse("ann@example.com").unwrap()),
            ..Default::default()
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
        // After the first fails, the rest of its channels are planned the same way.
        let rest = plan_recipient(&n, 0, &n.to[0], &n.channels[1..], Utc::now());
        assert_eq!(
            rest.iter().map(|d| (d.recipient_index, d.channel, d.status)).collect::<Vec<_>>(),
            vec![(0, Channel::Email, DeliveryStatus::Queued)]
        );
    }

    #[test]
    fn planning_twice_gives_the_same_deliveries() {
        let n = notification(Routing::All, vec![both()]);
        let a: Vec<_> = plan_deliveries(&n, Utc::now()).into_iter().map(|d| d.id).collect();
        let b: Vec<_> = plan_deliveries(&n, Utc::now()).into_iter().map(|d| d.id).collect();
        assert_eq!(a, b);
    }
}
