//! Builds providers from integrations: the log provider for any channel, the rest by
//! the integration's channel unit, with what this binary was compiled with (SMTP with
//! the `smtp` feature, SES and SNS with `aws`) and what the host gives them.

use super::{LogProvider, Provider};
use crate::integrations::{Integration, ProviderFactory, SecretValues};
use crate::net::NetworkPolicy;
use std::sync::Arc;
use std::time::Duration;

pub struct HostProviders {
    pub log: Arc<LogProvider>,
    pub webhook_timeout: Duration,
    pub networks: NetworkPolicy,
    /// Where vendors reach Herald's callbacks (Twilio's status callback), if public.
    pub public_url: Option<String>,
    /// Vendors' access tokens, shared by every provider this host builds.
    pub tokens: super::chat::tokens::TokenCache,
    /// The SDK configuration SES and SNS clients are built from (AWS hosts only).
    #[cfg(feature = "aws")]
    pub aws: Option<aws_config::SdkConfig>,
}

impl HostProviders {
    pub fn new(log: Arc<LogProvider>, webhook_timeout: Duration, networks: NetworkPolicy) -> Self {
        Self {
            log,
            webhook_timeout,
            networks,
            public_url: None,
            tokens: Default::default(),
            #[cfg(feature = "aws")]
            aws: None,
        }
    }
}

impl ProviderFactory for HostProviders {
    fn build(
        &self,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        if integration.provider == "log" {
            return Ok(self.log.clone());
        }
        integration.channel.build_provider(self, integration, secrets)
    }
}
