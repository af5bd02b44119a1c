//! Applies a provider's report about a delivery after the send (an SES event, an SMS
//! status callback) to the store: a final status moves the delivery, an event joins
//! its timeline. Every host's feedback path (track on AWS, the callback routes) ends
//! here.

use crate::channels::Feedback;
use crate::domain::DeliveryId;
use crate::ports::{DeliveryOutcome, Store, StoreResult};

/// Applies `feedback` from `provider` to delivery `id`; false if the delivery is gone.
pub async fn apply(
    store: &dyn Store,
    id: &DeliveryId,
    provider: &str,
    provider_message_id: Option<String>,
    feedback: Feedback,
) -> StoreResult<bool> {
    match feedback {
        Feedback::Status { status, reason } => {
            let outcome = DeliveryOutcome {
                provider: Some(provider.to_owned()),
                provider_message_id,
                reason,
                attempts: 0,
                integration: None,
            };
            if !store.transition_delivery(id, status, outcome).await? {
                // Already final (a bounce after delivery): the timeline still says so.
                return store.record_delivery_event(id, status.as_str(), None).await;
            }
            Ok(true)
        }
        Feedback::Event { name, detail } => {
            store.record_delivery_event(id, &name, detail.as_deref()).await
        }
        Feedback::Ignore => Ok(true),
    }
}
