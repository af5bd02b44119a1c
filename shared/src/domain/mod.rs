//! Herald's domain types: plain data with validation, no I/O.

pub mod contact;
pub mod ids;
pub mod notification;
pub mod preferences;
pub mod status;
pub mod user;

pub use contact::{EmailAddress, PhoneNumber, WebhookUrl};
pub use ids::{DeliveryId, NotificationId};
pub use notification::{
    Address, Channel, Content, Delivery, DeliveryUser, EmailContent, Notification, Priority,
    Recipient, Routing, SmsContent, TemplateUse, TimelineEvent,
};
pub use preferences::{CategorySettings, Preferences};
pub use status::{DeliveryStatus, NotificationStatus};
pub use user::{Group, User, UserProfile, check_caller_id, validate_user};
