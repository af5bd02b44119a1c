//! What one delivery says: for a delivery to a user, the notification's template
//! rendered again in the user's locale and time zone, with their signed unsubscribe
//! link; for a direct address, the content rendered at intake.

use crate::domain::{Content, Delivery, Notification};
use crate::ports::{StoreError, TemplateStore};
use crate::templates::{Recipient, Renderer, TemplateVersion, render_channels};
use crate::unsubscribe::{KEY_VERSION, Unsubscribe, UnsubscribeLinks};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The template variable that holds the unsubscribe link (empty for a direct address).
pub const UNSUBSCRIBE_URL: &str = "unsubscribe_url";

/// Versions kept in memory; they never change, so the cache is only ever cleared.
const CACHED_VERSIONS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PersonalizeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The content cannot be made for this recipient: the delivery fails for good.
    #[error("{0}")]
    Content(String),
}

pub struct Personalized {
    pub content: Content,
    /// The one-click unsubscribe URL, for the List-Unsubscribe header.
    pub unsubscribe_url: Option<String>,
}

pub struct Personalizer {
    templates: Arc<dyn TemplateStore>,
    renderer: Arc<Renderer>,
    pub links: Arc<UnsubscribeLinks>,
    versions: RwLock<HashMap<String, Arc<TemplateVersion>>>,
}

impl Personalizer {
    pub fn new(
        templates: Arc<dyn TemplateStore>,
        renderer: Arc<Renderer>,
        links: Arc<UnsubscribeLinks>,
    ) -> Self {
        Self { templates, renderer, links, versions: RwLock::default() }
    }

    pub async fn personalize(
        &self,
        notification: &Notification,
        delivery: &Delivery,
    ) -> Result<Personalized, PersonalizeError> {
        let Some(user) = &delivery.user else {
            return Ok(Personalized {
                content: notification.content.clone(),
                unsubscribe_url: None,
            });
        };
        // A delivery planned before links carried the user's incarnation gets none.
        let since = user.since.filter(|_| user.unsubscribable);
        let unsubscribe_url =
            if let (true, Some(since)) = (delivery.channel.one_click_unsubscribe(), since) {
                let what = Unsubscribe {
                    app_id: notification.app_id.clone(),
                    user_id: user.id.clone(),
                    category: notification.category.clone(),
                    since,
                    key_version: KEY_VERSION,
                };
                Some(self.links.url(&what).await?)
            } else {
                None
            };
        let Some(used) = &notification.template else {
            return Ok(Personalized { content: notification.content.clone(), unsubscribe_url });
        };
        let version = self.version(&notification.app_id, &used.id, used.version).await?;
        let mut data = used.data.as_object().cloned().unwrap_or_default();
        if !data.contains_key(UNSUBSCRIBE_URL) {
            let url = unsubscribe_url.clone().unwrap_or_default();
            data.insert(UNSUBSCRIBE_URL.to_owned(), url.into());
        }
        let zone = user.time_zone.as_deref().or(used.time_zone.as_deref());
        let recipient = Recipient {
            locale: user.locale.clone().or_else(|| used.requested_locale.clone()),
            time_zone: zone.and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC),
        };
        let data = serde_json::Value::Object(data);
        let channel = Some(delivery.channel);
        let (_, parts) = render_channels(&self.renderer, &version, &recipient, &data, channel)
            .map_err(|e| PersonalizeError::Content(format!("template: {e}")))?;
        Ok(Personalized { content: parts.into(), unsubscribe_url })
    }

    async fn version(
        &self,
        app_id: &str,
        id: &str,
        number: u32,
    ) -> Result<Arc<TemplateVersion>, PersonalizeError> {
        let key = format!("{app_id}/{id}@{number}");
        if let Some(found) = self.versions.read().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let version =
            self.templates.template_version(app_id, id, number).await?.ok_or_else(|| {
                PersonalizeError::Content(format!("template '{id}' version {number} was deleted"))
            })?;
        let version = Arc::new(version);
        let mut cache = self.versions.write().expect("not poisoned");
        if cache.len() >= CACHED_VERSIONS {
            cache.clear();
        }
        cache.insert(key, version.clone());
        Ok(version)
    }
}
