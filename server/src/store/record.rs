//! What the store keeps about each function: its versions, which one is
//! active, and its settings. One JSON file per function.

use super::Digest;
use crate::config::FunctionSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One deployed version of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Counts up per function, from 1.
    pub version: u64,
    /// Digest of the component bytes.
    pub digest: Digest,
    /// Size of the component in bytes.
    pub size: u64,
    /// When it was deployed (milliseconds since the Unix epoch).
    pub created_at_ms: u64,
    /// How long the first compilation took.
    pub compile_ms: u64,
    /// How its instances are initialized (and the snapshot that serves).
    #[serde(default)]
    pub preinit: PreinitRecord,
    /// The hooks the component says it implements (its `floe:hooks`
    /// section); `None`: every exported hook is called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_hooks: Option<Vec<String>>,
    /// Where a cluster's OCI registry holds this version's bytes (cluster
    /// mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciRecord>,
}

/// Where a version's bytes are in a cluster's OCI registry. Every digest here
/// is checked against what is pulled: the registry is not trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciRecord {
    /// The repository, `host:port/prefix/name`.
    pub repository: String,
    /// The manifest of the uploaded component (a Wasm OCI artifact).
    pub manifest: String,
    /// The manifest of the snapshot that serves, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_manifest: Option<String>,
    /// The compiled code of the serving component, per engine
    /// compatibility key: the digest of the blob in `repository`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, Digest>,
}

impl VersionRecord {
    /// The digest of the component that serves this version: its snapshot,
    /// or the uploaded component.
    pub fn serving(&self) -> Digest {
        self.preinit.snapshot.unwrap_or(self.digest)
    }
}

/// How a function's instances are initialized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitMode {
    /// The function has no `init`.
    #[default]
    None,
    /// `init` ran once at deploy; instances start from its snapshot.
    Snapshot,
    /// `init` runs in every instance before its first request.
    Instance,
}

impl InitMode {
    /// The mode's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            InitMode::None => "none",
            InitMode::Snapshot => "snapshot",
            InitMode::Instance => "instance",
        }
    }
}

/// What the store keeps about a version's initialization.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreinitRecord {
    /// How instances are initialized.
    pub mode: InitMode,
    /// The digest of the snapshotted component, which is what serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Digest>,
    /// How long `init` took at deploy, in milliseconds.
    #[serde(default)]
    pub init_ms: u64,
    /// Why floe did not snapshot, when a snapshot was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Everything the store keeps about one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// The function's name.
    pub name: String,
    /// The version requests go to.
    pub active: u64,
    /// The number the next deploy gets.
    pub next_version: u64,
    /// Settings of the function (all versions share them).
    pub settings: FunctionSettings,
    /// Versions kept, oldest first.
    pub versions: Vec<VersionRecord>,
}

impl FunctionRecord {
    /// A function with no version yet.
    pub fn new(name: &str, settings: &FunctionSettings) -> Self {
        Self {
            name: name.to_owned(),
            active: 0,
            next_version: 1,
            settings: settings.clone(),
            versions: Vec::new(),
        }
    }

    /// Adds `version` (numbered `next_version`) and makes it active, with
    /// `settings`.
    pub fn push_active(&mut self, version: VersionRecord, settings: &FunctionSettings) {
        self.next_version = version.version + 1;
        self.active = version.version;
        self.settings = settings.clone();
        self.versions.push(version);
    }

    /// The active version's record.
    pub fn active_version(&self) -> Option<&VersionRecord> {
        self.version(self.active)
    }

    /// The record of version `n`.
    pub fn version(&self, n: u64) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == n)
    }
}
