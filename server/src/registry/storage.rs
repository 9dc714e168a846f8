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
//!
//! Where other nodes write too (cluster mode), [`Storage::current`] gives the
//! newest record with its [`Revision`], and a write given that revision
//! fails with [`RegistryError::Conflict`] when the record changed since: the
//! registry reads again and retries. What another node committed reaches
//! this node's own copy through [`Storage::remember`] and
//! [`Storage::forget`].

use super::{FunctionName, RegistryError};
use crate::store::{Digest, FunctionRecord, FunctionStore, VersionRecord};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;

/// What one version adds to the store.
#[derive(Debug, Default, Clone)]
pub struct VersionFiles {
    /// Components by digest: the upload, and its snapshot if it has one.
    pub components: Vec<(Digest, Bytes)>,
    /// The compiled code of the component that serves, when it was
    /// compiled now.
    pub artifact: Option<(Digest, Bytes)>,
}

/// A record's revision in a store that other nodes write too: what a
/// conditional write compares against (0: the record does not exist).
pub type Revision = i64;

/// The newest record of a function where other nodes write too.
#[derive(Debug, Clone)]
pub struct Current {
    /// The record; `None`: no such function.
    pub record: Option<FunctionRecord>,
    /// Its revision.
    pub revision: Revision,
}

/// The registry's durable state. Methods may block on I/O; implementations
/// run that off the async workers.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Every function's record this node holds, read once at startup.
    async fn load(&self) -> Result<Vec<FunctionRecord>, RegistryError>;
    /// The newest record of `name` where other nodes write too; `None`
    /// where this node is the only writer (its own record is the newest).
    async fn current(&self, _name: &FunctionName) -> Result<Option<Current>, RegistryError> {
        Ok(None)
    }
    /// Stores `files`, then `record` (which may name them). With
    /// `expected`, only if the record is still at that revision. Returns
    /// the record as stored (a backend may add where it put the bytes).
    async fn commit(
        &self,
        record: FunctionRecord,
        files: VersionFiles,
        engine: &str,
        expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError>;
    /// Replaces a function's record (settings, active version), with
    /// `expected` as in [`Storage::commit`]. Returns the record as stored.
    async fn write_record(
        &self,
        record: FunctionRecord,
        expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError>;
    /// Removes a function's record (its files go at the next collection),
    /// with `expected` as in [`Storage::commit`].
    async fn delete(
        &self,
        name: &FunctionName,
        expected: Option<Revision>,
    ) -> Result<(), RegistryError>;
    /// Makes `version`'s bytes (in `files`, or stored before) available to
    /// other nodes ahead of its commit, saying where in `version`; nothing
    /// where no other node reads them. Slow (network): called before the
    /// commit and outside the garbage collector's lock.
    async fn publish(
        &self,
        _name: &FunctionName,
        _version: &mut VersionRecord,
        _files: &VersionFiles,
        _engine: &str,
    ) -> Result<(), RegistryError> {
        Ok(())
    }
    /// Keeps this node's copy of a record another node committed.
    async fn remember(&self, record: &FunctionRecord) -> Result<(), RegistryError>;
    /// Drops this node's copy of a record another node deleted.
    async fn forget(&self, name: &FunctionName) -> Result<(), RegistryError>;
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
/// ([`FunctionStore`]). The cluster backend keeps its node's copy here too.
#[derive(Debug, Clone)]
pub struct LocalStorage(pub Arc<FunctionStore>);

impl LocalStorage {
    /// Writes a version's components and compiled code (before any record
    /// names them).
    pub async fn put_files(&self, files: VersionFiles, engine: &str) -> Result<(), RegistryError> {
        let (store, engine) = (self.0.clone(), engine.to_owned());
        Ok(blocking(move || {
            for (digest, bytes) in &files.components {
                store.put_blob(digest, bytes)?;
            }
            if let Some((digest, artifact)) = &files.artifact {
                store.put_artifact(&engine, digest, artifact)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await??)
    }
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn load(&self) -> Result<Vec<FunctionRecord>, RegistryError> {
        let store = self.0.clone();
        Ok(blocking(move || store.load_records()).await??)
    }

    async fn commit(
        &self,
        record: FunctionRecord,
        files: VersionFiles,
        engine: &str,
        _expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        self.put_files(files, engine).await?;
        self.remember(&record).await?;
        Ok(record)
    }

    async fn write_record(
        &self,
        record: FunctionRecord,
        _expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        self.remember(&record).await?;
        Ok(record)
    }

    async fn delete(
        &self,
        name: &FunctionName,
        _expected: Option<Revision>,
    ) -> Result<(), RegistryError> {
        self.forget(name).await
    }

    async fn remember(&self, record: &FunctionRecord) -> Result<(), RegistryError> {
        let (store, record) = (self.0.clone(), record.clone());
        Ok(blocking(move || store.write_record(&record)).await??)
    }

    async fn forget(&self, name: &FunctionName) -> Result<(), RegistryError> {
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
