//! The registry: which functions exist, which version of each is active, and
//! every control-plane operation on them.
//!
//! Requests look functions up with [`Registry::get`] (a read lock and an
//! `Arc` clone). Deploys, rollbacks, reconfigurations and deletes of one name
//! run one at a time under that name's lock, and each ends by swapping in a
//! new [`Function`] in one step, so a request sees either the old version or
//! the new one, never a mix. The old version's pool is retired: its idle
//! instances stop at once and busy ones when their request ends.
//!
//! Durability: a deploy writes the component, its compiled artifact and then
//! the function's record to the [`Storage`] before it answers. At startup
//! [`Registry::open`] loads every record, reuses each verified artifact
//! (recompiling from the stored component only when the artifact is
//! missing, corrupt or made by another engine build), and removes what no
//! record names.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the registry, startup loading, lookups, activation, shutdown |
//! | `storage.rs` | the durable-state boundary and its single-node backend |
//! | `components.rs` | compiled components: memory cache, artifacts, recompiles |
//! | `deploy.rs` | deploys, and redeploys of bytes settled before |
//! | `lifecycle.rs` | rollback, configure, delete |
//! | `views.rs` | what the API and `/metrics` show |
//! | `gc.rs` | version pruning and garbage collection |
//! | `remote.rs` | serving what another node committed (cluster mode) |

mod components;
mod deploy;
mod error;
mod gc;
mod lifecycle;
mod name;
mod remote;
mod storage;
mod variables;
mod views;

pub use components::COMPONENT_CACHE_BYTES;
pub use deploy::Deployed;
pub use error::RegistryError;
pub use name::{FunctionName, InvalidName, MAX_NAME_LEN};
pub use remote::Converged;
pub use storage::{Current, LocalStorage, Revision, Storage, VersionFiles};
pub use views::FunctionInfo;

use crate::config::{Config, FunctionSettings};
use crate::engine::FloeEngine;
use crate::metrics::{FunctionMetrics, Metrics};
use crate::pool::{InstanceBudget, Pool, PoolContext, Runnable};
use crate::store::{Digest, FunctionRecord, SecretKey};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use tokio_util::task::TaskTracker;
use wasmtime::component::Component;

