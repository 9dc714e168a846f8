//! Live figures of one instance, readable while it serves.

use crate::clock::unix_ms;
use crate::metrics::Hook;
use crate::metrics::{Meter, MeterView};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What an instance is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum InstanceState {
    /// Being instantiated (and initialized, with `preinit = "instance"`).
    Starting = 0,
    /// Serving a request.
    Busy = 1,
    /// Parked, waiting for a request (the function has no `pre-freeze`).
    Idle = 2,
    /// Running `pre-freeze`.
    Freezing = 3,
    /// Parked after `pre-freeze`.
    Frozen = 4,
    /// Running `pre-stop`, or about to be dropped.
    Stopping = 5,
}

impl InstanceState {
    /// Every state, in order.
    pub const ALL: [Self; 6] = [
        Self::Starting,
        Self::Busy,
        Self::Idle,
        Self::Freezing,
        Self::Frozen,
        Self::Stopping,
    ];

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Busy,
            2 => Self::Idle,
            3 => Self::Freezing,
            4 => Self::Frozen,
            _ => Self::Stopping,
        }
    }

    /// The state's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Busy => "busy",
            Self::Idle => "idle",
            Self::Freezing => "freezing",
            Self::Frozen => "frozen",
            Self::Stopping => "stopping",
        }
    }
}

/// Calls of one hook.
#[derive(Debug, Default)]
struct HookCounter {
    calls: AtomicU64,
    failures: AtomicU64,
    ns: AtomicU64,
}

