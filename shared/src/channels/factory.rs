//! Builds providers from integrations, with the providers this binary was compiled
//! with: webhook and log everywhere, SMTP with the `smtp` feature (herald serve), SES
//! and SNS with `aws` (the Lambda functions, which call them with their own role).

use super::{LogProvider, Provider, WebhookProvider, WebhookSecret};
use crate::integrations::{Integration, ProviderFactory, SecretValues};
use crate::net::NetworkPolicy;
#[cfg(any(feature = "smtp", feature = "aws"))]
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub struct HostProviders {
    pub log: Arc<LogProvider>,
    pub webhook_timeout: Duration,
    pub networks: NetworkPolicy,
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
            #[cfg(feature = "aws")]
            aws: None,
        }
    }
}

#[cfg(any(feature = "smtp", feature = "aws"))]
fn text<'a>(config: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    config.get(name).and_then(Value::as_str)
}

fn secret<'a>(secrets: &'a SecretValues, name: &str) -> Result<&'a str, String> {
    secrets.get(name).map(String::as_str).ok_or_else(|| format!("secret '{name}' is not set"))
}

impl ProviderFactory for HostProviders {
    fn build(
        &self,
        integration: &Integration,
        secrets: &SecretValues,
    ) -> Result<Arc<dyn Provider>, String> {
        #[cfg(any(feature = "smtp", feature = "aws"))]
        let config = &integration.config;
        match integration.provider.as_str() {
            "log" => Ok(self.log.clone()),
            "webhook" => {
                let key = WebhookSecret::parse(secret(secrets, "signing_secret")?)?;
                let provider =
                    WebhookProvider::new(key, self.webhook_timeout, self.networks.clone());
                Ok(Arc::new(provider))
            }
            #[cfg(feature = "smtp")]
            "smtp" => smtp(config, secrets),
            #[cfg(feature = "aws")]
            "ses" => {
                let aws = self.aws.as_ref().ok_or("SES needs the AWS configuration")?;
                let from = text(config, "from").ok_or("config 'from' is not set")?;
                let set = text(config, "configuration_set").map(str::to_owned);
                Ok(Arc::new(super::SesProvider::new(aws_sdk_sesv2::Client::new(aws), from, set)))
            }
            #[cfg(feature = "aws")]
            "sns" => {
                let aws = self.aws.as_ref().ok_or("SNS needs the AWS configuration")?;
                let sender = text(config, "sender_id").map(str::to_owned);
                Ok(Arc::new(super::SnsSmsProvider::new(aws_sdk_sns::Client::new(aws), sender)))
            }
            other => Err(format!("provider '{other}' is not available on this host")),
        }
    }
}

#[cfg(feature = "smtp")]
fn smtp(config: &Map<String, Value>, secrets: &SecretValues) -> Result<Arc<dyn Provider>, String> {
    use super::{SmtpConfig, SmtpProvider, SmtpTls};
    let tls: SmtpTls = text(config, "tls").unwrap_or("starttls").parse()?;
    let default_port = match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let port = config.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
    let from = text(config, "from").ok_or("config 'from' is not set")?;
    let smtp = SmtpConfig {
        host: text(config, "host").ok_or("config 'host' is not set")?.to_owned(),
        port: port.unwrap_or(default_port),
        tls,
        username: text(config, "username").map(str::to_owned),
        password: secrets.get("password").cloned(),
        from: from.parse().map_err(|e| format!("config 'from': {e}"))?,
        list_unsubscribe: None,
        timeout: Duration::from_secs(30),
    };
    Ok(Arc::new(SmtpProvider::new(smtp)?))
}
