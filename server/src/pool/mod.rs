//! Per-function instance pools.
//!
//! A [`Pool`] serves one version of one function with one set of settings. It
//! keeps idle instances for reuse (most recently used first) and starts new
//! ones while it is under `max_instances` and the server-wide
//! [`InstanceBudget`] allows. When neither is possible a request waits in a
//! FIFO queue, bounded in length (`max_queue`) and time (`queue_timeout`), for
//! an instance to come back or a slot to free up; past either bound it fails
//! with [`InvokeError::Overloaded`].
//!
//! Lifecycle hooks:
//! - `pre-freeze` runs when an instance comes back and no request waits for
//!   it, on a task of its own (never on a request's path), before the
//!   instance is parked. Requests that queue for an instance get it directly,
//!   without a freeze in between.
//! - `pre-stop` runs before an instance is dropped for any reason but a
//!   failure (trap, timeout, limit): idle TTL, `max_requests_per_instance`,
//!   `reuse = false`, eviction, redeploy, reconfiguration, delete, shutdown.
//!   Also on a task of its own; the server's shutdown waits for these tasks.
//!
//! Cold starts coalesce: a request that finds no idle instance while one is
//! on its way (being initialized per instance, or running `pre-freeze`) and
//! not yet claimed by another request waits for it instead of starting one
//! more. If the instance fails to arrive, its claimants try again; a claim
//! that outlasts `queue_timeout` starts an instance of its own.
//!
//! Invariants:
//! - An instance belongs to exactly one pool, so instances of different
//!   functions or versions never share anything.
//! - Every live instance holds one permit of its pool's semaphore and one of
//!   the budget's; dropping the instance frees both.
//! - An instance whose call failed (trap, timeout, memory limit), that hit a
//!   limit, that served `max_requests_per_instance`, that belongs to a
//!   `reuse = false` function or to a retired pool is stopped, never reused.
//! - The idle list, the wait queue and the arriving/claim counts share one
//!   lock, so an instance coming back is either handed to the oldest waiter
//!   or parked, never stranded.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the pool: release, park, stop, views |
//! | `acquire.rs` | lending an instance, the wait queue and its waiters |
//! | `budget.rs` | the server-wide instance budget and reserved floors |
//! | `scale.rs` | floors, prewarming, idle reaping, eviction, retirement |
//! | `load.rs` | the load the autoscaler reads and the target it sets |
//! | `instance.rs`, `lease.rs`, `body.rs`, `stats.rs` | one instance, one lease, a guest's body, live figures |

mod acquire;
mod body;
mod budget;
mod instance;
mod lease;
mod load;
mod scale;
mod shared;
mod stats;

pub use crate::metrics::{Hook, PoolCounts};
pub use crate::runtime::InvokeError;
pub use body::{BodyError, GuestBody};
pub(crate) use budget::BudgetPermit;
pub use budget::InstanceBudget;
pub use lease::{CallOutcome, EventReply, Lease};
pub use load::{Load, Policy, Target};
pub use stats::{HookView, HookViews, InstanceState, InstanceStats, InstanceView};

use crate::config::FunctionSettings;
use crate::engine::{FloeEngine, Prepared};
use crate::metrics::FunctionMetrics;
use instance::{Instance, Whole};
use parking_lot::Mutex;
use shared::{Job, Shared};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::task::TaskTracker;

/// How long an overloaded client is told to wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a pool runs: a prepared component, and how its `init` runs.
#[derive(Debug)]
pub struct Runnable {
    /// The linked component with its exports located.
    pub prepared: Prepared,
    /// `init` runs in each instance before its first request.
    pub init_per_instance: bool,
    /// The component serving is a snapshot taken after `init`.
    pub snapshot: bool,
}

impl Runnable {
    /// How instances of this function are initialized: `snapshot`,
    /// `instance` or `none`.
    pub fn init_mode(&self) -> &'static str {
        if self.snapshot {
            "snapshot"
        } else if self.init_per_instance {
            "instance"
        } else {
            "none"
        }
    }
}

/// What all pools of a server share.
#[derive(Debug)]
pub struct PoolContext {
    /// The engine instances are made with.
    pub engine: Arc<FloeEngine>,
    /// The server-wide instance budget.
    pub budget: Arc<InstanceBudget>,
    /// Hook tasks (`pre-freeze`, `pre-stop`); shutdown waits for them.
    pub background: TaskTracker,
}

