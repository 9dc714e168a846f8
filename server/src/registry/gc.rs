//! What is kept: the newest versions of each function (and always the
//! active one), and only the stored files some kept version names.

use super::{Registry, RegistryError};
use crate::store::{Digest, FunctionRecord};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

impl Registry {
    /// Removes stored files that no record names. Returns how many.
    pub(super) async fn collect_garbage(&self) -> Result<usize, RegistryError> {
        self.changes.fetch_add(1, Ordering::Relaxed);
        let _gc = self.gc.write().await;
        let live: HashSet<Digest> = self
            .records
            .lock()
            .values()
            .flat_map(|r| {
                r.versions
                    .iter()
                    .flat_map(|v| [Some(v.digest), v.preinit.snapshot])
            })
            .flatten()
            .collect();
        // A component whose files go must be compiled (and stored) again if
        // it is deployed again.
        for (digest, _) in self.components.iter() {
            if !live.contains(&*digest) {
                self.components.invalidate(&*digest);
            }
        }
        self.storage
            .collect_garbage(live, self.engine.artifact_key())
            .await
    }
}

/// Drops the oldest versions beyond `keep`, never the active one. Returns
/// whether any were dropped.
pub(super) fn prune_versions(record: &mut FunctionRecord, keep: usize) -> bool {
    let before = record.versions.len();
    while record.versions.len() > keep {
        let Some(pos) = record
            .versions
            .iter()
            .position(|v| v.version != record.active)
        else {
            break;
        };
        record.versions.remove(pos);
    }
    record.versions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FunctionSettings;
    use crate::store::VersionRecord;

    fn record(versions: &[u64], active: u64) -> FunctionRecord {
        FunctionRecord {
            name: "f".into(),
            active,
            next_version: versions.iter().max().map_or(1, |m| m + 1),
            settings: FunctionSettings::default(),
            versions: versions
                .iter()
                .map(|&v| VersionRecord {
                    version: v,
                    digest: Digest::of(&v.to_le_bytes()),
                    size: 1,
                    created_at_ms: 0,
                    compile_ms: 0,
                    preinit: Default::default(),
                    declared_hooks: None,
                    oci: None,
                })
                .collect(),
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_active_version() {
        let mut r = record(&[1, 2, 3, 4], 4);
        assert!(prune_versions(&mut r, 2));
        assert_eq!(
            r.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [3, 4]
        );

        // After a rollback to 1, version 1 survives pruning.
        let mut r = record(&[1, 2, 3, 4], 1);
        assert!(prune_versions(&mut r, 2));
        assert_eq!(
            r.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 4]
        );

        let mut r = record(&[1], 1);
        assert!(!prune_versions(&mut r, 1));
    }
}