/// The active deployment of a function: what its requests are served with.
pub struct Function {
    /// The function's name.
    pub name: FunctionName,
    /// The active version.
    pub version: u64,
    /// The active version's component digest.
    pub digest: Digest,
    /// Instances of the active version.
    pub pool: Arc<Pool>,
    /// The function's metrics.
    pub metrics: Arc<FunctionMetrics>,
    /// `X-Forwarded-Prefix` for path-routed requests: `/{name}`.
    pub forwarded_prefix: http::HeaderValue,
    /// What the active version's instances run.
    pub runnable: Arc<Runnable>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// Functions, their versions and their pools.
pub struct Registry {
    config: Arc<Config>,
    engine: Arc<FloeEngine>,
    storage: Arc<dyn Storage>,
    ctx: Arc<PoolContext>,
    metrics: Arc<Metrics>,
    active: RwLock<HashMap<Arc<str>, Arc<Function>>>,
    records: Mutex<BTreeMap<String, FunctionRecord>>,
    unavailable: Mutex<HashMap<String, String>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    gc: tokio::sync::RwLock<()>,
    components: moka::sync::Cache<Digest, (Component, u32)>,
    /// New functions being deployed (reserved under `max_functions`).
    creating: AtomicUsize,
    /// Deploys, reconfigurations, rollbacks and deletions so far: the
    /// autoscaler hands memory back after them too.
    changes: AtomicU64,
    /// Bumped whenever what serves changes (a swap or a removal).
    activity: tokio::sync::watch::Sender<u64>,
    /// Seals and opens functions' secrets.
    secrets: SecretKey,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry over `storage`: loads every function, then
    /// removes what no record names.
    pub async fn open(
        config: Arc<Config>,
        engine: Arc<FloeEngine>,
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        secrets: SecretKey,
    ) -> Result<Arc<Self>, RegistryError> {
        let registry = Arc::new(Self {
            secrets,
            ctx: Arc::new(PoolContext {
                engine: engine.clone(),
                budget: InstanceBudget::new(config.limits.max_instances_total),
                background: TaskTracker::new(),
            }),
            config,
            engine,
            storage,
            metrics,
            active: RwLock::default(),
            records: Mutex::default(),
            unavailable: Mutex::default(),
            locks: Mutex::default(),
            gc: tokio::sync::RwLock::new(()),
            creating: AtomicUsize::new(0),
            changes: AtomicU64::new(0),
            activity: tokio::sync::watch::Sender::new(0),
            components: moka::sync::Cache::builder()
                .weigher(|_, v: &(Component, u32)| v.1)
                .max_capacity(COMPONENT_CACHE_BYTES)
                .build(),
        });
        let records = registry.storage.load().await?;
        let started = Instant::now();
        let count = records.len();
        for record in records {
            let name = record.name.clone();
            match registry.load(&record).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(function = %name, error = %e, "function cannot be loaded; it answers 503 until redeployed");
                    registry
                        .unavailable
                        .lock()
                        .insert(name.clone(), e.to_string());
                }
            }
            registry.records.lock().insert(name, record);
        }
        let removed = registry.collect_garbage().await?;
        tracing::info!(
            functions = count,
            removed_files = removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "functions loaded"
        );
        Ok(registry)
    }

    async fn load(&self, record: &FunctionRecord) -> Result<(), RegistryError> {
        let name = FunctionName::new(&record.name)?;
        let version = record
            .active_version()
            .ok_or_else(|| RegistryError::Unavailable {
                name: record.name.clone(),
                reason: format!("active version {} is not in its record", record.active),
            })?;
        let runnable = self.runnable(version).await?;
        let mut settings = record.settings.clone();
        for change in settings.clamp_to(&self.config.limits) {
            tracing::warn!(function = %name, "{change}");
        }
        self.activate(&name, version.version, version.digest, runnable, settings);
        Ok(())
    }

    /// The active deployment of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        self.active.read().get(name).cloned()
    }

    /// Whether `name` exists but cannot serve.
    pub fn is_unavailable(&self, name: &str) -> bool {
        self.unavailable.lock().contains_key(name)
    }

    /// The server-wide instance budget.
    pub fn budget(&self) -> &Arc<InstanceBudget> {
        &self.ctx.budget
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<FloeEngine> {
        &self.engine
    }

    fn reserve_new_function(&self) -> Result<Reservation<'_>, RegistryError> {
        let records = self.records.lock();
        let max = self.config.limits.max_functions as usize;
        if records.len() + self.creating.load(Ordering::Relaxed) >= max {
            return Err(RegistryError::TooManyFunctions(
                self.config.limits.max_functions,
            ));
        }
        self.creating.fetch_add(1, Ordering::Relaxed);
        Ok(Reservation(&self.creating))
    }

    fn name_lock(&self, name: &FunctionName) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn record(&self, name: &FunctionName) -> Option<FunctionRecord> {
        self.records.lock().get(name.as_str()).cloned()
    }

    /// The record a change to `name` starts from, and the revision its write
    /// compares against: the storage's newest where other nodes write too,
    /// else this registry's own.
    async fn base(
        &self,
        name: &FunctionName,
    ) -> Result<(Option<FunctionRecord>, Option<Revision>), RegistryError> {
        Ok(match self.storage.current(name).await? {
            Some(current) => (current.record, Some(current.revision)),
            None => (self.record(name), None),
        })
    }

    fn activate(
        &self,
        name: &FunctionName,
        version: u64,
        digest: Digest,
        runnable: Arc<Runnable>,
        settings: FunctionSettings,
    ) {
        let metrics = self.metrics.function(name.as_arc());
        let config = self.function_config(name, &settings);
        let pool = Pool::new(
            name.as_arc().clone(),
            version,
            runnable.clone(),
            settings,
            config,
            self.ctx.clone(),
            metrics.clone(),
        );
        let function = Arc::new(Function {
            name: name.clone(),
            version,
            digest,
            pool,
            metrics,
            // A valid name is a valid header value.
            forwarded_prefix: http::HeaderValue::from_str(&format!("/{name}"))
                .unwrap_or_else(|_| http::HeaderValue::from_static("/")),
            runnable,
        });
        let old = self.active.write().insert(name.as_arc().clone(), function);
        self.unavailable.lock().remove(name.as_str());
        if let Some(old) = old {
            old.pool.retire();
        }
        self.touched();
    }

    /// Says that what serves changed.
    fn touched(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever what this registry serves changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.activity.subscribe()
    }

    fn active_functions(&self) -> Vec<Arc<Function>> {
        self.active.read().values().cloned().collect()
    }

    /// Every function serving now.
    pub fn active(&self) -> Vec<Arc<Function>> {
        self.active_functions()
    }

    /// At shutdown: retires every pool and waits (at most `wait`) for the
    /// instances' `pre-stop` hooks.
    pub async fn shutdown(&self, wait: std::time::Duration) {
        self.retire_all();
        self.ctx.background.close();
        if tokio::time::timeout(wait, self.ctx.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("lifecycle hooks still running at shutdown; not waiting for them");
        }
    }

    /// Retires every pool (at shutdown): idle instances stop now.
    pub fn retire_all(&self) {
        let active = self.active_functions();
        for f in active {
            f.pool.retire();
        }
    }
}

impl crate::scaling::ActivePools for Registry {
    fn active_pools(&self) -> Vec<Arc<Pool>> {
        self.active_functions()
            .into_iter()
            .map(|f| f.pool.clone())
            .collect()
    }

    fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// Times a change is read again and retried when another node changed the
/// same function at once, before the client gets a conflict.
const MAX_CONFLICTS: u32 = 16;

/// A new function's place under `limits.max_functions` while it is deployed.
struct Reservation<'a>(&'a AtomicUsize);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a state-changing operation on a task of its own, so that a caller
/// that goes away (a client disconnecting mid-deploy) cannot cut it between
/// its durable writes and its in-memory commit.
async fn run_to_completion<T: Send + 'static>(
    operation: impl Future<Output = Result<T, RegistryError>> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::spawn(operation)
        .await
        .map_err(RegistryError::Internal)?
}
