//! Where the registry keeps what must survive a restart: the boundary a
//! second backend (cluster mode: etcd for records, an OCI registry for
//! component bytes) implements.
//!
//! What is stored:
//! - one **record** per function ([`FunctionRecord`]): its settings, the
//!   versions kept (digest, size, how `init` runs, the hooks declared) and
//!   which version is active;
//! - **components** by digest: every version's uploaded bytes, and the
//!   snapshot a version serves when its `init` was snapshotted;
//! - **artifacts**: compiled code per component and engine build, a cache
//!   (a missing or damaged artifact is compiled again from its component).
//!
//! What is read at startup: every record ([`Storage::load`]), then the
//! artifact (or the component) of each active version.
//!
//! What changes atomically: a record is replaced whole, so a reader (or a
//! restart) sees the old record or the new one; [`Storage::commit`] writes a
//! version's components and artifact before the record that names them, so
//! no record ever names bytes that are not there. Files no record names
//! are removed by [`Storage::collect_garbage`], which the registry never
//! runs during a commit.

use super::{FunctionName, RegistryError};
use crate::store::{Digest, FunctionRecord, FunctionStore};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;

/// What one version adds to the store.
#[derive(Debug, Default)]
pub struct VersionFiles {
    /// Components by digest: the upload, and its snapshot if it has one.
    pub components: Vec<(Digest, Bytes)>,
    /// The compiled code of the component that serves, when it was
    /// compiled now.
    pub artifact: Option<(Digest, Vec<u8>)>,
}

/// The registry's durable state. Methods may block on I/O; implementations
/// run that off the async workers.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Every function's record, read once at startup.
    async fn load(&self) -> Result<Vec<FunctionRecord>, RegistryError>;
    /// Stores `files`, then `record` (which may name them).
    async fn commit(
        &self,
        record: &FunctionRecord,
        files: VersionFiles,
        engine: &str,
    ) -> Result<(), RegistryError>;
    /// Replaces a function's record (settings, active version).
    async fn write_record(&self, record: &FunctionRecord) -> Result<(), RegistryError>;
    /// Removes a function's record (its files go at the next collection).
    async fn delete(&self, name: &FunctionName) -> Result<(), RegistryError>;
    /// Whether component `digest` is stored (with `size` bytes, if given).
    async fn has_component(&self, digest: Digest, size: Option<u64>)
    -> Result<bool, RegistryError>;
    /// Component `digest`'s bytes, checked against the digest.
    async fn component(&self, digest: Digest) -> Result<Vec<u8>, RegistryError>;
    /// The compiled code of `digest` for engine build `engine`, when a
    /// sound copy is stored.
    async fn artifact(
        &self,
        engine: &str,
        digest: Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError>;
    /// Stores the compiled code of `digest` for engine build `engine`.
    async fn put_artifact(
        &self,
        engine: &str,
        digest: Digest,
        artifact: Vec<u8>,
    ) -> Result<(), RegistryError>;
    /// Removes what no digest in `live` names, and artifacts of other engine
    /// builds. Returns how many files went.
    async fn collect_garbage(
        &self,
        live: HashSet<Digest>,
        engine: &str,
    ) -> Result<usize, RegistryError>;
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(RegistryError::Internal)
}

/// The single-node backend: files under the data directory
/// ([`FunctionStore`]).
#[derive(Debug, Clone)]
pub struct LocalStorage(pub Arc<FunctionStore>);

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn load(&self) -> Result<Vec<FunctionRecord>, RegistryError> {
        let store = self.0.clone();
        Ok(blocking(move || store.load_records()).await??)
    }

    async fn commit(
        &self,
        record: &FunctionRecord,
        files: VersionFiles,
        engine: &str,
    ) -> Result<(), RegistryError> {
        let (store, record, engine) = (self.0.clone(), record.clone(), engine.to_owned());
        Ok(blocking(move || {
            for (digest, bytes) in &files.components {
                store.put_blob(digest, bytes)?;
            }
            if let Some((digest, artifact)) = &files.artifact {
                store.put_artifact(&engine, digest, artifact)?;
            }
            store.write_record(&record)
        })
        .await??)
    }

    async fn write_record(&self, record: &FunctionRecord) -> Result<(), RegistryError> {
        let (store, record) = (self.0.clone(), record.clone());
        Ok(blocking(move || store.write_record(&record)).await??)
    }

    async fn delete(&self, name: &FunctionName) -> Result<(), RegistryError> {
        let (store, name) = (self.0.clone(), name.clone());
        Ok(blocking(move || store.delete_record(name.as_str())).await??)
    }

    async fn has_component(
        &self,
        digest: Digest,
        size: Option<u64>,
    ) -> Result<bool, RegistryError> {
        let store = self.0.clone();
        blocking(move || store.has_blob(&digest, size)).await
    }

    async fn component(&self, digest: Digest) -> Result<Vec<u8>, RegistryError> {
        let store = self.0.clone();
        Ok(blocking(move || store.read_blob(&digest)).await??)
    }

    async fn artifact(
        &self,
        engine: &str,
        digest: Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let (store, engine) = (self.0.clone(), engine.to_owned());
        blocking(move || store.read_artifact(&engine, &digest)).await
    }

    async fn put_artifact(
        &self,
        engine: &str,
        digest: Digest,
        artifact: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let (store, engine) = (self.0.clone(), engine.to_owned());
        Ok(blocking(move || store.put_artifact(&engine, &digest, &artifact)).await??)
    }

    async fn collect_garbage(
        &self,
        live: HashSet<Digest>,
        engine: &str,
    ) -> Result<usize, RegistryError> {
        let (store, engine) = (self.0.clone(), engine.to_owned());
        Ok(blocking(move || store.collect_garbage(&live, &engine)).await??)
    }
}
