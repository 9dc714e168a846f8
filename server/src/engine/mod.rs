//! The wasmtime engine and everything done with components before they serve:
//! validation, compilation, artifact loading, and linking against the host.
//!
//! One [`FloeEngine`] per server. It owns the wasmtime `Engine` (pooling
//! allocator sized from the configuration, epoch interruption driven by an
//! [`EpochThread`]) and the host [`Linker`]. Compilation runs on blocking
//! threads, a bounded number at a time, with a time limit. Nothing here runs
//! per request.

mod epoch;
mod exports;
mod link;

pub use epoch::EpochThread;
pub use exports::{
    EVENT, EVENT_P3, HOOKS_SECTION, HTTP_HANDLER, HTTP_HANDLER_P3, Hooks, LIFECYCLE, LIFECYCLE_P3,
    Prepared, declared_hooks,
};
pub use link::MissingImport;

use crate::config::{Allocator, Config};
use crate::host::{self, StoreData};
use crate::status::ErrorCode;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, PoolingAllocationConfig};

/// Why an uploaded component cannot be deployed. Every variant is the
/// uploader's problem (422), except [`ComponentError::Internal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary (it does not start with \\0asm)")]
    NotWasm,
    /// A core module was uploaded where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component: build for wasm32-wasip2, \
         or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// The validator rejected the component.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// Imports the host does not provide.
    #[error("the component imports what this host does not provide: {}", list_imports(.0))]
    MissingImports(Vec<MissingImport>),
    /// The component exports neither an HTTP nor an event handler.
    #[error(
        "the component exports neither `wasi:http/incoming-handler@0.2.x` nor \
         `wasi:http/handler@0.3.x` (an HTTP function) nor `{EVENT}` or `{EVENT_P3}` (an event \
         function)"
    )]
    MissingExport,
    /// An export of floe's contract has the wrong shape.
    #[error("{0}")]
    BadExport(String),
    /// The function's `init` failed, trapped or ran past `init_timeout`.
    #[error("init failed: {0}")]
    InitFailed(String),
    /// Compilation took longer than `limits.compile_timeout`.
    #[error("compiling the component took longer than {0:?}")]
    CompileTimeout(Duration),
    /// Something went wrong on the host side.
    #[error("internal error: {0:#}")]
    Internal(#[source] anyhow::Error),
}

impl ComponentError {
    /// The error code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotWasm | Self::CoreModule | Self::Invalid(_) | Self::CompileTimeout(_) => {
                ErrorCode::InvalidComponent
            }
            Self::MissingImports(_) => ErrorCode::MissingImport,
            Self::MissingExport | Self::BadExport(_) => ErrorCode::MissingExport,
            Self::InitFailed(_) => ErrorCode::InitFailed,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

