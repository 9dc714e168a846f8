//! What the store keeps about each function: its versions, which one is
//! active, and its settings. One JSON file per function.

use super::Digest;
use crate::config::FunctionSettings;
use serde::{Deserialize, Serialize};

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
    /// The active version's record.
    pub fn active_version(&self) -> Option<&VersionRecord> {
        self.version(self.active)
    }

    /// The record of version `n`.
    pub fn version(&self, n: u64) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == n)
    }
}
