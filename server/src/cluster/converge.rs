//! Every node converges on etcd: list every function, then watch from the
//! revision listed. Each changed function is handed to the registry, which
//! reads its newest record under the function's lock, pulls what it lacks
//! and swaps the pool; up to `CONCURRENCY` functions converge at once, so a
//! slow or unreachable one holds up no other.
//! A compacted or broken watch lists again; while etcd is away the node
//! keeps serving its last known state and tries again.

use super::etcd::Etcd;
use super::storage::ClusterStorage;
use crate::registry::{Converged, FunctionName, Registry};
use etcd_client::WatchOptions;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Wait between attempts while etcd is unreachable, and the first wait
/// before a version that could not be made ready is tried again.
const RETRY: Duration = Duration::from_millis(500);
/// The longest wait before trying a version that cannot be made ready again
/// (the wait doubles from `RETRY` on each failure).
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Functions converged at once.
const CONCURRENCY: usize = 8;

/// A function to converge again, and when.
#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    at: tokio::time::Instant,
}

/// Converges this node until `stop`.
pub(super) async fn run(
    etcd: Etcd,
    storage: Arc<ClusterStorage>,
    registry: Arc<Registry>,
    synced: tokio::sync::watch::Sender<super::SyncState>,
    stop: CancellationToken,
) {
    let converger = Arc::new(Converger {
        pending: Default::default(),
        running: Default::default(),
        slots: tokio::sync::Semaphore::new(CONCURRENCY),
        etcd,
        storage,
        registry,
    });
    while !stop.is_cancelled() {
        let revision = match converger.list().await {
            Ok(revision) => revision,
            Err(e) => {
                tracing::debug!(error = %e, "listing functions: etcd unreachable");
                synced.send_if_modified(|s| {
                    let first = *s == super::SyncState::Starting;
                    if first {
                        *s = super::SyncState::Unreachable;
                    }
                    first
                });
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        synced.send_replace(super::SyncState::Synced);
        let watched = tokio::time::Instant::now();
        converger.watch(revision, &stop).await;
        // A watch that ends at once (etcd going away, a compaction racing
        // the list) is not retried in a tight loop.
        if watched.elapsed() < RETRY {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

struct Converger {
    /// Functions to converge again (their version could not be made ready,
    /// or etcd could not be read), with their backoff.
    pending: parking_lot::Mutex<std::collections::BTreeMap<String, Retry>>,
    /// Functions being converged now, and whether they changed again since
    /// (then they are converged once more when done).
    running: parking_lot::Mutex<std::collections::HashMap<String, bool>>,
    /// Bounds the functions converged at once.
    slots: tokio::sync::Semaphore,
    etcd: Etcd,
    storage: Arc<ClusterStorage>,
    registry: Arc<Registry>,
}

impl Converger {
    /// Converges every function on etcd's list (and removes those gone
    /// from it); returns the revision listed.
    async fn list(&self) -> Result<i64, super::etcd::EtcdError> {
        let listing = self.etcd.list().await?;
        let revision = listing.revision;
        let mut seen = BTreeSet::new();
        let mut todo: Vec<(String, Option<crate::store::FunctionRecord>)> = Vec::new();
        for (name, current) in listing.functions {
            seen.insert(name.clone());
            match current {
                Ok(current) => {
                    if let Some(record) = &current.record {
                        self.storage.note(record);
                    }
                    todo.push((name, current.record));
                }
                // Left as it is here, and tried again later.
                Err(e) => {
                    tracing::warn!(function = %name, error = %e, "cannot read the function's record in etcd");
                    self.failed(name);
                }
            }
        }
        let local = self.registry.record_names();
        if !listing.initialized && !local.is_empty() {
            // An etcd no floe ever deployed to under this prefix (a new
            // one, another prefix, a lost one) does not delete what this
            // node serves.
            tracing::warn!(
                functions = local.len(),
                "etcd holds no floe state under this prefix; keeping this node's functions (deploy them again to publish them to the cluster)"
            );
        } else {
            todo.extend(
                local
                    .into_iter()
                    .filter(|name| !seen.contains(name))
                    .map(|name| (name, None)),
            );
        }
        // Several at once (pulls and compiles overlap), all done before the
        // node says it is synced. Failures are retried by the watch.
        futures::stream::iter(todo)
            .for_each_concurrent(CONCURRENCY, |(name, record)| async move {
                if self.apply(&name, record).await {
                    self.pending.lock().remove(&name);
                } else {
                    self.failed(name);
                }
            })
            .await;
        tracing::debug!(revision, "functions listed from etcd");
        Ok(revision)
    }

    /// Watches from after `revision` until the watch breaks or `stop`.
    async fn watch(self: &Arc<Self>, revision: i64, stop: &CancellationToken) {
        let Ok(mut client) = self.etcd.client().await else {
            return;
        };
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_progress_notify();
        let mut stream = match self
            .etcd
            .call(client.watch(self.etcd.functions_prefix(), Some(options)))
            .await
        {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "watching functions: etcd unreachable");
                return;
            }
        };
        let mut retry = tokio::time::interval(RETRY);
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = stream.message() => message,
                _ = retry.tick() => {
                    for name in self.due() {
                        self.pending.lock().remove(&name);
                        self.start(name);
                    }
                    continue;
                }
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => {
                    self.etcd.set_online(false);
                    tracing::debug!("the etcd watch ended; listing again");
                    return;
                }
            };
            self.etcd.set_online(true);
            if response.canceled() || response.compact_revision() > 0 {
                tracing::info!(
                    compacted = response.compact_revision(),
                    "the etcd watch was cancelled (history compacted); listing again"
                );
                return;
            }
            let names: BTreeSet<String> = response
                .events()
                .iter()
                .filter_map(|e| e.kv())
                .filter_map(|kv| kv.key_str().ok())
                .filter_map(|k| self.etcd.function_of(k).map(str::to_owned))
                .collect();
            for name in names {
                self.start(name);
            }
        }
    }

    /// Converges `name` on a task of its own (reading its newest record
    /// under its lock), unless that is under way already: then once more
    /// when it ends. At most `CONCURRENCY` run at once, so that one slow or
    /// unreachable function holds up no other.
    fn start(self: &Arc<Self>, name: String) {
        {
            let mut running = self.running.lock();
            if let Some(again) = running.get_mut(&name) {
                *again = true;
                return;
            }
            running.insert(name.clone(), false);
        }
        let this = self.clone();
        tokio::spawn(async move {
            let converged = {
                let _slot = this.slots.acquire().await;
                this.apply(&name, None).await
            };
            if converged {
                this.pending.lock().remove(&name);
            } else {
                this.failed(name.clone());
            }
            let again = this.running.lock().remove(&name).unwrap_or(false);
            if again {
                this.start(name);
            }
        });
    }

    /// Schedules `name` to be converged again, later each time it fails.
    fn failed(&self, name: String) {
        let mut pending = self.pending.lock();
        let failures = pending.get(&name).map_or(0, |r| r.failures) + 1;
        let wait = RETRY
            .saturating_mul(1 << failures.min(10).saturating_sub(1))
            .min(MAX_RETRY);
        pending.insert(
            name,
            Retry {
                failures,
                at: tokio::time::Instant::now() + wait,
            },
        );
    }

    /// The functions whose retry is due.
    fn due(&self) -> Vec<String> {
        let now = tokio::time::Instant::now();
        self.pending
            .lock()
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Converges one function; false when it must be tried again.
    async fn apply(&self, name: &str, record: Option<crate::store::FunctionRecord>) -> bool {
        let Ok(function) = FunctionName::new(name) else {
            tracing::warn!(function = %name, "etcd names a function with an invalid name; ignored");
            return true;
        };
        match self.registry.converge(&function, record).await {
            Ok(Converged::Unchanged | Converged::Applied | Converged::Removed) => true,
            Err(e) => {
                tracing::warn!(function = %name, error = %e, "cannot serve the version etcd names yet; the previous one keeps serving");
                false
            }
        }
    }
}
