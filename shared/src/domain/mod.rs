//! Herald's domain types: plain data with validation, no I/O.

pub mod contact;
pub mod ids;
pub mod notification;
pub mod preferences;
pub mod status;
pub mod user;

// Each channel's types live in its unit (`channels/<name>`); they are named here too
// because every layer speaks of them.
pub use crate::channels::{
    Address, Channel, Content, EmailAddress, EmailContent, PhoneNumber, Recipient, SmsContent,
    WebhookData, WebhookTarget,
};
pub use contact::WebhookUrl;
pub use ids::{DeliveryId, NotificationId, app_tag};
pub use notification::{
    Delivery, DeliveryUser, Notification, Priority, Routing, TemplateUse, TimelineEvent,
};
pub use preferences::{CategorySettings, Preferences};
pub use status::{DeliveryStatus, NotificationStatus};
pub use user::{Group, User, UserProfile, check_caller_id, validate_user};
