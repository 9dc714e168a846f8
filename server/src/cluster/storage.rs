//! The registry's storage in cluster mode: records in etcd (compare-and-swap
//! on the function's revision), component bytes and compiled code in the
//! OCI registry, and this node's copy of both in its local store, which is
//! what it serves from and restarts from when etcd is away.
//!
//! A change is published before it is committed: the version's component
//! (and snapshot, and compiled code) are pushed to the registry, then one
//! etcd transaction writes the record. A registry or etcd failure leaves no
//! record naming missing bytes. What this node lacks (a version another node
//! deployed) is pulled on demand, by digest, and checked against the digest
//! etcd recorded.

use super::etcd::{Etcd, EtcdError, Written};
use super::oci::{ComponentMeta, Oci, OciError};
use crate::registry::{
    Current, FunctionName, LocalStorage, RegistryError, Revision, Storage, VersionFiles,
};
use crate::store::{Digest, FunctionRecord, OciRecord, StoreError, VersionRecord};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};

/// Where a digest can be pulled from.
#[derive(Debug, Clone, Default)]
struct Location {
    repository: String,
    /// Its size, where etcd records it (an upload): a pull stops past it.
    size: Option<u64>,
    /// Compiled code of this (serving) component, per engine key.
    artifacts: std::collections::BTreeMap<String, Digest>,
}

/// Pulls and pushes made, for `/metrics`-style figures and the tests.
#[derive(Debug, Default)]
pub struct Transfers {
    /// Blobs pulled from the registry.
    pub pulled: std::sync::atomic::AtomicU64,
    /// Compiled code pulled (and loaded instead of compiling).
    pub pulled_compiled: std::sync::atomic::AtomicU64,
}

/// Records in etcd, bytes in an OCI registry, a local copy of both.
#[derive(Debug)]
pub struct ClusterStorage {
    local: LocalStorage,
    etcd: Etcd,
    oci: Oci,
    locations: Mutex<HashMap<Digest, Location>>,
    component_limit: u64,
    artifact_limit: u64,
    share_compiled: bool,
    transfers: Transfers,
}

impl From<EtcdError> for RegistryError {
    fn from(e: EtcdError) -> Self {
        RegistryError::Cluster(e.to_string())
    }
}

impl From<OciError> for RegistryError {
    fn from(e: OciError) -> Self {
        RegistryError::Cluster(e.to_string())
    }
}

impl ClusterStorage {
    /// Storage over `local`, `etcd` and `oci`. Pulled components may hold
    /// up to `component_limit` bytes, compiled code `artifact_limit`; with
    /// `share_compiled`, compiled code is pushed and pulled too.
    pub fn new(
        local: LocalStorage,
        etcd: Etcd,
        oci: Oci,
        (component_limit, artifact_limit): (u64, u64),
        share_compiled: bool,
    ) -> Self {
        Self {
            local,
            etcd,
            oci,
            locations: Mutex::default(),
            component_limit,
            artifact_limit,
            share_compiled,
            transfers: Transfers::default(),
        }
    }

    /// Pulls made so far.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// Learns where `record`'s bytes are.
    pub fn note(&self, record: &FunctionRecord) {
        let mut locations = self.locations.lock();
        for version in &record.versions {
            let Some(oci) = &version.oci else { continue };
            let at = |artifacts, size| Location {
                repository: oci.repository.clone(),
                size,
                artifacts,
            };
            locations
                .entry(version.digest)
                .or_insert_with(|| at(Default::default(), Some(version.size)));
            // The compiled code is of the component that serves.
            let size = (version.serving() == version.digest).then_some(version.size);
            locations.insert(version.serving(), at(oci.artifacts.clone(), size));
        }
    }

    /// Pushes what `version` needs to the registry (its component, its
    /// snapshot, this node's compiled code of what serves), from `files` or
    /// this node's store, and says where in the version's record.
    async fn push_version(
        &self,
        name: &str,
        version: &mut VersionRecord,
        files: &VersionFiles,
        engine: &str,
    ) -> Result<(), RegistryError> {
        let repository = self.oci.repository(name);
        let bytes_of = async |digest: Digest| -> Result<Bytes, RegistryError> {
            if let Some((_, bytes)) = files.components.iter().find(|(d, _)| *d == digest) {
                return Ok(bytes.clone());
            }
            Ok(Bytes::from(self.local.component(digest).await?))
        };
        let component = bytes_of(version.digest).await?;
        let meta = ComponentMeta {
            name,
            ..ComponentMeta::default()
        };
        let manifest = self
            .oci
            .push_component(&repository, &component, &meta, None)
            .await?
            .manifest;
        let serving = version.serving();
        let snapshot_manifest = match version.preinit.snapshot {
            Some(snapshot) => {
                let bytes = bytes_of(snapshot).await?;
                Some(
                    self.oci
                        .push_component(&repository, &bytes, &meta, None)
                        .await?
                        .manifest,
                )
            }
            None => None,
        };
        let code = match &files.artifact {
            _ if !self.share_compiled => None,
            Some((digest, code)) if *digest == serving => Some(code.clone()),
            _ => self.local.artifact(engine, serving).await?.map(Bytes::from),
        };
        let mut artifacts = std::collections::BTreeMap::new();
        if let Some(code) = code {
            let digest = self
                .oci
                .push_compiled(&repository, &code, engine, serving)
                .await?;
            artifacts.insert(engine.to_owned(), digest);
        }
        version.oci = Some(OciRecord {
            repository,
            manifest,
            snapshot_manifest,
            artifacts,
        });
        Ok(())
    }

