//! Integration secrets on AWS: one SSM SecureString parameter per integration under
//! the stack's path (`{path}/{app}/{id}`), so IAM can grant reading them by path to the
//! functions that send and to no other. The integration record keeps only the
//! parameter's name and version; a new version is a new cache key, so a rotated secret
//! is used at once while an unchanged one is read once per TTL per instance.

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::DisplayErrorContext;
use aws_sdk_ssm::types::ParameterType;
use herald_core::integrations::{SecretValues, SecretVault, VaultError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct SsmVault {
    client: Client,
    /// Without a trailing slash, e.g. `/herald/prod/integrations`.
    path: String,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, SecretValues)>>,
}

impl SsmVault {
    pub fn new(client: Client, path: &str, ttl: Duration) -> Self {
        let path = format!("/{}", path.trim_matches('/'));
        Self { client, path, ttl, cache: Mutex::default() }
    }

    /// Parameter names allow `a-zA-Z0-9_.-/`: app ids outside that are hex-encoded.
    fn name(&self, app: &str, id: &str) -> String {
        let plain = app.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        let app = if plain { app.to_owned() } else { format!("x{}", hex::encode(app)) };
        format!("{}/{app}/{id}", self.path)
    }
}

fn unavailable(e: impl std::error::Error) -> VaultError {
    VaultError::Unavailable(format!("SSM: {}", DisplayErrorContext(e)))
}

#[async_trait]
impl SecretVault for SsmVault {
    async fn seal(
        &self,
        app: &str,
        id: &str,
        secrets: &SecretValues,
    ) -> Result<String, VaultError> {
        let name = self.name(app, id);
        let value =
            serde_json::to_string(secrets).map_err(|e| VaultError::Unavailable(e.to_string()))?;
        let output = self
            .client
            .put_parameter()
            .name(&name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(format!("ssm:{name}#{}", output.version))
    }

    async fn open(&self, app: &str, id: &str, sealed: &str) -> Result<SecretValues, VaultError> {
        let name = self.name(app, id);
        let version = sealed
            .strip_prefix("ssm:")
            .and_then(|rest| rest.strip_prefix(name.as_str()))
            .and_then(|rest| rest.strip_prefix('#'))
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| VaultError::Unreadable("not a parameter of this stack".into()))?;
        if let Some((read_at, values)) = self.cache.lock().expect("secret cache").get(sealed)
            && read_at.elapsed() < self.ttl
        {
            return Ok(values.clone());
        }
        let output = self
            .client
            .get_parameter()
            .name(format!("{name}:{version}"))
            .with_decryption(true)
            .send()
            .await
            .map_err(unavailable)?;
        let text = output.parameter.and_then(|p| p.value).unwrap_or_default();
        let values: SecretValues = serde_json::from_str(&text)
            .map_err(|_| VaultError::Unreadable("the parameter is not a secret map".into()))?;
        let mut cache = self.cache.lock().expect("secret cache");
        cache.insert(sealed.to_owned(), (Instant::now(), values.clone()));
        Ok(values)
    }

    async fn remove(&self, app: &str, id: &str) -> Result<(), VaultError> {
        match self.client.delete_parameter().name(self.name(app, id)).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}