/// Instances of one function version, with one set of settings.
pub struct Pool {
    /// What the server's pools share.
    ctx: Arc<PoolContext>,
    /// The function's metrics (all its versions).
    metrics: Arc<FunctionMetrics>,
    /// One permit per live instance, `max_instances` in all.
    slots: Arc<Semaphore>,
    function: Arc<str>,
    version: u64,
    runnable: Arc<Runnable>,
    settings: FunctionSettings,
    /// The function's outbound HTTP policy.
    outbound: Arc<crate::host::outbound::FunctionOutbound>,
    /// Its variables and secrets, opened (`wasi:config/store`).
    config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
    state: Mutex<PoolState>,
    instances: Mutex<BTreeMap<u64, Arc<InstanceStats>>>,
    /// Tells claimants that an instance they waited for will not arrive.
    arrival_failed: Notify,
    queued: AtomicU32,
    /// Requests being served.
    in_flight: AtomicU32,
    /// The most requests in flight and queued at once since the autoscaler
    /// last looked.
    peak: AtomicU32,
    /// Instances the autoscaler keeps warm (its target).
    floor: AtomicU32,
    /// The autoscaler's last decision, for the API.
    target: Mutex<Option<Target>>,
    retired: AtomicBool,
    /// Requests one instance serves at once (more than 1 only for WASI
    /// 0.3 functions).
    concurrency: u32,
    started: AtomicU64,
    stopped: AtomicU64,
    /// After a reserved instance failed to start, no more are started ahead
    /// of demand until then.
    prewarm_paused_until: Mutex<Option<Instant>>,
    /// Why this version gets a fresh instance per request although `reuse`
    /// is unset: one of its instances answered its first request and not a
    /// later one.
    fresh: Mutex<Option<String>>,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Instance>,
    waiters: VecDeque<oneshot::Sender<Instance>>,
    /// Instances on their way: starting with a per-instance `init`, or
    /// running `pre-freeze`.
    arriving: u32,
    /// Waiters counting on one of those.
    claims: u32,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.set_floor(0);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("function", &self.function)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for `function` at `version`.
    pub fn new(
        function: Arc<str>,
        version: u64,
        runnable: Arc<Runnable>,
        settings: FunctionSettings,
        config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
        ctx: Arc<PoolContext>,
        metrics: Arc<FunctionMetrics>,
    ) -> Arc<Self> {
        let outbound = ctx
            .engine
            .function_outbound(&function, &settings, Some(metrics.clone()));
        let concurrency = runnable
            .prepared
            .concurrency(settings.instance_concurrency)
            .unwrap_or(1);
        let pool = Arc::new(Self {
            concurrency,
            slots: Arc::new(Semaphore::new(settings.max_instances as usize)),
            outbound,
            config,
            function,
            version,
            runnable,
            settings,
            ctx,
            metrics,
            state: Mutex::default(),
            instances: Mutex::default(),
            arrival_failed: Notify::new(),
            queued: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            peak: AtomicU32::new(0),
            floor: AtomicU32::new(0),
            target: Mutex::new(None),
            retired: AtomicBool::new(false),
            started: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            prewarm_paused_until: Mutex::new(None),
            fresh: Mutex::new(None),
        });
        pool.ctx.budget.attach(&pool);
        pool
    }

    /// The server's `[limits]` (request bodies are read under them).
    pub fn limits(&self) -> &crate::config::LimitsConfig {
        self.ctx.engine.limits()
    }

    /// Data-plane hops a request may have made before reaching this
    /// function (`[outbound] hop_limit`).
    pub fn hop_limit(&self) -> u32 {
        self.ctx.engine.outbound().config().hop_limit
    }

    /// The function's name.
    pub fn function(&self) -> &Arc<str> {
        &self.function
    }

    /// The version served.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The settings in force.
    pub fn settings(&self) -> &FunctionSettings {
        &self.settings
    }

    /// What the pool runs.
    pub fn runnable(&self) -> &Arc<Runnable> {
        &self.runnable
    }

    /// Whether instances serve more than one request (in turn).
    fn reuses(&self) -> bool {
        self.settings.reuse.unwrap_or(true) && self.fresh.lock().is_none()
    }

    /// Why this version gets a fresh instance per request although `reuse`
    /// is unset, when it does.
    pub fn fresh_reason(&self) -> Option<String> {
        self.fresh.lock().clone()
    }