fn list_imports(imports: &[MissingImport]) -> String {
    imports
        .iter()
        .map(|m| {
            if m.name.is_empty() {
                m.reason.clone()
            } else {
                format!("`{}` ({})", m.name, m.reason)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The engine could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("setting up the wasmtime engine: {0:#}")]
pub struct EngineError(#[source] anyhow::Error);

/// A compiled component and what compiling it cost.
pub struct Compiled {
    /// The component, ready to link.
    pub component: Component,
    /// Its serialized form, to store as the artifact.
    pub artifact: Vec<u8>,
    /// Compilation time.
    pub compile_time: Duration,
}

/// The server's wasmtime engine and host linker.
pub struct FloeEngine {
    engine: Engine,
    linker: Linker<StoreData>,
    artifact_key: String,
    allocator: Allocator,
    compile_permits: Arc<Semaphore>,
    init_permits: Arc<Semaphore>,
    compile_timeout: Duration,
    host_limits: host::HostLimits,
    limits: crate::config::LimitsConfig,
    epoch_tick: Duration,
    outbound: Arc<host::outbound::Outbound>,
    _epoch: EpochThread,
    /// GPU frame work for functions that import `floe:function/gpu`.
    #[cfg(feature = "gpu")]
    gpu: Arc<crate::gpu::GpuService>,
    /// Functions' MQTT outboxes, for `floe:function/mqtt`.
    outboxes: Arc<crate::outbox::Outboxes>,
}

impl std::fmt::Debug for FloeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloeEngine")
            .field("artifact_key", &self.artifact_key)
            .field("allocator", &self.allocator)
            .finish_non_exhaustive()
    }
}

impl FloeEngine {
    /// Builds the engine, its epoch ticker and the host linker.
    pub fn new(config: &Config) -> Result<Self, EngineError> {
        let (engine, allocator) = build_engine(config).map_err(EngineError)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| EngineError(e.into()))?;
        let epoch = EpochThread::start(&engine, config.engine.epoch_tick.0)
            .map_err(|e| EngineError(e.into()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            artifact_key: format!("{:016x}", hasher.finish()),
            engine,
            linker,
            allocator,
            compile_permits: Arc::new(Semaphore::new(
                config.limits.max_concurrent_compiles as usize,
            )),
            init_permits: Arc::new(Semaphore::new(
                config.limits.max_concurrent_compiles as usize,
            )),
            compile_timeout: config.limits.compile_timeout.0,
            host_limits: host::HostLimits {
                table_elements: config.engine.table_elements as usize,
                max_resources: config.engine.max_resources as usize,
                max_kept_resources: config.engine.max_kept_resources as usize,
                max_field_bytes: config.engine.max_field_bytes.as_usize(),
                outgoing_body_chunk: config.engine.outgoing_body_chunk.as_usize(),
                log_rate: (config.limits.guest_log_rate, config.limits.guest_log_burst),
            },
            limits: config.limits.clone(),
            epoch_tick: config.engine.epoch_tick.0,
            outbound: Arc::new(host::outbound::Outbound::new(config.outbound.clone())),
            _epoch: epoch,
            #[cfg(feature = "gpu")]
            gpu: crate::gpu::GpuService::new(&config.gpu),
            outboxes: Arc::new(crate::outbox::Outboxes::new(
                &config.server.data_dir,
                config.events.clone(),
            )),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Identifies this engine build and configuration: compiled artifacts are
    /// only valid for the key they were made under.
    pub fn artifact_key(&self) -> &str {
        &self.artifact_key
    }

    /// The allocator actually in use (pooling may have fallen back).
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The server-wide outbound HTTP policy.
    pub fn outbound(&self) -> &Arc<host::outbound::Outbound> {
        &self.outbound
    }

    /// The outbound policy of one function: the server's, and its
    /// allow-list.
    pub fn function_outbound(
        &self,
        function: &Arc<str>,
        settings: &crate::config::FunctionSettings,
        metrics: Option<Arc<crate::metrics::FunctionMetrics>>,
    ) -> Arc<host::outbound::FunctionOutbound> {
        Arc::new(host::outbound::FunctionOutbound::new(
            self.outbound.clone(),
            settings.allowed_outbound_hosts.clone(),
            function.clone(),
            metrics,
        ))
    }

    /// The server's `[limits]`.
    pub fn limits(&self) -> &crate::config::LimitsConfig {
        &self.limits
    }

    /// What bounds every instance's host state.
    pub fn host_limits(&self) -> &host::HostLimits {
        &self.host_limits
    }

    /// The epoch ticker's interval.
    pub fn epoch_tick(&self) -> Duration {
        self.epoch_tick
    }

    /// Validates and compiles `bytes` on a blocking thread, at most
    /// `limits.max_concurrent_compiles` at a time and within
    /// `limits.compile_timeout`.
    pub async fn compile(&self, bytes: bytes::Bytes) -> Result<Compiled, ComponentError> {
        check_header(&bytes)?;
        let permit = self
            .compile_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ComponentError::Internal(e.into()))?;
        let engine = self.engine.clone();
        let task = tokio::task::spawn_blocking(move || {
            // The permit is released when the compilation really ends, even
            // if the deploy stopped waiting for it.
            let _permit = permit;
            let start = Instant::now();
            let component = Component::new(&engine, &bytes)
                .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
            let compile_time = start.elapsed();
            let artifact = component
                .serialize()
                .map_err(|e| ComponentError::Internal(e.into()))?;
            Ok(Compiled {
                component,
                artifact,
                compile_time,
            })
        });
        match tokio::time::timeout(self.compile_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ComponentError::Internal(join.into())),
            Err(_) => Err(ComponentError::CompileTimeout(self.compile_timeout)),
        }
    }

    /// A slot for a deploy-time instance (running `init`): as many as
    /// compilations, and outside the instance budget, which the pool leaves
    /// room for.
    pub async fn init_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.init_permits.clone().acquire_owned().await.ok()
    }

    /// Loads a compiled artifact that the store has verified against its
    /// checksum.
    pub fn load_artifact(&self, verified_artifact: &[u8]) -> anyhow::Result<Component> {
        // SAFETY: `Component::deserialize` trusts its input to be code that
        // wasmtime produced. These bytes were produced by `Component::serialize`
        // on an engine with the same artifact key, written durably, and the
        // store has checked them against the checksum written alongside them,
        // so they are exactly what wasmtime wrote. wasmtime additionally checks
        // its version and configuration header before using them.
        #[expect(unsafe_code, reason = "deserializing our own verified artifacts")]
        let component = unsafe { Component::deserialize(&self.engine, verified_artifact)? };
        Ok(component)
    }

    /// Links `component` against the host and locates its exports.
    pub fn prepare(&self, component: &Component) -> Result<Prepared, ComponentError> {
        let prepared = exports::prepare(&self.engine, &self.linker, component)?;
        // A function that does GPU work is coming: open the device now, in
        // the background, rather than on its first call.
        #[cfg(feature = "gpu")]
        if component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with(GPU_INTERFACE))
        {
            self.gpu.warm();
        }
        Ok(prepared)
    }

    /// The GPU service.
    #[cfg(feature = "gpu")]
    pub fn gpu(&self) -> &Arc<crate::gpu::GpuService> {
        &self.gpu
    }

    /// Functions' MQTT outboxes.
    pub fn outboxes(&self) -> &Arc<crate::outbox::Outboxes> {
        &self.outboxes
    }

    /// What `/readyz` says of GPU frame work.
    pub fn gpu_status(&self) -> serde_json::Value {
        #[cfg(feature = "gpu")]
        return self.gpu.status();
        #[cfg(not(feature = "gpu"))]
        serde_json::json!({ "state": "not built in" })
    }

    /// The host linker.
    pub(crate) fn linker(&self) -> &Linker<StoreData> {
        &self.linker
    }
}

