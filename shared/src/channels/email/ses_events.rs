//! SES event publishing records (delivery, bounce, complaint, open, click, …) read as
//! feedback on the delivery named by the message tag SES carries through.

use crate::channels::Feedback;
use crate::domain::{DeliveryId, DeliveryStatus};
use serde_json::Value;

/// The message tag that carries Herald's delivery id through SES events.
pub const DELIVERY_TAG: &str = "herald_delivery_id";

/// What one SES event says about a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesFeedback {
    pub delivery: DeliveryId,
    /// SES's message id.
    pub message_id: Option<String>,
    pub feedback: Feedback,
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str()
}

/// Reads one SES event (event publishing or notification format); `None` when it
/// names no delivery of Herald's.
pub fn feedback(ses: &Value) -> Option<SesFeedback> {
    let tag = ses.get("mail").and_then(|m| m.get("tags")).and_then(|t| t.get(DELIVERY_TAG));
    let delivery = DeliveryId::parse(tag?.get(0)?.as_str()?).ok()?;
    let kind = text(ses, &["eventType"]).or(text(ses, &["notificationType"])).unwrap_or("");
    let event = |name: &str, detail: Option<&str>| Feedback::Event {
        name: name.to_owned(),
        detail: detail.map(str::to_owned),
    };
    let feedback = match kind {
        "Delivery" => Feedback::Status { status: DeliveryStatus::Delivered, reason: None },
        "Bounce" if text(ses, &["bounce", "bounceType"]) == Some("Permanent") => {
            let reason = ses
                .pointer("/bounce/bouncedRecipients/0/diagnosticCode")
                .and_then(Value::as_str)
                .or_else(|| text(ses, &["bounce", "bounceSubType"]))
                .map(str::to_owned);
            Feedback::Status { status: DeliveryStatus::Bounced, reason }
        }
        "Bounce" => event("soft_bounce", text(ses, &["bounce", "bounceSubType"])),
        "Complaint" => event("complained", text(ses, &["complaint", "complaintFeedbackType"])),
        "Open" => event("opened", None),
        "Click" => event("clicked", text(ses, &["click", "link"])),
        "DeliveryDelay" => event("delayed", text(ses, &["deliveryDelay", "delayType"])),
        "Reject" | "RenderingFailure" => event(&kind.to_lowercase(), None),
        _ => Feedback::Ignore, // `Send` and future event types: nothing to record.
    };
    let message_id = text(ses, &["mail", "messageId"]).map(str::to_owned);
    Some(SesFeedback { delivery, message_id, feedback })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(body: Value) -> Value {
        let id = DeliveryId::new().to_string();
        let mut event = json!({"mail": {"messageId": "m-1", "tags": {DELIVERY_TAG: [id]}}});
        event.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        event
    }

    #[test]
    fn a_permanent_bounce_ends_the_delivery_with_the_diagnostic() {
        let bounce = event(json!({"eventType": "Bounce", "bounce": {"bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}));
        let read = feedback(&bounce).unwrap();
        assert_eq!(read.message_id.as_deref(), Some("m-1"));
        assert_eq!(
            read.feedback,
            Feedback::Status {
                status: DeliveryStatus::Bounced,
                reason: Some("smtp; 550 5.1.1 user unknown".into())
            }
        );
    }

    #[test]
    fn a_transient_bounce_and_a_click_are_events() {
        let soft = event(json!({"eventType": "Bounce",
            "bounce": {"bounceType": "Transient", "bounceSubType": "MailboxFull"}}));
        assert_eq!(
            feedback(&soft).unwrap().feedback,
            Feedback::Event { name: "soft_bounce".into(), detail: Some("MailboxFull".into()) }
        );
        let click =
            event(json!({"eventType": "Click", "click": {"link": "https://example.com/a"}}));
        assert!(matches!(feedback(&click).unwrap().feedback,
            Feedback::Event { name, .. } if name == "clicked"));
    }

    #[test]
    fn an_event_without_herald_s_tag_is_not_ours() {
        assert_eq!(feedback(&json!({"eventType": "Delivery", "mail": {"tags": {}}})), None);
        assert_eq!(
            feedback(&json!({"eventType": "Delivery", "mail": {"tags": {DELIVERY_TAG: ["x"]}}})),
            None
        );
    }
}
