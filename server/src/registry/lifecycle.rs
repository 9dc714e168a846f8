//! Changes to a deployed function: rollback to a kept version, new
//! settings (redoing `init` when its mode changes), deletion.

use super::deploy::Serving;
use super::{
    Deployed, FunctionInfo, FunctionName, MAX_CONFLICTS, Registry, RegistryError, Revision,
    run_to_completion,
};
use crate::config::FunctionSettings;
use crate::preinit;
use crate::store::FunctionRecord;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Registry {
    /// Makes `version` (or, when `None`, the newest version older than the
    /// active one) the active version of `name`.
    pub async fn rollback(
        self: &Arc<Self>,
        name: &FunctionName,
        version: Option<u64>,
    ) -> Result<Deployed, RegistryError> {
        let this = self.clone();
        let name = name.clone();
        run_to_completion(async move {
            this.retrying(&name, || this.rollback_now(&name, version))
                .await
        })
        .await
    }

    async fn rollback_now(
        &self,
        name: &FunctionName,
        version: Option<u64>,
    ) -> Result<Deployed, RegistryError> {
        let name = name.clone();
        let name_lock = self.name_lock(&name);
        let _guard = name_lock.lock().await;
        let (record, revision) = self.base(&name).await?;
        let mut record = record.ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let target = match version {
            Some(v) => record.version(v).cloned(),
            None => record
                .versions
                .iter()
                .filter(|v| v.version < record.active)
                .max_by_key(|v| v.version)
                .cloned(),
        }
        .ok_or_else(|| RegistryError::NoSuchVersion {
            name: name.to_string(),
            which: version.map_or_else(|| format!("before {}", record.active), |v| v.to_string()),
        })?;
        let runnable = self.runnable(&target).await?;
        record.active = target.version;
        let record = self.persist(record, revision).await?;
        let settings = record.settings.clone();
        self.records.lock().insert(name.to_string(), record);
        self.activate(&name, target.version, target.digest, runnable, settings);
        tracing::info!(function = %name, version = target.version, "rolled back");
        Ok(Deployed::new(&name, &target, 0, false))
    }

    /// Changes settings of `name`. New instances use them at once; busy
    /// instances finish their request under the old ones.
    pub async fn configure(
        self: &Arc<Self>,
        name: &FunctionName,
        settings: &[(String, String)],
    ) -> Result<FunctionInfo, RegistryError> {
        let this = self.clone();
        let (name, settings) = (name.clone(), settings.to_vec());
        run_to_completion(async move {
            this.retrying(&name, || this.configure_now(&name, &settings))
                .await
        })
        .await
    }

    async fn configure_now(
        &self,
        name: &FunctionName,
        settings: &[(String, String)],
    ) -> Result<FunctionInfo, RegistryError> {
        let name_lock = self.name_lock(name);
        let _guard = name_lock.lock().await;
        let (record, revision) = self.base(name).await?;
        let record = record.ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let mut new_settings = record.settings.clone();
        self.apply_settings(name, &mut new_settings, settings)?;
        new_settings.validate(&self.config.limits)?;
        new_settings.validate_events(&self.config.events)?;
        if let Some(current) = self.get(name.as_str()) {
            self.check_concurrency(&current.runnable.prepared, &new_settings, settings)?;
        }
        if new_settings != record.settings {
            self.reconfigure_locked(name, record, revision, new_settings)
                .await?;
        }
        self.info(name, false)
    }

    pub(super) async fn reconfigure_locked(
        &self,
        name: &FunctionName,
        mut record: FunctionRecord,
        revision: Option<Revision>,
        settings: FunctionSettings,
    ) -> Result<(), RegistryError> {
        let rebuild = settings.preinit != record.settings.preinit;
        record.settings = settings.clone();
        let Some(current) = self
            .get(name.as_str())
            .filter(|f| f.version == record.active)
        else {
            if rebuild && self.get(name.as_str()).is_some() {
                // This node has not caught up with the active version yet
                // and cannot redo its `init`: another node can, or a retry.
                return Err(RegistryError::Conflict(name.to_string()));
            }
            let record = self.persist(record, revision).await?;
            self.records.lock().insert(name.to_string(), record);
            return Ok(());
        };
        if rebuild && current.runnable.prepared.hooks.init.is_some() {
            // `init` runs another way now: redo it for the active version,
            // from the stored component.
            let active = record
                .active_version()
                .cloned()
                .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
            let digest = active.digest;
            let bytes = Bytes::from(self.storage.component(digest).await.map_err(|e| {
                RegistryError::Unavailable {
                    name: name.to_string(),
                    reason: e.to_string(),
                }
            })?);
            let (component, _) = self.component(digest).await?;
            let mut prepared = self.engine.prepare(&component)?;
            prepared.hooks.restrict(active.declared_hooks.as_deref());
            let initialized = preinit::initialize(
                &self.engine,
                name.as_arc(),
                active.version,
                &bytes,
                prepared,
                preinit::InitSettings {
                    settings: &settings,
                    config: self.function_config(name, &settings),
                },
                active.declared_hooks.as_deref(),
            )
            .await?;
            if let Some(v) = record
                .versions
                .iter_mut()
                .find(|v| v.version == active.version)
            {
                v.preinit = initialized.record;
                // Its bytes are published again with the new serving
                // component.
                v.oci = None;
            }
            let serving = match initialized.snapshot {
                Some(snapshot) => Serving::Snapshot(snapshot),
                None => Serving::Original {
                    component,
                    artifact: None,
                },
            };
            let staged = serving.stage(digest, &bytes);
            self.commit(name, record, &staged, revision).await?;
            self.activate(
                name,
                active.version,
                digest,
                Arc::new(initialized.runnable),
                settings,
            );
            self.collect_garbage().await?;
        } else {
            let record = self.persist(record, revision).await?;
            self.records.lock().insert(name.to_string(), record);
            self.activate(
                name,
                current.version,
                current.digest,
                current.runnable.clone(),
                settings,
            );
        }
        tracing::info!(function = %name, "settings changed");
        Ok(())
    }

    /// Deletes `name`, its versions and its stored code.
    pub async fn delete(self: &Arc<Self>, name: &FunctionName) -> Result<(), RegistryError> {
        let this = self.clone();
        let name = name.clone();
        run_to_completion(async move { this.retrying(&name, || this.delete_now(&name)).await })
            .await
    }

    async fn delete_now(&self, name: &FunctionName) -> Result<(), RegistryError> {
        let name_lock = self.name_lock(name);
        let _guard = name_lock.lock().await;
        let (record, revision) = self.base(name).await?;
        if record.is_none() {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        self.storage.delete(name, revision).await?;
        self.records.lock().remove(name.as_str());
        self.unavailable.lock().remove(name.as_str());
        let old = self.active.write().remove(name.as_str());
        if let Some(old) = old {
            old.pool.retire();
        }
        self.touched();
        self.metrics.remove(name.as_str());
        self.collect_garbage().await?;
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    async fn persist(
        &self,
        record: FunctionRecord,
        revision: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        let record = self.storage.write_record(record, revision).await?;
        self.changes.fetch_add(1, Ordering::Relaxed);
        Ok(record)
    }

    /// Runs `operation` again (it reads the function afresh each time) when
    /// another node changed the function between its read and its write.
    async fn retrying<T, F: Future<Output = Result<T, RegistryError>>>(
        &self,
        name: &FunctionName,
        mut operation: impl FnMut() -> F,
    ) -> Result<T, RegistryError> {
        let mut attempt = 0;
        loop {
            match operation().await {
                Err(RegistryError::Conflict(_)) if attempt < MAX_CONFLICTS => {
                    attempt += 1;
                    tracing::debug!(function = %name, attempt, "another node changed the function; retrying");
                }
                other => return other,
            }
        }
    }
}