/// The import that makes a function a user of the GPU.
#[cfg(feature = "gpu")]
const GPU_INTERFACE: &str = "floe:function/gpu@";

/// Rejects what is clearly not a component before compiling anything.
fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(ComponentError::NotWasm);
    }
    // A core module's version field is 1; a component's is 0x0d with layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(ComponentError::CoreModule);
    }
    Ok(())
}

fn build_engine(config: &Config) -> anyhow::Result<(Engine, Allocator)> {
    let mut wasm = wasmtime::Config::new();
    wasm.epoch_interruption(true);
    wasm.wasm_component_model(true);
    if !config.engine.compile_cache.as_os_str().is_empty() {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(&config.engine.compile_cache);
        wasm.cache(Some(wasmtime::Cache::new(cache)?));
    }
    if config.engine.allocator == Allocator::Pooling {
        let mut pooled = wasm.clone();
        pooled.allocation_strategy(pooling_config(config));
        match Engine::new(&pooled) {
            Ok(engine) => {
                check_map_count(config);
                return Ok((engine, Allocator::Pooling));
            }
            Err(err) => tracing::warn!(
                error = %format!("{err:#}"),
                "the pooling allocator is not available here; allocating instances on demand"
            ),
        }
    }
    Ok((Engine::new(&wasm)?, Allocator::OnDemand))
}