    /// An instance answered its first request(s) and returned without a
    /// response on a later one: the component serves one request per
    /// instance. Unless the operator set `reuse`, the version switches to a
    /// fresh instance per request (the instances that served are stopped).
    /// Returns whether it did (now or before).
    pub(crate) fn answers_once(self: &Arc<Self>, instance: u64) -> bool {
        if self.settings.reuse.is_some() {
            return false;
        }
        {
            let mut fresh = self.fresh.lock();
            if fresh.is_some() {
                return true;
            }
            *fresh = Some(format!(
                "instance {instance} answered its first request and returned without a response on a later one: \
                 this component answers one request per instance (as plain componentize-js builds do), \
                 so each request gets a fresh instance (set `reuse` to decide otherwise)"
            ));
        }
        tracing::warn!(function = %self.function, version = self.version, instance, "the version answers one request per instance: switched to a fresh instance per request");
        let used: Vec<Instance> = {
            let mut state = self.state.lock();
            let (used, kept) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|i| matches!(i, Instance::Whole(w) if w.served > 0));
            state.idle = kept;
            used
        };
        for instance in used {
            self.stop(
                instance,
                "the version answers one request per instance",
                false,
            );
        }
        true
    }

    /// Requests one instance serves at once.
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Whether instances serve several requests at once (WASI 0.3).
    fn shares(&self) -> bool {
        self.runnable.prepared.is_p3()
    }

    /// Requests one new instance can take at once: its slots (one when
    /// instances are not reused).
    fn slots_per_instance(&self) -> u32 {
        if self.shares() && self.reuses() {
            self.concurrency
        } else {
            1
        }
    }

    /// What a start announces as arriving, for the requests behind it to
    /// wait for rather than start more: a WASI 0.3 instance's slots but the
    /// one its starter takes (`for_request`), a WASI 0.2 instance with a
    /// per-instance `init` (which the starter takes: they wait for it to
    /// come back).
    fn arrivals(&self, for_request: bool) -> u32 {
        if !self.shares() {
            return 1;
        }
        let slots = self.slots_per_instance();
        if for_request {
            slots
                .saturating_sub(1)
                .max(u32::from(self.runnable.init_per_instance))
        } else {
            slots
        }
    }

    /// Takes a slot of a WASI 0.3 instance back after its request.
    pub(crate) fn release_slot(self: &Arc<Self>, shared: Shared) {
        self.in_flight.fetch_sub(1, Relaxed);
        let core = &shared.core;
        let left = core.stats.in_flight.fetch_sub(1, Relaxed).saturating_sub(1);
        let served = core.served.fetch_add(1, Relaxed) + 1;
        if left == 0 && core.open() {
            core.stats.set_state(InstanceState::Idle);
        }
        let retire = if !core.open() {
            // The driver may be waiting for this one to end.
            core.close();
            Some("stopped or draining")
        } else if !self.reuses() {
            Some("reuse is off")
        } else if self
            .settings
            .requests_per_instance()
            .is_some_and(|max| served >= max)
        {
            Some("served max_requests_per_instance")
        } else {
            None
        };
        if let Some(reason) = retire {
            let id = shared.id();
            if core.open() {
                tracing::debug!(function = %self.function, version = self.version, instance = id, reason, "instance drains");
                core.close();
            }
            drop(shared);
            self.purge_slots(id);
            return;
        }
        // `pre-freeze` once, when the last request in flight ends.
        self.park_slot(shared, left == 0);
    }

    /// Takes the idle slots of a WASI 0.3 instance out of the idle list: it
    /// takes no more requests.
    pub(crate) fn purge_slots(&self, id: u64) {
        let purged: Vec<Instance> = {
            let mut state = self.state.lock();
            let (gone, kept) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|i| matches!(i, Instance::Shared(s) if s.id() == id));
            state.idle = kept;
            gone
        };
        // Dropped outside the lock: the last slot ends the driver.
        drop(purged);
    }

    /// Takes the next instance (or slot) to lend out of the idle list,
    /// skipping slots of instances that take no more requests.
    fn pop_idle(state: &mut PoolState) -> Option<Instance> {
        while let Some(instance) = state.idle.pop() {
            match &instance {
                Instance::Shared(s) if !s.core.open() => continue,
                _ => return Some(instance),
            }
        }
        None
    }

    /// Parks the other slots of a WASI 0.3 instance just started (for
    /// waiting requests first).
    fn spread(self: &Arc<Self>, first: &Instance, count: u32) {
        let count = count.min(self.slots_per_instance().saturating_sub(1));
        if let Instance::Shared(shared) = first {
            for _ in 0..count {
                self.park(Instance::Shared(shared.another()), false);
            }
        }
    }

    /// Takes an instance back after a call.
    pub(crate) fn release(self: &Arc<Self>, instance: Whole, outcome: &CallOutcome) {
        self.in_flight.fetch_sub(1, Relaxed);
        let retire = match outcome {
            CallOutcome::Failed(_) => Some("call failed"),
            CallOutcome::Completed if instance.store.data().limiter.limit_hit() => {
                Some("hit a limit")
            }
            CallOutcome::Completed if !self.reuses() => Some("reuse is off"),
            CallOutcome::Completed if instance.holds_resources => {
                Some("held host resources after its call")
            }
            CallOutcome::Completed
                if self
                    .settings
                    .requests_per_instance()
                    .is_some_and(|max| instance.served >= max) =>
            {
                Some("served max_requests_per_instance")
            }
            CallOutcome::Completed => None,
        };
        if let Some(reason) = retire {
            let failed = matches!(outcome, CallOutcome::Failed(_));
            self.stop(Instance::Whole(Box::new(instance)), reason, failed);
            return;
        }
        self.park(Instance::Whole(Box::new(instance)), true);
    }

    /// Hands `instance` to the oldest waiter, or (after `pre-freeze`, when
    /// `freeze` and the function has one) parks it.
    fn park(self: &Arc<Self>, instance: Instance, freeze: bool) {
        match instance {
            Instance::Whole(whole) => self.park_whole(*whole, freeze),
            // A slot asks for `pre-freeze` only from `release_slot`, which
            // knows whether it was the last in flight.
            Instance::Shared(shared) => self.park_slot(shared, false),
        }
    }

    /// Hands a slot to the oldest waiter or parks it; the last slot of an
    /// instance to come back has it run `pre-freeze` (in its driver, before
    /// any request sent after it).
    fn park_slot(self: &Arc<Self>, mut shared: Shared, freeze: bool) {
        let mut state = self.state.lock();
        if self.retired.load(Relaxed) || !shared.core.open() {
            drop(state);
            let id = shared.id();
            shared.core.close();
            drop(shared);
            self.purge_slots(id);
            return;
        }
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.send(Instance::Shared(shared)) {
                Ok(()) => return,
                Err(Instance::Shared(back)) => shared = back,
                Err(other) => {
                    // Only this slot was sent.
                    drop(other);
                    return;
                }
            }
        }
        let core = shared.core.clone();
        if freeze && core.has_pre_freeze {
            core.stats.set_state(InstanceState::Freezing);
            shared.send(Job::Hook {
                hook: Hook::PreFreeze,
                timeout: self.settings.hook_timeout.0,
            });
        }
        state.idle.push(Instance::Shared(shared));
        drop(state);
        self.ctx.budget.announce();
    }

    fn park_whole(self: &Arc<Self>, instance: Whole, freeze: bool) {
        if !self.reuses() && instance.served > 0 {
            self.stop(
                Instance::Whole(Box::new(instance)),
                "instances are not reused",
                false,
            );
            return;
        }
        let mut state = self.state.lock();
        // Checked under the lock that `retire` empties the idle list under,
        // so an instance never lands in a retired pool's idle list.
        if self.retired.load(Relaxed) {
            drop(state);
            self.stop(Instance::Whole(Box::new(instance)), "pool retired", false);
            return;
        }
        let mut boxed = Box::new(instance);
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.send(Instance::Whole(boxed)) {
                Ok(()) => return,
                Err(Instance::Whole(back)) => boxed = back,
                Err(other) => {
                    drop(other);
                    return;
                }
            }
        }
        let mut instance = *boxed;
        if freeze && instance.has_pre_freeze() {
            state.arriving += 1;
            drop(state);
            instance.stats.set_state(InstanceState::Freezing);
            let pool = self.clone();
            self.ctx.background.spawn(async move {
                let timeout = pool.settings.hook_timeout.0;
                let result = instance.call_hook(Hook::PreFreeze, timeout).await;
                pool.state.lock().arriving -= 1;
                match result {
                    Ok(()) => {
                        instance.stats.set_state(InstanceState::Frozen);
                        pool.park_whole(instance, false);
                    }
                    Err(e) => {
                        tracing::warn!(function = %pool.function, instance = instance.id(), error = %e, "pre-freeze failed; the instance is discarded");
                        pool.arrival_failed.notify_waiters();
                        pool.stop(Instance::Whole(Box::new(instance)), "pre-freeze failed", true);
                    }
                }
            });
            return;
        }
        if freeze {
            // No pre-freeze to run: parked as it is. (After a pre-freeze the
            // freeze task has marked it frozen.)
            instance.stats.set_state(InstanceState::Idle);
        }
        instance.stats.parked();
        state.idle.push(Instance::Whole(Box::new(instance)));
        drop(state);
        self.ctx.budget.announce();
    }

    /// Stops `instance`: after `pre-stop`, on a task of its own, unless it
    /// `failed` (trapped or overran), in which case it is dropped at once.
    fn stop(self: &Arc<Self>, instance: Instance, reason: &'static str, failed: bool) {
        let mut instance = match instance {
            Instance::Whole(whole) => *whole,
            Instance::Shared(shared) => {
                // The instance's driver runs `pre-stop` when its last slot
                // is gone.
                let id = shared.id();
                shared.core.close();
                drop(shared);
                self.purge_slots(id);
                return;
            }
        };
        instance.unparked();
        instance.stats.set_state(InstanceState::Stopping);
        tracing::debug!(
            function = %self.function,
            version = self.version,
            instance = instance.id(),
            served = instance.served,
            reason,
            "instance stopped"
        );
        if failed || !instance.has_pre_stop() {
            drop(instance);
            return;
        }
        let pool = self.clone();
        self.ctx.background.spawn(async move {
            let timeout = pool.settings.hook_timeout.0;
            if let Err(e) = instance.call_hook(Hook::PreStop, timeout).await {
                tracing::warn!(function = %pool.function, instance = instance.id(), error = %e, "pre-stop failed");
            }
            drop(instance);
        });
    }

    pub(crate) fn register(&self, stats: &Arc<InstanceStats>) {
        self.instances.lock().insert(stats.id, stats.clone());
    }

    /// Takes out an instance that never started (not counted as stopped).
    pub(crate) fn forget(&self, id: u64) {
        self.instances.lock().remove(&id);
    }

    pub(crate) fn unregister(&self, id: u64) {
        if self.instances.lock().remove(&id).is_some() {
            self.stopped.fetch_add(1, Relaxed);
        }
    }

    /// Instances by state.
    pub fn states(&self) -> BTreeMap<&'static str, u32> {
        let mut by_state: BTreeMap<&'static str, u32> =
            InstanceState::ALL.iter().map(|s| (s.name(), 0)).collect();
        for stats in self.instances.lock().values() {
            *by_state.entry(stats.state().name()).or_default() += 1;
        }
        by_state
    }

    /// Instance counts.
    pub fn counts(&self) -> PoolCounts {
        let idle = {
            let state = self.state.lock();
            let mut shared: Vec<u64> = state
                .idle
                .iter()
                .filter_map(|i| match i {
                    Instance::Shared(s) if s.core.in_flight() == 0 && s.core.open() => Some(s.id()),
                    _ => None,
                })
                .collect();
            shared.sort_unstable();
            shared.dedup();
            let whole = state
                .idle
                .iter()
                .filter(|i| matches!(i, Instance::Whole(_)))
                .count();
            (whole + shared.len()) as u32
        };
        let (live, busy) = {
            let instances = self.instances.lock();
            let busy = instances
                .values()
                .filter(|s| s.state() == InstanceState::Busy)
                .count();
            (instances.len() as u32, busy as u32)
        };
        PoolCounts {
            live,
            idle,
            busy,
            queued: self.queued.load(Relaxed),
            started: self.started.load(Relaxed),
            stopped: self.stopped.load(Relaxed),
        }
    }

    /// A view of every live instance.
    pub fn instances(&self) -> Vec<InstanceView> {
        self.instances.lock().values().map(|s| s.view()).collect()
    }

    /// The metering of at most `limit` live instances, by id.
    pub fn meterings(&self, limit: usize) -> Vec<(u64, crate::metrics::MeterView)> {
        self.instances
            .lock()
            .values()
            .take(limit)
            .map(|s| (s.id, s.meter.view()))
            .collect()
    }
}

/// Decrements a counter when dropped.
pub(crate) struct CountGuard<'a>(pub(crate) &'a AtomicU32);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
