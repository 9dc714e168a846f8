//! `[secrets]`: the key that seals functions' secrets at rest, and the
//! sealed form kept in function records.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[secrets]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The key, 64 hex digits (32 bytes), usually from the environment
    /// (`FLOE_SECRETS__KEY`); set, it wins over `key_file`. Every node of a
    /// cluster needs the same key.
    pub key: String,
    /// Where the key is kept otherwise (empty: `{data_dir}/secret.key`,
    /// created 0600 with a random key on first start).
    pub key_file: PathBuf,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("key", &if self.key.is_empty() { "" } else { "(set)" })
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// A secret as stored: sealed with the server's key (`v1:` and base64).
/// Never shown by the API, never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(pub String);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}
