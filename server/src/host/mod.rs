//! What functions may import, and the per-instance state behind it.
//!
//! Every instance gets a [`StoreData`]: a WASI context (no preopened
//! directories, no inherited environment, no network sockets; stdout and
//! stderr go to the log), a wasi-http context whose outbound requests go
//! through the function's policy ([`outbound`]), the resource table they
//! share, and the [`InstanceLimiter`]. [`add_to_linker`] links all of WASI 0.2
//! (cli, clocks, filesystem, io, random, sockets) plus wasi-http, because
//! every guest toolchain imports more than the `wasi:http/proxy` world, the
//! same of WASI 0.3, and `wasi:config/store` (the function's variables and
//! secrets), and floe's `trigger` and `mqtt` interfaces.

mod entropy;
mod events;
#[cfg(feature = "gpu")]
mod gpu;
mod limits;
mod logs;
pub mod outbound;

pub use entropy::EntropyProbe;
pub use events::Fired;
pub use limits::{HostLimits, InstanceLimiter};
pub use logs::{GuestLog, LogSource, Stream};

use outbound::{FunctionOutbound, OutboundHooks};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of every instance's `Store`.
pub struct StoreData {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    /// The way to the server's GPU (`floe:function/gpu`); `None` while
    /// `init` runs for a snapshot.
    #[cfg(feature = "gpu")]
    pub(crate) gpu: Option<crate::gpu::GpuAccess>,
    /// Memory and table caps.
    pub limiter: InstanceLimiter,
    /// When the request (or hook) running now must end; the epoch callback
    /// interrupts guest code past it.
    pub deadline: Instant,
    /// Outbound HTTP under the function's policy.
    pub outbound: OutboundHooks,
    /// In a WASI 0.3 instance: the deadline of each guest task running a
    /// request or a hook. The epoch callback traps the instance when the
    /// task running guest code is past its deadline (a spin).
    pub task_deadlines: Option<TaskDeadlines>,
    /// The function's variables and secrets, as `wasi:config/store` reads
    /// them (empty while `init` runs for a snapshot).
    pub config: Arc<WasiConfigVariables>,
    /// Whether the guest called `wasi:config/store` (a snapshot of an `init`
    /// that did would freeze configuration that may change).
    pub config_read: bool,
    /// The triggers of the invocations running now, by request id
    /// (`floe:function/trigger`).
    pub fired: std::collections::HashMap<String, Fired>,
    /// The function's outbox (`floe:function/mqtt`); `None` when it has no
    /// broker to publish to, and while `init` runs for a snapshot.
    pub outbox: Option<Arc<crate::outbox::FunctionOutbox>>,
}

/// Deadlines of the guest tasks of a WASI 0.3 instance, by task.
pub type TaskDeadlines =
    Arc<parking_lot::Mutex<std::collections::HashMap<wasmtime::component::GuestTaskId, Instant>>>;

impl StoreData {
    /// State for a new instance of the function described by `source`.
    pub fn new(
        source: Arc<LogSource>,
        memory_limit: usize,
        limits: &HostLimits,
        deadline: Instant,
        outbound: Arc<FunctionOutbound>,
    ) -> Self {
        Self::build(
            wasi_builder(source),
            memory_limit,
            limits,
            deadline,
            outbound,
        )
    }

    /// State for the deploy-time run of `init` that floe snapshots: random
    /// bytes come through `probe`, so that floe can tell whether any were
    /// taken. (Its environment is empty, like every instance's.)
    pub fn for_snapshot(
        source: Arc<LogSource>,
        memory_limit: usize,
        limits: &HostLimits,
        deadline: Instant,
        outbound: Arc<FunctionOutbound>,
        probe: &EntropyProbe,
    ) -> Self {
        let mut wasi = wasi_builder(source);
        wasi.secure_random(probe.clone())
            .insecure_random(probe.clone());
        Self::build(wasi, memory_limit, limits, deadline, outbound)
    }

    fn build(
        mut wasi: WasiCtxBuilder,
        memory_limit: usize,
        limits: &HostLimits,
        deadline: Instant,
        outbound: Arc<FunctionOutbound>,
    ) -> Self {
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.max_field_bytes);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        Self {
            wasi: wasi.build(),
            http,
            table,
            #[cfg(feature = "gpu")]
            gpu: None,
            limiter: InstanceLimiter::new(memory_limit, limits.table_elements),
            deadline,
            outbound: OutboundHooks::new(outbound, deadline, limits.outgoing_body_chunk),
            task_deadlines: None,
            config: Arc::default(),
            config_read: false,
            fired: std::collections::HashMap::new(),
            outbox: None,
        }
    }

    /// Number of live host resources (request, streams, …) the instance holds.
    pub fn resource_count(&mut self) -> usize {
        self.table.iter_mut().count()
    }
}

fn wasi_builder(source: Arc<LogSource>) -> WasiCtxBuilder {
    let mut wasi = WasiCtx::builder();
    wasi.stdout(GuestLog::new(source.clone(), Stream::Stdout))
        .stderr(GuestLog::new(source, Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    wasi
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.outbound.deadline = self.deadline;
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Adds everything functions may import to `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    // WASI 0.3: its interfaces are named `@0.3.x`, so they sit beside the
    // 0.2 ones, and a component may import from both.
    wasmtime_wasi::p3::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    wasmtime_wasi_config::add_to_linker(linker, |data: &mut StoreData| {
        data.config_read = true;
        WasiConfig::new(&data.config)
    })?;
    events::add_to_linker(linker)?;
    #[cfg(feature = "gpu")]
    gpu::add_to_linker(linker)?;
    Ok(())
}