impl HookCounter {
    fn view(&self) -> HookView {
        HookView {
            calls: self.calls.load(Relaxed),
            failures: self.failures.load(Relaxed),
            ms: self.ns.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// Figures of one instance, updated as it works.
#[derive(Debug)]
pub struct InstanceStats {
    /// The instance's id, unique in this server process.
    pub id: u64,
    version: u64,
    init: &'static str,
    started: Instant,
    started_at_ms: u64,
    state: AtomicU8,
    last_used_ms: AtomicU64,
    requests: AtomicU64,
    memory: AtomicU64,
    resources: AtomicU64,
    busy_ns: AtomicU64,
    hooks: [HookCounter; 3],
    /// The memory limit, MiB (for compute units).
    pub(crate) memory_mib: u64,
    /// Invocations, busy, frozen and hook time, compute units.
    pub(crate) meter: Meter,
    /// When it was last parked, nanoseconds after `started`; `NOT_PARKED`
    /// while it is not.
    parked_since: AtomicU64,
    /// Its GPU calls.
    pub(crate) gpu: Arc<crate::gpu::GpuUsage>,
    /// Requests it serves now (up to `instance_concurrency`).
    pub(crate) in_flight: AtomicU32,
}

const NOT_PARKED: u64 = u64::MAX;

/// Calls of one hook in an instance, as shown by the API.
#[derive(Debug, Clone, Serialize)]
pub struct HookView {
    /// Times called.
    pub calls: u64,
    /// Times it trapped or overran.
    pub failures: u64,
    /// Time spent in it, milliseconds.
    pub ms: f64,
}

/// A snapshot of [`InstanceStats`], as shown by the API.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    /// The instance's id.
    pub id: u64,
    /// The function version it runs.
    pub version: u64,
    /// starting, busy, idle, freezing, frozen or stopping.
    pub state: &'static str,
    /// How it was initialized: `snapshot`, `instance` or `none`.
    pub init: &'static str,
    /// Requests served.
    pub requests: u64,
    /// Requests it serves now (a WASI 0.3 instance serves up to
    /// `instance_concurrency` at once).
    pub in_flight: u32,
    /// Linear memory in use, bytes.
    pub memory_bytes: u64,
    /// Host resources the instance holds between requests (should stay flat).
    pub resources: u64,
    /// Time spent serving requests, milliseconds.
    pub busy_ms: u64,
    /// Calls of `init` (per instance), `pre-freeze` and `pre-stop`.
    pub hooks: HookViews,
    /// Age in milliseconds.
    pub age_ms: u64,
    /// Start time, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Last request's end, milliseconds since the Unix epoch (0: none yet).
    pub last_used_at_ms: u64,
    /// Invocations, busy, frozen and hook time, compute units.
    pub metering: MeterView,
    /// Its GPU calls (`floe:function/gpu`).
    pub gpu: crate::gpu::GpuUsageView,
}

/// Hook calls of one instance.
#[derive(Debug, Clone, Serialize)]
pub struct HookViews {
    /// `init` (only with `preinit = "instance"`).
    pub init: HookView,
    /// `pre-freeze`.
    pub pre_freeze: HookView,
    /// `pre-stop`.
    pub pre_stop: HookView,
}

fn slot(hook: Hook) -> usize {
    match hook {
        Hook::Init => 0,
        Hook::PreFreeze => 1,
        Hook::PreStop => 2,
    }
}

impl InstanceStats {
    pub(crate) fn new(id: u64, version: u64, init: &'static str, memory_mib: u64) -> Self {
        Self {
            id,
            version,
            init,
            started: Instant::now(),
            started_at_ms: unix_ms(),
            state: AtomicU8::new(InstanceState::Starting as u8),
            last_used_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            memory: AtomicU64::new(0),
            resources: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            hooks: Default::default(),
            memory_mib,
            meter: Meter::default(),
            parked_since: AtomicU64::new(NOT_PARKED),
            gpu: Arc::default(),
            in_flight: AtomicU32::new(0),
        }
    }

    /// What the instance is doing.
    pub fn state(&self) -> InstanceState {
        InstanceState::from_u8(self.state.load(Relaxed))
    }

    pub(crate) fn set_state(&self, state: InstanceState) {
        self.state.store(state as u8, Relaxed);
    }

    pub(crate) fn record_request(&self, busy: Duration, memory: usize, resources: usize) {
        self.requests.fetch_add(1, Relaxed);
        self.busy_ns.fetch_add(busy.as_nanos() as u64, Relaxed);
        self.memory.store(memory as u64, Relaxed);
        self.resources.store(resources as u64, Relaxed);
        self.last_used_ms.store(unix_ms(), Relaxed);
    }

    pub(crate) fn record_hook(&self, hook: Hook, took: Duration, failed: bool) {
        let h = &self.hooks[slot(hook)];
        h.calls.fetch_add(1, Relaxed);
        h.ns.fetch_add(took.as_nanos() as u64, Relaxed);
        if failed {
            h.failures.fetch_add(1, Relaxed);
        }
    }

    /// The instance was parked between requests.
    pub(crate) fn parked(&self) {
        let now = self.started.elapsed().as_nanos() as u64;
        self.parked_since.store(now.min(NOT_PARKED - 1), Relaxed);
    }

    /// The instance left the idle list: how long it was parked.
    pub(crate) fn unparked(&self) -> Option<Duration> {
        let since = self.parked_since.swap(NOT_PARKED, Relaxed);
        (since != NOT_PARKED).then(|| {
            let now = self.started.elapsed().as_nanos() as u64;
            Duration::from_nanos(now.saturating_sub(since))
        })
    }

    pub(crate) fn set_memory(&self, memory: usize) {
        self.memory.store(memory as u64, Relaxed);
    }

    /// A snapshot for the API.
    pub fn view(&self) -> InstanceView {
        InstanceView {
            id: self.id,
            version: self.version,
            state: self.state().name(),
            init: self.init,
            requests: self.requests.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            memory_bytes: self.memory.load(Relaxed),
            resources: self.resources.load(Relaxed),
            busy_ms: self.busy_ns.load(Relaxed) / 1_000_000,
            hooks: HookViews {
                init: self.hooks[0].view(),
                pre_freeze: self.hooks[1].view(),
                pre_stop: self.hooks[2].view(),
            },
            age_ms: self.started.elapsed().as_millis() as u64,
            started_at_ms: self.started_at_ms,
            last_used_at_ms: self.last_used_ms.load(Relaxed),
            metering: {
                let mut m = self.meter.view();
                // The time parked so far, while it is.
                let since = self.parked_since.load(Relaxed);
                if since != NOT_PARKED {
                    let now = self.started.elapsed().as_nanos() as u64;
                    m.frozen_ms += now.saturating_sub(since) as f64 / 1e6;
                }
                m
            },
            gpu: self.gpu.view(),
        }
    }
}
