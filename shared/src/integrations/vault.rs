//! Where integration secrets rest. The stored integration holds only what its vault
//! returned when sealing: on the local backend the AES-256-GCM ciphertext itself, on
//! AWS a reference to an SSM SecureString parameter (see `aws::ssm`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;
use std::path::Path;

/// An integration's secret fields, by name.
pub type SecretValues = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The sealed value cannot be opened with this installation's key (the key
    /// changed, or the record was altered).
    #[error("the integration's secrets cannot be opened: {0}")]
    Unreadable(String),
    #[error("secret storage is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait SecretVault: Send + Sync + 'static {
    /// Keeps `secrets` for integration `id` of `app`; returns what the integration
    /// record stores in their place.
    async fn seal(&self, app: &str, id: &str, secrets: &SecretValues)
    -> Result<String, VaultError>;
    async fn open(&self, app: &str, id: &str, sealed: &str) -> Result<SecretValues, VaultError>;
    /// Forgets the secrets of a deleted integration.
    async fn remove(&self, app: &str, id: &str) -> Result<(), VaultError>;
}

/// AES-256-GCM under one installation key. Each seal draws a fresh 96-bit nonce, and
/// the app and integration ids are authenticated with the ciphertext, so a sealed
/// value copied into another integration does not open.
pub struct LocalVault {
    cipher: Aes256Gcm,
}

/// The file, in the data directory, that holds a generated key.
pub const KEY_FILE: &str = "master.key";
const NONCE_BYTES: usize = 12;

impl LocalVault {
    pub fn new(key: [u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }

    /// The key from `HERALD_MASTER_KEY` (base64 of 32 bytes) if given; otherwise the
    /// key file in `data_dir`, created with mode 0600 on first start.
    pub fn from_env_or_file(master_key: Option<&str>, data_dir: &Path) -> Result<Self, String> {
        if let Some(text) = master_key {
            return Ok(Self::new(
                decode_key(text.trim()).map_err(|e| format!("HERALD_MASTER_KEY {e}"))?,
            ));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = decode_key(text.trim()).map_err(|e| format!("{} {e}", path.display()))?;
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                write_private(&path, &STANDARD.encode(key))
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                Ok(Self::new(key))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn associated_data(app: &str, id: &str) -> Vec<u8> {
        [app.as_bytes(), b"\0", id.as_bytes()].concat()
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], String> {
    STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| "must be base64 of 32 bytes (e.g. `openssl rand -base64 32`)".into())
}

/// Creates `path` readable by its owner only, failing if it exists (two first starts
/// at once must not each write a different key).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[async_trait]
impl SecretVault for LocalVault {
    async fn seal(
        &self,
        app: &str,
        id: &str,
        secrets: &SecretValues,
    ) -> Result<String, VaultError> {
        let plain =
            serde_json::to_vec(secrets).map_err(|e| VaultError::Unavailable(e.to_string()))?;
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let aad = Self::associated_data(app, id);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| VaultError::Unavailable("encryption failed".into()))?;
        Ok(format!("aes256gcm:{}", STANDARD.encode([nonce.as_slice(), &sealed].concat())))
    }

    async fn open(&self, app: &str, id: &str, sealed: &str) -> Result<SecretValues, VaultError> {
        let unreadable = |why: &str| VaultError::Unreadable(why.to_owned());
        let bytes = sealed
            .strip_prefix("aes256gcm:")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE_BYTES)
            .ok_or_else(|| unreadable("not sealed by this backend"))?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let aad = Self::associated_data(app, id);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| unreadable("wrong key or altered record"))?;
        serde_json::from_slice(&plain).map_err(|_| unreadable("not a secret map"))
    }

    async fn remove(&self, _app: &str, _id: &str) -> Result<(), VaultError> {
        Ok(()) // The ciphertext goes with the record.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> SecretValues {
        SecretValues::from([("password".to_owned(), "correct horse".to_owned())])
    }

    #[tokio::test]
    async fn sealed_secrets_open_only_for_their_own_integration_and_key() {
        let vault = LocalVault::new([7; 32]);
        let sealed = vault.seal("app", "int_1", &secrets()).await.unwrap();
        assert!(!sealed.contains("correct horse"));
        assert_eq!(vault.open("app", "int_1", &sealed).await.unwrap(), secrets());
        assert!(vault.open("app", "int_2", &sealed).await.is_err());
        assert!(vault.open("other", "int_1", &sealed).await.is_err());
        assert!(LocalVault::new([8; 32]).open("app", "int_1", &sealed).await.is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        LocalVault::from_env_or_file(None, dir.path()).unwrap();
        let first = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        LocalVault::from_env_or_file(None, dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(LocalVault::from_env_or_file(Some("short"), dir.path()).is_err());
    }
}
