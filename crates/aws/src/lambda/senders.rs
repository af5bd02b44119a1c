//! What only the functions that send carry (the `senders` feature): the default
//! providers (SES, SNS, the webhook provider with its signing secret from SSM), the SSM
//! vault for integrations' secrets, and the admin key the api function reads from SSM.

use super::{Backends, LambdaError, optional};
use crate::dynamo::DynamoStore;
use crate::ssm::SsmVault;
use herald_core::auth::Scope;
use herald_core::channels::{
    LogProvider, Providers, SesProvider, SnsSmsProvider, WebhookProvider, WebhookSecret,
};
use herald_core::domain::Channel;
use herald_core::integrations::SecretVault;
use herald_core::ports::{KeyStore, SettingStore};
use std::sync::Arc;
use std::time::Duration;

/// Integrations' secrets: one SecureString parameter each under
/// `HERALD_INTEGRATION_SECRETS_PATH`, cached for five minutes.
pub(super) fn secret_vault(config: &aws_config::SdkConfig) -> Arc<dyn SecretVault> {
    let path = optional("HERALD_INTEGRATION_SECRETS_PATH")
        .unwrap_or_else(|| "/herald/integrations".to_owned());
    Arc::new(SsmVault::new(aws_sdk_ssm::Client::new(config), &path, Duration::from_secs(300)))
}

/// The installation's providers: webhooks, SNS for SMS and, when `HERALD_EMAIL_FROM`
/// is set, SES for email.
pub(super) fn default_providers(
    config: &aws_config::SdkConfig,
    store: &Arc<DynamoStore>,
    log: Arc<LogProvider>,
) -> Result<Providers, LambdaError> {
    // The signing secret is read at the first webhook send, not at init: a cold
    // start of send-email or send-sms never needs it, and send-webhook's first
    // invocation pays for it once.
    let webhooks = LazyWebhooks {
        config: config.clone(),
        store: store.clone(),
        provider: tokio::sync::OnceCell::new(),
    };
    let mut providers = Providers::new(log).with(Channel::Webhook, Arc::new(webhooks)).with(
        Channel::Sms,
        Arc::new(SnsSmsProvider::new(
            aws_sdk_sns::Client::new(config),
            optional("HERALD_SMS_SENDER_ID"),
        )),
    );
    if let Some(from) = optional("HERALD_EMAIL_FROM") {
        let ses = SesProvider::new(
            aws_sdk_sesv2::Client::new(config),
            from,
            optional("HERALD_SES_CONFIGURATION_SET"),
        )
        .with_list_unsubscribe(optional("HERALD_LIST_UNSUBSCRIBE"));
        providers = providers.with(Channel::Email, Arc::new(ses));
    }
    Ok(providers)
}

impl Backends {
    /// Makes sure the admin key in the SSM SecureString parameter named by
    /// `HERALD_ADMIN_KEY_PARAMETER` exists for app `default` (the `api` function calls
    /// this at cold start, so a fresh stack can be used at once).
    pub async fn ensure_admin_key(&self) -> Result<(), LambdaError> {
        let Some(name) = optional("HERALD_ADMIN_KEY_PARAMETER") else {
            return Ok(());
        };
        let secret = secure_parameter(&self.config, &name).await?;
        let key = herald_core::auth::key_from_secret(
            &secret,
            "default",
            "admin",
            vec![Scope::Admin, Scope::Operator],
        );
        let store = self.store.as_ref();
        if store.api_key_by_hash(&key.record.hash).await?.is_none() {
            store.insert_api_key(&key.record).await?;
        }
        Ok(())
    }
}

async fn secure_parameter(
    config: &aws_config::SdkConfig,
    name: &str,
) -> Result<String, LambdaError> {
    aws_sdk_ssm::Client::new(config)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| LambdaError::Parameter {
            name: name.to_owned(),
            message: aws_sdk_ssm::error::DisplayErrorContext(e).to_string(),
        })?
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| LambdaError::Parameter { name: name.to_owned(), message: "no value".into() })
}

/// The installation's webhook provider, built when the first webhook is sent.
struct LazyWebhooks {
    config: aws_config::SdkConfig,
    store: Arc<DynamoStore>,
    provider: tokio::sync::OnceCell<WebhookProvider>,
}

#[async_trait::async_trait]
impl herald_core::channels::Provider for LazyWebhooks {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(
        &self,
        message: &herald_core::channels::OutboundMessage,
    ) -> Result<herald_core::channels::Receipt, herald_core::channels::ProviderError> {
        let provider = self
            .provider
            .get_or_try_init(|| async {
                let secret = webhook_secret(&self.config, self.store.as_ref()).await?;
                let policy = herald_core::net::policy().clone();
                Ok::<_, LambdaError>(WebhookProvider::new(secret, Duration::from_secs(10), policy))
            })
            .await
            // Not fatal for good: the next attempt reads the parameter again.
            .map_err(|e| herald_core::channels::ProviderError::transient(e.to_string()))?;
        herald_core::channels::Provider::send(provider, message).await
    }
}

/// The webhook signing secret: from an SSM SecureString parameter when one is named
/// (the template creates it), else generated once and kept in the table.
async fn webhook_secret(
    config: &aws_config::SdkConfig,
    store: &DynamoStore,
) -> Result<WebhookSecret, LambdaError> {
    let text = match optional("HERALD_WEBHOOK_SECRET_PARAMETER") {
        Some(name) => secure_parameter(config, &name).await?,
        None => store.init_setting("webhook_secret", &WebhookSecret::generate()).await?,
    };
    WebhookSecret::parse(&text).map_err(|message| LambdaError::BadSetting {
        setting: "HERALD_WEBHOOK_SECRET_PARAMETER",
        message,
    })
}
