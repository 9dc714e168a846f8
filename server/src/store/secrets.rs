//! The key that seals functions' secrets at rest, and sealing itself.
//!
//! A secret is stored in the function's record as `v1:` and the base64 of a
//! random 24-byte nonce followed by its XChaCha20-Poly1305 ciphertext, with
//! the function's and the secret's names as associated data (a sealed value
//! copied to another name or function does not open). The key is 32 bytes:
//! `[secrets] key` (64 hex digits, usually from `FLOE_SECRETS__KEY`; every
//! node of a cluster needs the same), or else the file `[secrets] key_file`
//! (by default `{data_dir}/secret.key`, created 0600 with a random key on
//! first start).

use super::{StoreError, fsio, io_err, set_owner_only};
use crate::config::{SealedSecret, SecretsConfig};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io;
use std::path::Path;

/// The default key file, in the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";
const PREFIX: &str = "v1:";
const NONCE: usize = 24;

/// A secret that does not open.
#[derive(Debug, thiserror::Error)]
#[error(
    "secret `{name}` of `{function}` does not open with this server's key (was it sealed with another `[secrets] key`?)"
)]
pub struct OpenError {
    /// The function.
    pub function: String,
    /// The secret's name.
    pub name: String,
}

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// The key `config` names: its `key`, or the key file (created with a
    /// random key when missing) under `data_dir` by default.
    pub fn load(config: &SecretsConfig, data_dir: &Path) -> Result<Self, StoreError> {
        if !config.key.is_empty() {
            return Self::from_hex(&config.key).map_err(|reason| StoreError::Io {
                what: "reading the key in",
                path: "[secrets] key".into(),
                source: io::Error::new(io::ErrorKind::InvalidData, reason),
            });
        }
        let path = if config.key_file.as_os_str().is_empty() {
            data_dir.join(SECRET_KEY_FILE)
        } else {
            config.key_file.clone()
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                set_owner_only(&path).map_err(io_err("restricting", &path))?;
                Self::from_hex(text.trim()).map_err(|reason| {
                    io_err("reading", &path)(io::Error::new(io::ErrorKind::InvalidData, reason))
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut raw = [0u8; 32];
                getrandom::fill(&mut raw).map_err(|e| {
                    io_err("generating a key for", &path)(io::Error::other(e.to_string()))
                })?;
                let tmp = path.parent().unwrap_or(data_dir).join("tmp");
                std::fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
                fsio::write_atomic(&tmp, &path, hex::encode(raw).as_bytes())
                    .map_err(io_err("writing", &path))?;
                set_owner_only(&path).map_err(io_err("restricting", &path))?;
                Ok(Self::from_bytes(&raw))
            }
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// A key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let raw = hex::decode(text.trim())
            .map_err(|_| "the key must be 64 hex digits (32 bytes)".to_owned())?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| "the key must be 64 hex digits (32 bytes)".to_owned())?;
        Ok(Self::from_bytes(&raw))
    }

    fn from_bytes(raw: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(raw.into()),
        }
    }

    /// Seals `value`, the secret `name` of `function`.
    pub fn seal(&self, function: &str, name: &str, value: &str) -> Result<SealedSecret, String> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| format!("no random nonce: {e}"))?;
        let aad = associated(function, name);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(SealedSecret(format!("{PREFIX}{}", STANDARD.encode(bytes))))
    }

    /// Opens the secret `name` of `function`.
    pub fn open(
        &self,
        function: &str,
        name: &str,
        sealed: &SealedSecret,
    ) -> Result<String, OpenError> {
        let error = || OpenError {
            function: function.to_owned(),
            name: name.to_owned(),
        };
        let bytes = sealed
            .0
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|b| b.len() > NONCE)
            .ok_or_else(error)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE);
        let aad = associated(function, name);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| error())?;
        String::from_utf8(plain).map_err(|_| error())
    }
}

fn associated(function: &str, name: &str) -> Vec<u8> {
    format!("floe-secret\0{function}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_under_their_names_and_key() {
        let key = SecretKey::from_hex(&"ab".repeat(32)).expect("key");
        let sealed = key.seal("f", "token", "s3cret value").expect("seal");
        assert!(sealed.0.starts_with("v1:"));
        assert!(!sealed.0.contains("s3cret"));
        assert_eq!(
            key.open("f", "token", &sealed).expect("open"),
            "s3cret value"
        );
        // Two seals of one value differ (random nonces).
        assert_ne!(
            key.seal("f", "token", "s3cret value").expect("seal"),
            sealed
        );
        assert!(key.open("f", "other", &sealed).is_err());
        assert!(key.open("g", "token", &sealed).is_err());
        let other = SecretKey::from_hex(&"cd".repeat(32)).expect("key");
        assert!(other.open("f", "token", &sealed).is_err());
        assert!(
            key.open("f", "token", &SealedSecret("v1:!!".into()))
                .is_err()
        );
        assert!(SecretKey::from_hex("abcd").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("floe-secret-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = SecretsConfig::default();
        let first = SecretKey::load(&config, &dir).expect("created");
        let sealed = first.seal("f", "k", "v").expect("seal");
        let again = SecretKey::load(&config, &dir).expect("loaded");
        assert_eq!(again.open("f", "k", &sealed).expect("open"), "v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_KEY_FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
