//! Serving what another node committed (cluster mode): the cluster backend
//! hands the registry each function's newest record, and the registry makes
//! this node serve it, as a local deploy would, under the name's lock.

use super::{FunctionName, Registry, RegistryError};
use crate::store::FunctionRecord;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What [`Registry::converge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converged {
    /// This node already served the record.
    Unchanged,
    /// The function's version, settings or versions kept changed here.
    Applied,
    /// The function is gone here too.
    Removed,
}

impl Registry {
    /// Makes this node serve `record`, the newest record of `name` (`None`:
    /// the function was deleted). The active version's component (or its
    /// compiled code) comes through the storage, which fetches what this
    /// node lacks; until it is ready the previous version keeps serving, and
    /// when it cannot be made ready the error says why (the caller tries
    /// again later).
    pub async fn converge(
        self: &Arc<Self>,
        name: &FunctionName,
        record: Option<FunctionRecord>,
    ) -> Result<Converged, RegistryError> {
        let this = self.clone();
        let name = name.clone();
        super::run_to_completion(async move { this.converge_now(&name, record).await }).await
    }

    async fn converge_now(
        &self,
        name: &FunctionName,
        record: Option<FunctionRecord>,
    ) -> Result<Converged, RegistryError> {
        let name_lock = self.name_lock(name);
        let _guard = name_lock.lock().await;
        // Read again under the lock: a change this node committed while the
        // caller's copy was on its way is newer than that copy.
        let record = match self.storage.current(name).await? {
            Some(current) => current.record,
            None => record,
        };
        let local = self.record(name);
        let Some(record) = record else {
            if local.is_none() {
                return Ok(Converged::Unchanged);
            }
            self.storage.forget(name).await?;
            self.records.lock().remove(name.as_str());
            self.unavailable.lock().remove(name.as_str());
            let old = self.active.write().remove(name.as_str());
            if let Some(old) = old {
                old.pool.retire();
            }
            self.touched();
            self.metrics.remove(name.as_str());
            self.changes.fetch_add(1, Ordering::Relaxed);
            self.collect_garbage().await?;
            tracing::info!(function = %name, "deleted (by another node)");
            return Ok(Converged::Removed);
        };
        let version =
            record
                .active_version()
                .cloned()
                .ok_or_else(|| RegistryError::Unavailable {
                    name: name.to_string(),
                    reason: format!("active version {} is not in its record", record.active),
                })?;
        let current = self.get(name.as_str());
        let serving = current
            .as_ref()
            .is_some_and(|f| f.version == version.version && f.digest == version.digest);
        if serving && local.as_ref() == Some(&record) {
            return Ok(Converged::Unchanged);
        }
        let mut settings = record.settings.clone();
        for change in settings.clamp_to(&self.config.limits) {
            tracing::warn!(function = %name, "{change}");
        }
        if let Some(current) = current.filter(|_| serving)
            && current.pool.settings() == &settings
        {
            // The same version with the same settings: only the versions
            // kept changed. The pool serves on.
            self.storage.remember(&record).await?;
            self.records.lock().insert(name.to_string(), record);
            return Ok(Converged::Applied);
        }
        let runnable = match self.get(name.as_str()).filter(|_| serving) {
            Some(current)
                if local.as_ref().map(|r| &r.settings.preinit) == Some(&settings.preinit) =>
            {
                current.runnable.clone()
            }
            _ => match self.runnable(&version).await {
                Ok(runnable) => runnable,
                Err(e) => {
                    // A function this node does not serve at all answers
                    // 503 (not 404) until it can.
                    if self.get(name.as_str()).is_none() {
                        self.unavailable
                            .lock()
                            .insert(name.to_string(), e.to_string());
                    }
                    return Err(e);
                }
            },
        };
        self.storage.remember(&record).await?;
        self.records.lock().insert(name.to_string(), record);
        self.activate(name, version.version, version.digest, runnable, settings);
        self.changes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(function = %name, version = version.version, digest = %version.digest, "serving the version another node deployed");
        Ok(Converged::Applied)
    }

    /// Every function this node holds a record of, by name.
    pub fn record_names(&self) -> Vec<String> {
        self.records.lock().keys().cloned().collect()
    }

    /// The version of each function this node serves.
    pub fn serving(&self) -> std::collections::BTreeMap<String, u64> {
        self.active
            .read()
            .iter()
            .map(|(name, f)| (name.to_string(), f.version))
            .collect()
    }
}
