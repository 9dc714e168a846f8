//! Functions' variables and secrets: secrets are sealed as they are set
//! and opened when a pool is built, into what `wasi:config/store` reads.

use super::{FunctionName, Registry, RegistryError};
use crate::config::{FunctionSettings, SettingsError};
use crate::store::StoreError;
use std::sync::Arc;
use wasmtime_wasi_config::WasiConfigVariables;

impl Registry {
    /// Applies settings given as text to `settings`: `secret.KEY` values are
    /// sealed with the server's key, the others go to
    /// [`FunctionSettings::set`].
    pub(super) fn apply_settings(
        &self,
        name: &FunctionName,
        settings: &mut FunctionSettings,
        pairs: &[(String, String)],
    ) -> Result<(), RegistryError> {
        for (key, value) in pairs {
            let Some(secret) = key.strip_prefix("secret.") else {
                settings.set(key, value)?;
                continue;
            };
            let max = self.config.limits.max_variable_bytes;
            if value.len() as u64 > max.0 {
                return Err(SettingsError::Invalid {
                    key: key.clone(),
                    reason: format!(
                        "{} bytes is more than {max} (limits.max_variable_bytes)",
                        value.len()
                    ),
                }
                .into());
            }
            let sealed = self
                .secrets
                .seal(name.as_str(), secret, value)
                .map_err(|reason| {
                    RegistryError::Store(StoreError::Io {
                        what: "sealing a secret of",
                        path: name.as_str().into(),
                        source: std::io::Error::other(reason),
                    })
                })?;
            settings.set_secret(secret, sealed)?;
        }
        Ok(())
    }

    /// `function`'s secret `key`, opened (`None`: no such function or
    /// secret, or it does not open under this server's key).
    pub fn secret(&self, function: &str, key: &str) -> Option<String> {
        let sealed = {
            let records = self.records.lock();
            records
                .iter()
                .find(|(name, _)| name.as_str() == function)
                .and_then(|(_, r)| r.settings.secrets.get(key).cloned())?
        };
        self.secrets.open(function, key, &sealed).ok()
    }

    /// What `wasi:config/store` reads in `name`'s instances: its variables
    /// and its secrets, opened. A secret that does not open (sealed under
    /// another key) is left out and logged by name.
    pub(super) fn function_config(
        &self,
        name: &FunctionName,
        settings: &FunctionSettings,
    ) -> Arc<WasiConfigVariables> {
        let mut config: WasiConfigVariables = settings
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (key, sealed) in &settings.secrets {
            match self.secrets.open(name.as_str(), key, sealed) {
                Ok(value) => {
                    config.insert(key.as_str(), value);
                }
                Err(e) => tracing::error!(function = %name, secret = %key, "{e}"),
            }
        }
        Arc::new(config)
    }
}