/// Memory mappings one live instance of a small component costs in the
/// pooling allocator (its memory image, the rest of its memory, guard and
/// table splits), plus the two of its fiber stack slot (stack and guard).
const MAPPINGS_PER_INSTANCE: u64 = 7;

/// Warns when `limits.max_instances_total` live instances would need more
/// memory mappings than the kernel allows a process (`vm.max_map_count`):
/// past that, starting an instance fails with ENOMEM.
fn check_map_count(config: &Config) {
    let Some(allowed) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return;
    };
    let total = u64::from(config.limits.max_instances_total);
    let needed = total * MAPPINGS_PER_INSTANCE + 1_000;
    if needed > allowed {
        tracing::warn!(
            max_instances_total = total,
            vm_max_map_count = allowed,
            instances_that_fit = allowed.saturating_sub(1_000) / MAPPINGS_PER_INSTANCE,
            "vm.max_map_count is too low for limits.max_instances_total: raise it to at least {needed} (sysctl -w vm.max_map_count={needed})"
        );
    }
}

/// The address space the pool's linear-memory slots may reserve: half of
/// the 128 TiB of user space x86-64 and aarch64 Linux give a process.
const POOL_MEMORY_ADDRESS_SPACE: u64 = 64 << 40;
/// One memory slot as wasmtime lays it out on 64-bit hosts: a 4 GiB
/// reservation and a 32 MiB guard (what lets it elide bounds checks).
const MEMORY_SLOT_BYTES: u64 = (4 << 30) + (32 << 20);

/// Linear memories the pool holds for `instances` instances:
/// `per_instance` each, as far as [`POOL_MEMORY_ADDRESS_SPACE`] allows. A
/// Rust component has one memory; componentize-js and componentize-py ones
/// have several. A pool too large for all of them to have
/// `per_instance` (past about 4,000 instances at 4) still reserves, and
/// starting an instance fails only when the memories in use run out.
fn pool_memories(instances: u32, per_instance: u32) -> u32 {
    let wanted = instances.saturating_mul(per_instance);
    let fit = u32::try_from(POOL_MEMORY_ADDRESS_SPACE / MEMORY_SLOT_BYTES).unwrap_or(u32::MAX);
    if wanted > fit {
        tracing::info!(
            wanted,
            reserved = fit.max(instances),
            "the instance pool reserves fewer memory slots than instances × memories_per_instance: they would not fit in the address space"
        );
    }
    wanted.min(fit.max(instances))
}

fn pooling_config(config: &Config) -> PoolingAllocationConfig {
    let e = &config.engine;
    // Instances serving requests, plus the deploy-time ones that run `init`.
    let n = config
        .limits
        .max_instances_total
        .saturating_add(config.limits.max_concurrent_compiles);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(e.core_instances_per_instance))
        .total_memories(pool_memories(n, e.memories_per_instance))
        .total_tables(n.saturating_mul(e.tables_per_instance))
        // One fiber stack per call in flight, and there is at most one call
        // per instance (plus instantiation, which runs on the same fiber).
        .total_stacks(n)
        .max_memory_size(config.limits.max_memory.as_usize())
        .table_elements(e.table_elements as usize)
        .max_component_instance_size(e.instance_state_size.as_usize())
        .max_core_instance_size(e.instance_state_size.as_usize())
        .linear_memory_keep_resident(e.memory_keep_resident.as_usize())
        .table_keep_resident(e.table_keep_resident.as_usize())
        .decommit_batch_size(e.decommit_batch_size as usize);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_pools_reserve_the_memories_that_fit() {
        // 1,002 instances of 4 memories: all reserved (15.8 TiB).
        assert_eq!(pool_memories(1_002, 4), 4_008);
        // 10,002 of 4 would take 157 TiB: capped to 64 TiB of slots, still
        // at least one memory per instance.
        let capped = pool_memories(10_002, 4);
        assert!((10_002..40_008).contains(&capped));
        assert!(u64::from(capped) * MEMORY_SLOT_BYTES <= POOL_MEMORY_ADDRESS_SPACE);
    }

    #[test]
    fn headers_tell_modules_from_components() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(ComponentError::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(ComponentError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
