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
//! the function's record to the [`FunctionStore`] before it answers. At
//! startup [`Registry::open`] loads every record, reuses each verified
//! artifact (recompiling from the stored component only when the artifact is
//! missing, corrupt or made by another engine build), and removes what no
//! record names.

mod error;
mod name;

pub use error::RegistryError;
pub use name::{FunctionName, InvalidName, MAX_NAME_LEN};

use crate::config::{Config, FunctionSettings};
use crate::engine::FloeEngine;
use crate::metrics::{FunctionMetrics, Metrics, PoolGauge};
use crate::pool::{InstanceBudget, InstanceView, Pool, PoolContext, PoolCounts, Runnable};
use crate::preinit;
use crate::store::{Digest, FunctionRecord, FunctionStore, VersionRecord};
use bytes::Bytes;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_util::task::TaskTracker;
use wasmtime::component::Component;

/// Compiled components kept in memory beyond the active ones, in bytes of
/// compiled code (for quick rollbacks and redeploys).
pub const COMPONENT_CACHE_BYTES: u64 = 512 * 1024 * 1024;

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

/// The result of a deploy or rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The function.
    pub name: String,
    /// The version now active.
    pub version: u64,
    /// Its component digest.
    pub digest: Digest,
    /// Its component size in bytes.
    pub size: u64,
    /// Time spent compiling it in this deploy (0 when nothing was compiled).
    pub compile_ms: u64,
    /// How its instances are initialized: `snapshot`, `instance` or `none`.
    pub init: &'static str,
    /// How long `init` took at deploy, in milliseconds.
    pub init_ms: u64,
    /// Why `init` runs per instance although a snapshot was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_reason: Option<String>,
    /// Whether a new version was created (`false`: the bytes were already
    /// the active version).
    #[serde(skip)]
    pub created: bool,
}

impl Deployed {
    fn new(name: &FunctionName, version: &VersionRecord, compile_ms: u64, created: bool) -> Self {
        Self {
            name: name.to_string(),
            version: version.version,
            digest: version.digest,
            size: version.size,
            compile_ms,
            init: version.preinit.mode.name(),
            init_ms: version.preinit.init_ms,
            init_reason: version.preinit.reason.clone(),
            created,
        }
    }
}

/// The component that serves a new version.
enum Serving {
    /// The uploaded component (with its artifact, when it was compiled now).
    Original {
        component: Component,
        artifact: Option<Vec<u8>>,
    },
    /// A snapshot taken after its `init`.
    Snapshot(preinit::Snapshot),
    /// A component already stored and compiled for another version with
    /// the same digest (serving from the component named): nothing to write
    /// but the record.
    Stored(Digest),
}

/// What an earlier deploy of the same component settled, reusable by a new
/// deploy with the same memory limit and `preinit` setting: the component
/// that serves (the upload or its snapshot), how `init` runs, and the hooks.
struct Settled {
    serving: Digest,
    preinit: crate::store::PreinitRecord,
    declared_hooks: Option<Vec<String>>,
}

/// What the API shows about a function.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionInfo {
    /// The function.
    pub name: String,
    /// `ready`, or `unavailable` when its stored code could not be loaded.
    pub status: &'static str,
    /// The version requests go to.
    pub active_version: u64,
    /// Its digest.
    pub digest: Option<Digest>,
    /// Settings in force.
    pub settings: FunctionSettings,
    /// Versions kept, oldest first.
    pub versions: Vec<VersionRecord>,
    /// `http`, `event` or `http+event` (what the active version exports).
    pub kind: &'static str,
    /// How the active version's instances are initialized: `snapshot`,
    /// `instance` or `none`.
    pub init: &'static str,
    /// Instance counts of the active version.
    pub instances: PoolCounts,
    /// What the function used, all versions together: invocations, busy,
    /// frozen and hook time, compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metering: Option<crate::metrics::MeterView>,
    /// The autoscaler's target and why, and instances by state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<crate::scaling::ScalingView>,
    /// Each live instance (only in the single-function view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_list: Option<Vec<InstanceView>>,
    /// Why the function is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Functions, their versions and their pools.
