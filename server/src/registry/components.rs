//! Compiled components: kept in memory (bounded by compiled size), loaded
//! from their stored artifact, or compiled again from the stored component.

use super::{Registry, RegistryError};
use crate::pool::Runnable;
use crate::preinit;
use crate::store::{Digest, VersionRecord};
use bytes::Bytes;
use std::sync::Arc;
use wasmtime::component::Component;

/// Compiled components kept in memory beyond the active ones, in bytes of
/// compiled code (for quick rollbacks and redeploys).
pub const COMPONENT_CACHE_BYTES: u64 = 512 * 1024 * 1024;

impl Registry {
    /// The compiled component with `digest`: from memory, from its verified
    /// artifact, or compiled again from the stored component. Also returns
    /// the compile time when it had to compile.
    pub(super) async fn component(
        &self,
        digest: Digest,
    ) -> Result<(Component, u64), RegistryError> {
        if let Some((component, _)) = self.components.get(&digest) {
            return Ok((component, 0));
        }
        let key = self.engine.artifact_key();
        if let Some(artifact) = self.storage.artifact(key, digest).await? {
            match self.engine.load_artifact(&artifact) {
                Ok(component) => {
                    self.cache(digest, &component, artifact.len());
                    return Ok((component, 0));
                }
                Err(e) => {
                    tracing::warn!(%digest, error = %format!("{e:#}"), "stored artifact does not load; recompiling")
                }
            }
        }
        let bytes =
            self.storage
                .component(digest)
                .await
                .map_err(|e| RegistryError::Unavailable {
                    name: digest.to_string(),
                    reason: e.to_string(),
                })?;
        let compiled = self.engine.compile(Bytes::from(bytes)).await?;
        let artifact = compiled.artifact;
        let len = artifact.len();
        self.storage.put_artifact(key, digest, artifact).await?;
        tracing::info!(%digest, compile_ms = compiled.compile_time.as_millis() as u64, "recompiled from the stored component");
        self.cache(digest, &compiled.component, len);
        Ok((compiled.component, compiled.compile_time.as_millis() as u64))
    }

    pub(super) fn cache(&self, digest: Digest, component: &Component, size: usize) {
        let weight = u32::try_from(size).unwrap_or(u32::MAX);
        self.components.insert(digest, (component.clone(), weight));
    }

    /// What `version`'s instances run: its serving component, prepared,
    /// with the hooks it declared and its way of running `init`.
    pub(super) async fn runnable(
        &self,
        version: &VersionRecord,
    ) -> Result<Arc<Runnable>, RegistryError> {
        let (component, _) = self.component(version.serving()).await?;
        let mut prepared = self.engine.prepare(&component)?;
        prepared.hooks.restrict(version.declared_hooks.as_deref());
        Ok(Arc::new(preinit::runnable(&version.preinit, prepared)))
    }
}