    async fn write(
        &self,
        mut record: FunctionRecord,
        files: VersionFiles,
        engine: &str,
        expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        let Some(expected) = expected else {
            return Err(RegistryError::Cluster(
                "a change without the revision it was read at".into(),
            ));
        };
        self.local.put_files(files.clone(), engine).await?;
        let name = record.name.clone();
        for version in &mut record.versions {
            if version.oci.is_none() {
                self.push_version(&name, version, &files, engine).await?;
            }
        }
        match self.etcd.write(&record, expected).await? {
            Written::Done(_) => {}
            Written::Conflict => return Err(RegistryError::Conflict(name)),
        }
        self.note(&record);
        // etcd has it: this node's copy follows (and would be caught up by
        // the watch if this write failed).
        if let Err(e) = self.local.remember(&record).await {
            tracing::error!(function = %name, error = %e, "keeping the local copy of a committed record failed");
        }
        Ok(record)
    }

    async fn pull_component(&self, digest: Digest) -> Result<Vec<u8>, RegistryError> {
        let location = self.locations.lock().get(&digest).cloned();
        let Some(location) = location else {
            return Err(StoreError::Missing(digest).into());
        };
        let limit = location.size.unwrap_or(self.component_limit);
        let bytes = self
            .oci
            .pull_blob(&location.repository, digest, limit)
            .await?;
        self.transfers
            .pulled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.local
            .put_files(
                VersionFiles {
                    components: vec![(digest, bytes.clone())],
                    artifact: None,
                },
                "",
            )
            .await?;
        tracing::info!(%digest, size = bytes.len(), repository = %location.repository, "component pulled from the registry");
        Ok(bytes.to_vec())
    }
}

#[async_trait::async_trait]
impl Storage for ClusterStorage {
    async fn load(&self) -> Result<Vec<FunctionRecord>, RegistryError> {
        let records = self.local.load().await?;
        for record in &records {
            self.note(record);
        }
        Ok(records)
    }

    async fn current(&self, name: &FunctionName) -> Result<Option<Current>, RegistryError> {
        let current = self.etcd.function(name.as_str()).await?;
        if let Some(record) = &current.record {
            self.note(record);
        }
        Ok(Some(current))
    }

    async fn commit(
        &self,
        record: FunctionRecord,
        files: VersionFiles,
        engine: &str,
        expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        self.write(record, files, engine, expected).await
    }

    async fn write_record(
        &self,
        record: FunctionRecord,
        expected: Option<Revision>,
    ) -> Result<FunctionRecord, RegistryError> {
        // Every version is published already, unless its serving component
        // changed (new settings redid `init`): then this pushes it.
        self.write(record, VersionFiles::default(), "", expected)
            .await
    }

    async fn delete(
        &self,
        name: &FunctionName,
        expected: Option<Revision>,
    ) -> Result<(), RegistryError> {
        let expected = expected.unwrap_or(0);
        match self.etcd.delete(name.as_str(), expected).await? {
            Written::Done(_) => {}
            Written::Conflict => return Err(RegistryError::Conflict(name.to_string())),
        }
        if let Err(e) = self.local.forget(name).await {
            tracing::error!(function = %name, error = %e, "dropping the local copy of a deleted record failed");
        }
        Ok(())
    }

    async fn publish(
        &self,
        name: &FunctionName,
        version: &mut VersionRecord,
        files: &VersionFiles,
        engine: &str,
    ) -> Result<(), RegistryError> {
        if version.oci.is_none() {
            self.push_version(name.as_str(), version, files, engine)
                .await?;
        }
        Ok(())
    }

    async fn remember(&self, record: &FunctionRecord) -> Result<(), RegistryError> {
        self.note(record);
        self.local.remember(record).await
    }

    async fn forget(&self, name: &FunctionName) -> Result<(), RegistryError> {
        self.local.forget(name).await
    }

    async fn has_component(
        &self,
        digest: Digest,
        size: Option<u64>,
    ) -> Result<bool, RegistryError> {
        self.local.has_component(digest, size).await
    }

    async fn component(&self, digest: Digest) -> Result<Vec<u8>, RegistryError> {
        if self.local.has_component(digest, None).await? {
            match self.local.component(digest).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "local copy unusable; pulling it again")
                }
            }
        }
        self.pull_component(digest).await
    }

    async fn artifact(
        &self,
        engine: &str,
        digest: Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        if let Some(code) = self.local.artifact(engine, digest).await? {
            return Ok(Some(code));
        }
        if !self.share_compiled {
            return Ok(None);
        }
        let location = self.locations.lock().get(&digest).cloned();
        let Some((repository, code_digest)) = location.and_then(|l| {
            let code = l.artifacts.get(engine).copied()?;
            Some((l.repository, code))
        }) else {
            return Ok(None);
        };
        // Compiled code made by another node of this engine build: loaded
        // only after it hashes to the digest etcd recorded.
        match self
            .oci
            .pull_blob(&repository, code_digest, self.artifact_limit)
            .await
        {
            Ok(code) => {
                self.transfers
                    .pulled_compiled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.local
                    .put_artifact(engine, digest, code.to_vec())
                    .await?;
                Ok(Some(code.to_vec()))
            }
            Err(e) => {
                tracing::warn!(%digest, error = %e, "compiled code could not be pulled; compiling here");
                Ok(None)
            }
        }
    }

    async fn put_artifact(
        &self,
        engine: &str,
        digest: Digest,
        artifact: Vec<u8>,
    ) -> Result<(), RegistryError> {
        self.local.put_artifact(engine, digest, artifact).await
    }

    async fn collect_garbage(
        &self,
        live: HashSet<Digest>,
        engine: &str,
    ) -> Result<usize, RegistryError> {
        self.local.collect_garbage(live, engine).await
    }
}