pub struct Registry {
    config: Arc<Config>,
    engine: Arc<FloeEngine>,
    store: Arc<FunctionStore>,
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
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Registry {
    /// Opens the registry over `store`: loads every function, then removes
    /// what no record names.
    pub async fn open(
        config: Arc<Config>,
        engine: Arc<FloeEngine>,
        store: Arc<FunctionStore>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, RegistryError> {
        let registry = Arc::new(Self {
            ctx: Arc::new(PoolContext {
                engine: engine.clone(),
                budget: InstanceBudget::new(config.limits.max_instances_total),
                background: TaskTracker::new(),
            }),
            config,
            engine,
            store,
            metrics,
            active: RwLock::default(),
            records: Mutex::default(),
            unavailable: Mutex::default(),
            locks: Mutex::default(),
            gc: tokio::sync::RwLock::new(()),
            creating: AtomicUsize::new(0),
            changes: AtomicU64::new(0),
            components: moka::sync::Cache::builder()
                .weigher(|_, v: &(Component, u32)| v.1)
                .max_capacity(COMPONENT_CACHE_BYTES)
                .build(),
        });
        let store = registry.store.clone();
        let records = blocking(move || store.load_records()).await??;
        let started = Instant::now();
        let count = records.len();
        for record in records {
            let name = record.name.clone();
            match registry.load(&record).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(function = %name, error = %e, "function cannot be loaded; it answers 503 until redeployed");
                    lock(&registry.unavailable).insert(name.clone(), e.to_string());
                }
            }
            lock(&registry.records).insert(name, record);
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
        let (component, _) = self.component(version.serving()).await?;
        let mut prepared = self.engine.prepare(&component)?;
        prepared.hooks.restrict(version.declared_hooks.as_deref());
        let runnable = Arc::new(preinit::runnable(&version.preinit, prepared));
        let mut settings = record.settings.clone();
        for change in settings.clamp_to(&self.config.limits) {
            tracing::warn!(function = %name, "{change}");
        }
        self.activate(&name, version.version, version.digest, runnable, settings);
        Ok(())
    }

    /// The active deployment of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Whether `name` exists but cannot serve.
    pub fn is_unavailable(&self, name: &str) -> bool {
        lock(&self.unavailable).contains_key(name)
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
        let records = lock(&self.records);
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
        lock(&self.locks)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn record(&self, name: &FunctionName) -> Option<FunctionRecord> {
        lock(&self.records).get(name.as_str()).cloned()
    }

    /// The compiled component with `digest`: from memory, from its verified
    /// artifact, or compiled again from the stored component. Also returns
    /// the compile time when it had to compile.
    async fn component(&self, digest: Digest) -> Result<(Component, u64), RegistryError> {
        if let Some((component, _)) = self.components.get(&digest) {
            return Ok((component, 0));
        }
        let store = self.store.clone();
        let key = self.engine.artifact_key().to_owned();
        if let Some(artifact) = blocking(move || store.read_artifact(&key, &digest)).await? {
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
        let store = self.store.clone();
        let bytes = blocking(move || store.read_blob(&digest))
            .await?
            .map_err(|e| RegistryError::Unavailable {
                name: digest.to_string(),
                reason: e.to_string(),
            })?;
        let compiled = self.engine.compile(Bytes::from(bytes)).await?;
        let store = self.store.clone();
        let key = self.engine.artifact_key().to_owned();
        let artifact = compiled.artifact;
        let len = artifact.len();
        blocking(move || store.put_artifact(&key, &digest, &artifact)).await??;
        tracing::info!(%digest, compile_ms = compiled.compile_time.as_millis() as u64, "recompiled from the stored component");
        self.cache(digest, &compiled.component, len);
        Ok((compiled.component, compiled.compile_time.as_millis() as u64))
    }

    /// An earlier version (of any function) of the component `digest`,
    /// deployed with the same memory limit and `preinit` setting as
    /// `settings`: `init` would come out the same, so its outcome (a
    /// snapshot, or init per instance) is reused rather than run again.
    fn settled(&self, digest: Digest, settings: &FunctionSettings) -> Option<Settled> {
        let records = lock(&self.records);
        records
            .values()
            .filter(|r| {
                r.settings.memory == settings.memory && r.settings.preinit == settings.preinit
            })
            .flat_map(|r| r.versions.iter())
            .find(|v| v.digest == digest)
            .map(|v| Settled {
                serving: v.serving(),
                preinit: v.preinit.clone(),
                declared_hooks: v.declared_hooks.clone(),
            })
    }

    /// Deploys `digest` as `settled` by an earlier deploy: the compiled
    /// component is loaded (from memory or its artifact), checked, and
    /// activated without compiling or running `init` again. `None` when the
    /// stored files are gone: the caller deploys in full.
    async fn redeploy_settled(
        &self,
        name: &FunctionName,
        record: Option<FunctionRecord>,
        new_settings: &FunctionSettings,
        bytes: &Bytes,
        digest: Digest,
        settled: Settled,
    ) -> Result<Option<Deployed>, RegistryError> {
        let (store, len) = (self.store.clone(), bytes.len() as u64);
        if !blocking(move || store.has_blob(&digest, Some(len))).await? {
            return Ok(None);
        }
        let Ok((component, _)) = self.component(settled.serving).await else {
            return Ok(None);
        };
        let mut prepared = self.engine.prepare(&component)?;
        prepared.hooks.restrict(settled.declared_hooks.as_deref());
        let runnable = Arc::new(preinit::runnable(&settled.preinit, prepared));
        let mut record = record.unwrap_or_else(|| FunctionRecord::new(name.as_str(), new_settings));
        let version = record.next_version;
        let version_record = VersionRecord {
            version,
            digest,
            size: len,
            created_at_ms: now_ms(),
            compile_ms: 0,
            preinit: settled.preinit,
            declared_hooks: settled.declared_hooks,
        };
        record.push_active(version_record.clone(), new_settings);
        let pruned = prune_versions(&mut record, self.config.limits.max_versions as usize);
        self.commit(
            name,
            record,
            bytes,
            digest,
            Serving::Stored(settled.serving),
        )
        .await?;
        self.activate(name, version, digest, runnable, new_settings.clone());
        if pruned {
            self.collect_garbage().await?;
        }
        tracing::info!(function = %name, version, %digest, size = len, init = version_record.preinit.mode.name(), "deployed (compiled and initialized before)");
        Ok(Some(Deployed::new(name, &version_record, 0, true)))
    }

    fn cache(&self, digest: Digest, component: &Component, size: usize) {
        let weight = u32::try_from(size).unwrap_or(u32::MAX);
        self.components.insert(digest, (component.clone(), weight));
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
        let pool = Pool::new(
            name.as_arc().clone(),
            version,
            runnable.clone(),
            settings,
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
        let old = self
            .active
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.as_arc().clone(), function);
        lock(&self.unavailable).remove(name.as_str());
        if let Some(old) = old {
            old.pool.retire();
        }
    }

    /// Deploys `bytes` as a new version of `name` (creating the function),
    /// with `settings` applied on top of the function's current settings.
    /// With `if_match`, only if the active version has that digest.
    pub async fn deploy(
        self: &Arc<Self>,
        name: &str,
        bytes: Bytes,
        settings: &[(String, String)],
        if_match: Option<&str>,
    ) -> Result<Deployed, RegistryError> {
        let this = self.clone();
        let (name, settings) = (name.to_owned(), settings.to_vec());
        let if_match = if_match.map(str::to_owned);
        run_to_completion(async move {
            this.deploy_now(&name, bytes, &settings, if_match.as_deref())
                .await
        })
        .await
    }

    async fn deploy_now(
        &self,
        name: &str,
        bytes: Bytes,
        settings: &[(String, String)],
        if_match: Option<&str>,
    ) -> Result<Deployed, RegistryError> {
        let name = FunctionName::new(name)?;
        let expected = if_match
            .map(|s| {
                s.parse::<Digest>()
                    .map_err(|_| RegistryError::BadPrecondition(s.to_owned()))
            })
            .transpose()?;
        let name_lock = self.name_lock(&name);
        let _guard = name_lock.lock().await;

        let record = self.record(&name);
        let active = record
            .as_ref()
            .and_then(FunctionRecord::active_version)
            .cloned();
        if let Some(expected) = expected
            && active.as_ref().map(|v| v.digest) != Some(expected)
        {
            return Err(RegistryError::PreconditionFailed {
                expected,
                active: active.map(|v| v.digest),
            });
        }
        let mut new_settings = record
            .as_ref()
            .map_or_else(|| self.config.functions.clone(), |r| r.settings.clone());
        for (key, value) in settings {
            new_settings.set(key, value)?;
        }
        new_settings.validate(&self.config.limits)?;

        let digest = Digest::of(&bytes);
        // The same bytes as the serving version: nothing to compile or store.
        // (A function that cannot load is redeployed in full, to repair it.)
        if let (Some(record), Some(active)) = (&record, &active)
            && active.digest == digest
            && self.get(name.as_str()).is_some()
        {
            if new_settings != record.settings {
                self.reconfigure_locked(&name, record.clone(), new_settings)
                    .await?;
            }
            return Ok(Deployed::new(&name, active, 0, false));
        }
        // A new name is reserved for the whole deploy, so that concurrent
        // deploys of different new names cannot overshoot the limit.
        let _reserved = match record {
            Some(_) => None,
            None => Some(self.reserve_new_function()?),
        };

        if let Some(settled) = self.settled(digest, &new_settings)
            && let Some(deployed) = self
                .redeploy_settled(
                    &name,
                    record.clone(),
                    &new_settings,
                    &bytes,
                    digest,
                    settled,
                )
                .await?
        {
            return Ok(deployed);
        }

        let size = bytes.len() as u64;
        let (component, artifact, compile_ms) = match self.components.get(&digest) {
            Some((component, _)) => (component, None, 0),
            None => {
                let compiled = self.engine.compile(bytes.clone()).await?;
                let ms = compiled.compile_time.as_millis() as u64;
                (compiled.component, Some(compiled.artifact), ms)
            }
        };
        let mut prepared = self.engine.prepare(&component)?;
        let declared_hooks = crate::engine::declared_hooks(&bytes);
        prepared.hooks.restrict(declared_hooks.as_deref());

        let mut record =
            record.unwrap_or_else(|| FunctionRecord::new(name.as_str(), &new_settings));
        let version = record.next_version;
        let initialized = preinit::initialize(
            &self.engine,
            name.as_arc(),
            version,
            &bytes,
            prepared,
            &new_settings,
            declared_hooks.as_deref(),
        )
        .await?;
        let version_record = VersionRecord {
            version,
            digest,
            size,
            created_at_ms: now_ms(),
            compile_ms,
            preinit: initialized.record,
            declared_hooks,
        };
        record.push_active(version_record.clone(), &new_settings);
        let pruned = prune_versions(&mut record, self.config.limits.max_versions as usize);
        let serving = match initialized.snapshot {
            Some(snapshot) => Serving::Snapshot(snapshot),
            None => Serving::Original {
                component,
                artifact,
            },
        };
        self.commit(&name, record, &bytes, digest, serving).await?;
        let runnable = Arc::new(initialized.runnable);
        // The copy-on-write memory image is otherwise made by the first
        // instantiation, on the first request's time.
        let component = runnable.prepared.pre.component().clone();
        if let Ok(Err(e)) = blocking(move || component.initialize_copy_on_write_image()).await {
            tracing::warn!(function = %name, error = %format!("{e:#}"), "preparing the memory image failed");
        }
        self.activate(&name, version, digest, runnable, new_settings);
        if pruned {
            self.collect_garbage().await?;
        }
        tracing::info!(function = %name, version, %digest, size, compile_ms, init = version_record.preinit.mode.name(), "deployed");
        Ok(Deployed::new(&name, &version_record, compile_ms, true))
    }

    /// Stores a version's files and its function's record, in that order,
    /// and commits the record in memory.
    async fn commit(
        &self,
        name: &FunctionName,
        record: FunctionRecord,
        bytes: &Bytes,
        digest: Digest,
        serving: Serving,
    ) -> Result<(), RegistryError> {
        // Blob, artifact, record: in that order, so that a record never names
        // a file that is not there.
        let _gc = self.gc.read().await;
        let store = self.store.clone();
        let key = self.engine.artifact_key().to_owned();
        let to_write = record.clone();
        let bytes = bytes.clone();
        let (cached, files) = match serving {
            Serving::Original {
                component,
                artifact,
            } => {
                let files = artifact.map(|a| (digest, None, a));
                ((digest, component), files)
            }
            Serving::Snapshot(snapshot) => (
                (snapshot.digest, snapshot.component),
                Some((snapshot.digest, Some(snapshot.bytes), snapshot.artifact)),
            ),
            Serving::Stored(serving) => {
                // A collection may have taken the files since they were
                // loaded: then the deploy fails rather than name them.
                let store = self.store.clone();
                blocking(move || {
                    if !store.has_blob(&serving, None) {
                        return Err(crate::store::StoreError::Missing(serving));
                    }
                    store.write_record(&to_write)
                })
                .await??;
                lock(&self.records).insert(name.to_string(), record);
                self.changes.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let artifact_len = files.as_ref().map_or(0, |f| f.2.len());
        blocking(move || {
            store.put_blob(&digest, &bytes)?;
            if let Some((serving, snapshot, artifact)) = &files {
                if let Some(snapshot) = snapshot {
                    store.put_blob(serving, snapshot)?;
                }
                store.put_artifact(&key, serving, artifact)?;
            }
            store.write_record(&to_write)
        })
        .await??;
        if artifact_len > 0 {
            self.cache(cached.0, &cached.1, artifact_len);
        }
        // Committed in memory before the guard goes: a collection that waits
        // for it sees the new record.
        lock(&self.records).insert(name.to_string(), record);
        self.changes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Makes `version` (or, when `None`, the newest version older than the
    /// active one) the active version of `name`.
    pub async fn rollback(
        self: &Arc<Self>,
        name: &str,
        version: Option<u64>,
    ) -> Result<Deployed, RegistryError> {
        let this = self.clone();
        let name = name.to_owned();
        run_to_completion(async move { this.rollback_now(&name, version).await }).await
    }

    async fn rollback_now(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<Deployed, RegistryError> {
        let name = FunctionName::new(name)?;
        let name_lock = self.name_lock(&name);
        let _guard = name_lock.lock().await;
        let mut record = self
            .record(&name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
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
        let (component, _) = self.component(target.serving()).await?;
        let mut prepared = self.engine.prepare(&component)?;
        prepared.hooks.restrict(target.declared_hooks.as_deref());
        let runnable = Arc::new(preinit::runnable(&target.preinit, prepared));
        record.active = target.version;
        self.persist(&record).await?;
        let settings = record.settings.clone();
        lock(&self.records).insert(name.to_string(), record);
        self.activate(&name, target.version, target.digest, runnable, settings);
        tracing::info!(function = %name, version = target.version, "rolled back");
        Ok(Deployed::new(&name, &target, 0, false))
    }

    /// Changes settings of `name`. New instances use them at once; busy
    /// instances finish their request under the old ones.
    pub async fn configure(
        self: &Arc<Self>,
        name: &str,
        settings: &[(String, String)],
    ) -> Result<FunctionInfo, RegistryError> {
        let this = self.clone();
        let (name, settings) = (name.to_owned(), settings.to_vec());
        run_to_completion(async move { this.configure_now(&name, &settings).await }).await
    }

    async fn configure_now(
        &self,
        name: &str,
        settings: &[(String, String)],
    ) -> Result<FunctionInfo, RegistryError> {
        let name = FunctionName::new(name)?;
        let name_lock = self.name_lock(&name);
        let _guard = name_lock.lock().await;
        let record = self
            .record(&name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let mut new_settings = record.settings.clone();
        for (key, value) in settings {
            new_settings.set(key, value)?;
        }
        new_settings.validate(&self.config.limits)?;
        if new_settings != record.settings {
            self.reconfigure_locked(&name, record, new_settings).await?;
        }
        self.info(name.as_str(), false)
    }

    async fn reconfigure_locked(
        &self,
        name: &FunctionName,
        mut record: FunctionRecord,
        settings: FunctionSettings,
    ) -> Result<(), RegistryError> {
        let rebuild = settings.preinit != record.settings.preinit;
        record.settings = settings.clone();
        let Some(current) = self.get(name.as_str()) else {
            self.persist(&record).await?;
            lock(&self.records).insert(name.to_string(), record);
            return Ok(());
        };
        if rebuild && current.runnable.prepared.hooks.init.is_some() {
            // `init` runs another way now: redo it for the active version,
            // from the stored component.
            let active = record
                .active_version()
                .cloned()
                .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
            let store = self.store.clone();
            let digest = active.digest;
            let bytes = Bytes::from(blocking(move || store.read_blob(&digest)).await?.map_err(
                |e| RegistryError::Unavailable {
                    name: name.to_string(),
                    reason: e.to_string(),
                },
            )?);
            let (component, _) = self.component(digest).await?;
            let mut prepared = self.engine.prepare(&component)?;
            prepared.hooks.restrict(active.declared_hooks.as_deref());
            let initialized = preinit::initialize(
                &self.engine,
                name.as_arc(),
                active.version,
                &bytes,
                prepared,
                &settings,
                active.declared_hooks.as_deref(),
            )
            .await?;
            if let Some(v) = record
                .versions
                .iter_mut()
                .find(|v| v.version == active.version)
            {
                v.preinit = initialized.record;
            }
            let serving = match initialized.snapshot {
                Some(snapshot) => Serving::Snapshot(snapshot),
                None => Serving::Original {
                    component,
                    artifact: None,
                },
            };
            self.commit(name, record, &bytes, digest, serving).await?;
            self.activate(
                name,
                active.version,
                digest,
                Arc::new(initialized.runnable),
                settings,
            );
            self.collect_garbage().await?;
        } else {
            self.persist(&record).await?;
            lock(&self.records).insert(name.to_string(), record);
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
    pub async fn delete(self: &Arc<Self>, name: &str) -> Result<(), RegistryError> {
        let this = self.clone();
        let name = name.to_owned();
        run_to_completion(async move { this.delete_now(&name).await }).await
    }

    async fn delete_now(&self, name: &str) -> Result<(), RegistryError> {
        let name = FunctionName::new(name)?;
        let name_lock = self.name_lock(&name);
        let _guard = name_lock.lock().await;
        if self.record(&name).is_none() {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        let store = self.store.clone();
        let n = name.to_string();
        blocking(move || store.delete_record(&n)).await??;
        lock(&self.records).remove(name.as_str());
        lock(&self.unavailable).remove(name.as_str());
        let old = self
            .active
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name.as_str());
        if let Some(old) = old {
            old.pool.retire();
        }
        self.metrics.remove(name.as_str());
        self.collect_garbage().await?;
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    async fn persist(&self, record: &FunctionRecord) -> Result<(), RegistryError> {
        let store = self.store.clone();
        let record = record.clone();
        blocking(move || store.write_record(&record)).await??;
        self.changes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes stored files that no record names. Returns how many.
    async fn collect_garbage(&self) -> Result<usize, RegistryError> {
        self.changes.fetch_add(1, Ordering::Relaxed);
        let _gc = self.gc.write().await;
        let live: HashSet<Digest> = lock(&self.records)
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
        let store = self.store.clone();
        let key = self.engine.artifact_key().to_owned();
        Ok(blocking(move || store.collect_garbage(&live, &key)).await??)
    }

    /// What the API shows about `name`; `detail` adds every instance.
    pub fn info(&self, name: &str, detail: bool) -> Result<FunctionInfo, RegistryError> {
        let record = lock(&self.records)
            .get(name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        Ok(self.describe(record, detail))
    }

    fn describe(&self, record: FunctionRecord, detail: bool) -> FunctionInfo {
        let function = self.get(&record.name);
        let error = lock(&self.unavailable).get(&record.name).cloned();
        FunctionInfo {
            status: if function.is_some() {
                "ready"
            } else {
                "unavailable"
            },
            active_version: record.active,
            digest: record.active_version().map(|v| v.digest),
            kind: function.as_ref().map_or("", |f| f.runnable.prepared.kind()),
            init: function.as_ref().map_or("", |f| f.runnable.init_mode()),
            instances: function
                .as_ref()
                .map(|f| f.pool.counts())
                .unwrap_or_default(),
            metering: function.as_ref().map(|f| f.metrics.meter.view()),
            scaling: function
                .as_ref()
                .map(|f| crate::scaling::ScalingView::of(&f.pool)),
            instance_list: detail.then(|| self.instances_of(&record.name)),
            error,
            name: record.name,
            settings: record.settings,
            versions: record.versions,
        }
    }

    /// Every live instance of `name`, of any version, by id.
    pub fn instances(&self, name: &str) -> Result<Vec<InstanceView>, RegistryError> {
        if !lock(&self.records).contains_key(name) {
            return Err(RegistryError::NotFound(name.to_owned()));
        }
        Ok(self.instances_of(name))
    }

    fn instances_of(&self, name: &str) -> Vec<InstanceView> {
        let mut list: Vec<InstanceView> = self
            .ctx
            .budget
            .pools()
            .iter()
            .filter(|p| p.function().as_ref() == name)
            .flat_map(|p| p.instances())
            .collect();
        list.sort_by_key(|i| i.id);
        list
    }

    /// Every function, in name order.
    pub fn list(&self) -> Vec<FunctionInfo> {
        let records: Vec<FunctionRecord> = lock(&self.records).values().cloned().collect();
        records
            .into_iter()
            .map(|r| self.describe(r, false))
            .collect()
    }

    fn active_functions(&self) -> Vec<Arc<Function>> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Instance counts of every active pool, for `/metrics`.
    pub fn pool_gauges(&self) -> Vec<PoolGauge> {
        let active = self.active_functions();
        let mut gauges: Vec<PoolGauge> = active
            .iter()
            .map(|f| PoolGauge {
                function: f.name.as_arc().clone(),
                version: f.version,
                counts: f.pool.counts(),
                states: f.pool.states(),
                target: f.pool.floor(),
                instances: f
                    .pool
                    .instances()
                    .into_iter()
                    .map(|i| (i.id, i.metering))
                    .collect(),
            })
            .collect();
        gauges.sort_by(|a, b| a.function.cmp(&b.function));
        gauges
    }

    /// One pass of the autoscaler over every active function: works out its
    /// target from its load and `wall` (the time of day, for scheduled
    /// reservations), starts instances up to it and stops instances idle
    /// past `idle_ttl` down to it.
    pub fn scale(&self, now: Instant, wall: jiff::Timestamp) -> crate::scaling::Step {
        let mut step = crate::scaling::Step {
            changes: self.changes.load(Ordering::Relaxed),
            ..Default::default()
        };
        for f in self.active_functions() {
            let load = f.pool.take_load();
            step.busy = step
                .busy
                .saturating_add(load.in_flight.saturating_add(load.queued));
            step.peak = step.peak.max(load.peak);
            let target = crate::scaling::policy::target(f.pool.settings(), load, wall);
            step.started += f.pool.scale_to(target);
            step.stopped += f.pool.reap_idle(now) as u32;
        }
        step
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

/// Drops the oldest versions beyond `keep`, never the active one. Returns
/// whether any were dropped.
fn prune_versions(record: &mut FunctionRecord, keep: usize) -> bool {
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
        .map_err(|e| RegistryError::Internal(e.to_string()))?
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
