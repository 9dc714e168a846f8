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

mod body;
mod error;
mod instance;
mod lease;
mod stats;

pub use body::{BodyError, GuestBody};
pub use error::InvokeError;
pub use instance::Hook;
pub use lease::{CallOutcome, EventReply, Lease};
pub use stats::{HookView, HookViews, InstanceState, InstanceStats, InstanceView};

/// Pieces of instance handling that the deploy-time `init` run shares.
pub(crate) mod instance_support {
    pub(crate) use super::instance::{Phase, classify, new_store, next_instance_id, until};
}

use crate::config::FunctionSettings;
use crate::engine::{FloeEngine, Prepared};
use crate::metrics::FunctionMetrics;
use crate::scaling::policy::{Load, Target};
use instance::{Instance, Permits};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
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

/// The server-wide instance budget (`limits.max_instances_total`), shared by
/// all pools.
///
/// Reserved instances come first: a pool may take a slot only while enough
/// stay free for every other pool to reach its reservation floor (the
/// autoscaler's target), so one function at its burst cannot take the slots
/// another function's reserved instances need. When the budget runs out, an
/// idle instance of another pool that is above its floor is stopped to make
/// room before anyone has to wait.
#[derive(Debug)]
pub struct InstanceBudget {
    permits: Arc<Semaphore>,
    total: u32,
    pools: Mutex<Vec<Weak<Pool>>>,
    /// The pools' floors added up: while more slots than this are free,
    /// nobody's reservation is at risk and the check is skipped.
    floors: AtomicU32,
    /// Requests waiting for a slot; only then are changes announced.
    waiting: AtomicU32,
    /// An instance was parked or stopped, or a floor went down.
    changed: Notify,
}

/// One slot of the server-wide budget, held by a live instance.
#[derive(Debug)]
pub(crate) struct BudgetPermit {
    permit: Option<OwnedSemaphorePermit>,
    budget: Arc<InstanceBudget>,
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        // Give the slot back before telling the waiters.
        drop(self.permit.take());
        self.budget.announce();
    }
}

impl InstanceBudget {
    /// A budget of `total` instances.
    pub fn new(total: u32) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            pools: Mutex::default(),
            floors: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            changed: Notify::new(),
        })
    }

    /// Instances alive on the server.
    pub fn in_use(&self) -> u32 {
        self.total - self.permits.available_permits() as u32
    }

    /// The server's instance budget.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Every pool that still exists (active or retired with live instances).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        lock(&self.pools).iter().filter_map(Weak::upgrade).collect()
    }

    fn attach(&self, pool: &Arc<Pool>) {
        let mut pools = lock(&self.pools);
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// Slots the other pools still need to reach their floors.
    fn reserved_for_others(&self, asking: &Pool) -> u32 {
        self.pools()
            .iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), asking))
            .map(|p| p.shortfall())
            .sum()
    }

    /// Whether `asking` may take one more slot now.
    fn may_take(&self, asking: &Pool) -> bool {
        let free = self.permits.available_permits() as u32;
        free > 0 && (free > self.floors.load(Relaxed) || free > self.reserved_for_others(asking))
    }

    fn take(self: &Arc<Self>, asking: &Pool) -> Option<BudgetPermit> {
        if !self.may_take(asking) {
            return None;
        }
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(BudgetPermit {
            permit: Some(permit),
            budget: self.clone(),
        })
    }

    fn try_acquire(self: &Arc<Self>, asking: &Pool) -> Option<BudgetPermit> {
        if let Some(p) = self.take(asking) {
            return Some(p);
        }
        // Make room: stop the least recently used idle instance of another
        // pool, one above its floor.
        let victim = self
            .pools()
            .into_iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), asking) && p.live() > p.floor())
            .filter_map(|p| p.oldest_idle().map(|t| (t, p)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, p)| p);
        if let Some(pool) = victim {
            pool.evict_oldest_idle();
        }
        self.take(asking)
    }

    /// Waits for a slot: one freed, or one made by stopping an instance that
    /// another pool parks meanwhile.
    async fn acquire(self: &Arc<Self>, asking: &Pool) -> Option<BudgetPermit> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.waiting.fetch_add(1, Relaxed);
            let _waiting = CountGuard(&self.waiting);
            if let Some(permit) = self.try_acquire(asking) {
                return Some(permit);
            }
            changed.await;
        }
    }

    /// Tells requests waiting for a slot to look again.
    fn announce(&self) {
        if self.waiting.load(Relaxed) > 0 {
            self.changed.notify_waiters();
        }
    }

    fn floor_changed(&self, from: u32, to: u32) {
        if to >= from {
            self.floors.fetch_add(to - from, Relaxed);
        } else {
            self.floors.fetch_sub(from - to, Relaxed);
            self.announce();
        }
    }
}

/// Instances of one function version, with one set of settings.
pub struct Pool {
    function: Arc<str>,
    version: u64,
    runnable: Arc<Runnable>,
    settings: FunctionSettings,
    ctx: Arc<PoolContext>,
    metrics: Arc<FunctionMetrics>,
    slots: Arc<Semaphore>,
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
    started: AtomicU64,
    stopped: AtomicU64,
    /// After a reserved instance failed to start, no more are started ahead
    /// of demand until then.
    prewarm_paused_until: Mutex<Option<Instant>>,
}

/// How long prewarming pauses after a reserved instance failed to start.
const PREWARM_BACKOFF: Duration = Duration::from_secs(1);

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

/// Counts of a pool's instances.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PoolCounts {
    /// Alive (in any state).
    pub live: u32,
    /// Parked, waiting for a request.
    pub idle: u32,
    /// Serving a request.
    pub busy: u32,
    /// Requests waiting for an instance.
    pub queued: u32,
    /// Instances started so far.
    pub started: u64,
    /// Instances stopped so far.
    pub stopped: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// A pool for `function` at `version`.
    pub fn new(
        function: Arc<str>,
        version: u64,
        runnable: Arc<Runnable>,
        settings: FunctionSettings,
        ctx: Arc<PoolContext>,
        metrics: Arc<FunctionMetrics>,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            slots: Arc::new(Semaphore::new(settings.max_instances as usize)),
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
        });
        pool.ctx.budget.attach(&pool);
        pool
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

    /// Lends an instance: an idle one, one on its way, a new one, or the
    /// first to come back, waiting at most `queue_timeout` (and never past
    /// `deadline`).
    pub async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Lease, InvokeError> {
        let wait_until = deadline.min(after(Instant::now(), self.settings.queue_timeout.0));
        loop {
            // A slow start (one that runs `init`) is announced as arriving
            // in the same step as the decision to make it, so that a request
            // right behind this one waits for it rather than starting another.
            let announce = self.runnable.init_per_instance;
            let claim = {
                let mut state = lock(&self.state);
                if let Some(instance) = state.idle.pop() {
                    return Ok(self.lend(instance));
                }
                // An instance on its way that nobody counts on yet serves
                // this request: no second cold start.
                let claim = state.arriving > state.claims;
                if claim {
                    state.claims += 1;
                } else if announce {
                    state.arriving += 1;
                }
                claim
            };
            if !claim {
                // Never under the state lock: the budget may stop another
                // pool's instance to make room, which takes that pool's lock.
                if let Some(permits) = self.try_permits() {
                    return self.start(permits, deadline, announce).await;
                }
                if announce {
                    lock(&self.state).arriving -= 1;
                    self.arrival_failed.notify_waiters();
                }
            }
            let failed = self.arrival_failed.notified();
            tokio::pin!(failed);
            failed.as_mut().enable();
            let mut waiter = {
                let mut state = lock(&self.state);
                let mut waiter = Waiter::new(self, claim, &mut state);
                // An instance may have come back since we looked.
                if let Some(instance) = state.idle.pop() {
                    drop(state);
                    drop(waiter);
                    return Ok(self.lend(instance));
                }
                if self.queued.load(Relaxed) > self.settings.max_queue {
                    drop(state);
                    drop(waiter);
                    return Err(self.overloaded("queue full"));
                }
                // Waiters that gave up leave closed senders behind.
                state.waiters.retain(|w| !w.is_closed());
                let (tx, rx) = oneshot::channel();
                state.waiters.push_back(tx);
                waiter.rx = Some(rx);
                waiter
            };
            let woken = match waiter.rx.as_mut() {
                None => Woken::Timeout,
                Some(rx) => tokio::select! {
                    biased;
                    instance = rx => Woken::Instance(instance.ok()),
                    permits = self.wait_permits(), if !claim => Woken::Permits(permits),
                    () = &mut failed, if claim => Woken::Retry,
                    _ = tokio::time::sleep_until(wait_until.into()) => Woken::Timeout,
                },
            };
            // From here on, an instance coming back goes to the next waiter;
            // one that came meanwhile is taken (and any permits given back).
            if let Some(instance) = waiter.stop_waiting() {
                return Ok(self.lend(instance));
            }
            match woken {
                Woken::Instance(Some(instance)) => return Ok(self.lend(instance)),
                Woken::Permits(Some(permits)) => {
                    return self.start(permits, deadline, false).await;
                }
                Woken::Retry => continue,
                // A claim that waited out the queue timeout stops counting on
                // the instance and starts one of its own, if there is room.
                Woken::Timeout if claim => match self.try_permits() {
                    Some(permits) => return self.start(permits, deadline, false).await,
                    None => return Err(self.overloaded("queue timeout")),
                },
                Woken::Timeout => return Err(self.overloaded("queue timeout")),
                Woken::Instance(None) | Woken::Permits(None) => {
                    return Err(self.overloaded("pool retired"));
                }
            }
        }
    }

    /// Lends `instance` to a request.
    fn lend(self: &Arc<Self>, instance: Instance) -> Lease {
        instance.unparked();
        let in_flight = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.note_demand(in_flight);
        Lease::new(instance, self.clone())
    }

    /// Records the demand (in flight and waiting) for the autoscaler.
    fn note_demand(&self, in_flight: u32) {
        let demand = in_flight.saturating_add(self.queued.load(Relaxed));
        self.peak.fetch_max(demand, Relaxed);
    }

    pub(crate) fn overloaded(&self, reason: &'static str) -> InvokeError {
        InvokeError::Overloaded {
            function: self.function.to_string(),
            reason,
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }

    fn try_permits(&self) -> Option<Permits> {
        let function = self.slots.clone().try_acquire_owned().ok()?;
        let server = self.ctx.budget.try_acquire(self)?;
        Some(Permits {
            _function: function,
            _server: server,
        })
    }

    async fn wait_permits(&self) -> Option<Permits> {
        let function = self.slots.clone().acquire_owned().await.ok()?;
        let server = self.ctx.budget.acquire(self).await?;
        Some(Permits {
            _function: function,
            _server: server,
        })
    }

    /// Starts an instance for a request. `announced`: the start was counted
    /// as arriving (claimants may be waiting for it).
    async fn start(
        self: &Arc<Self>,
        permits: Permits,
        deadline: Instant,
        announced: bool,
    ) -> Result<Lease, InvokeError> {
        let began = Instant::now();
        let started = Instance::start(self, permits, deadline).await;
        if started.is_ok() {
            self.metrics.record_instance_start(began.elapsed());
        }
        if announced {
            lock(&self.state).arriving -= 1;
        }
        match started {
            Ok(instance) => {
                self.started.fetch_add(1, Relaxed);
                tracing::debug!(function = %self.function, version = self.version, instance = instance.id(), "instance started");
                Ok(self.lend(instance))
            }
            Err(e) => {
                if announced {
                    self.arrival_failed.notify_waiters();
                }
                Err(e)
            }
        }
    }

    /// Takes an instance back after a call.
    pub(crate) fn release(self: &Arc<Self>, instance: Instance, outcome: &CallOutcome) {
        self.in_flight.fetch_sub(1, Relaxed);
        let retire = match outcome {
            CallOutcome::Failed(_) => Some("call failed"),
            CallOutcome::Completed if instance.store.data().limiter.limit_hit() => {
                Some("hit a limit")
            }
            CallOutcome::Completed if !self.settings.reuse => Some("reuse is off"),
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
            self.stop(instance, reason, failed);
            return;
        }
        self.park(instance, true);
    }

    /// Hands `instance` to the oldest waiter, or (after `pre-freeze`, when
    /// `freeze` and the function has one) parks it.
    fn park(self: &Arc<Self>, mut instance: Instance, freeze: bool) {
        let mut state = lock(&self.state);
        // Checked under the lock that `retire` empties the idle list under,
        // so an instance never lands in a retired pool's idle list.
        if self.retired.load(Relaxed) {
            drop(state);
            self.stop(instance, "pool retired", false);
            return;
        }
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.send(instance) {
                Ok(()) => return,
                Err(back) => instance = back,
            }
        }
        if freeze && instance.has_pre_freeze() {
            state.arriving += 1;
            drop(state);
            instance.stats.set_state(InstanceState::Freezing);
            let pool = self.clone();
            self.ctx.background.spawn(async move {
                let timeout = pool.settings.hook_timeout.0;
                let result = instance.call_hook(Hook::PreFreeze, timeout).await;
                lock(&pool.state).arriving -= 1;
                match result {
                    Ok(()) => {
                        instance.stats.set_state(InstanceState::Frozen);
                        pool.park(instance, false);
                    }
                    Err(e) => {
                        tracing::warn!(function = %pool.function, instance = instance.id(), error = %e, "pre-freeze failed; the instance is discarded");
                        pool.arrival_failed.notify_waiters();
                        pool.stop(instance, "pre-freeze failed", true);
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
        state.idle.push(instance);
        drop(state);
        self.ctx.budget.announce();
    }

    /// Stops `instance`: after `pre-stop`, on a task of its own, unless it
    /// `failed` (trapped or overran), in which case it is dropped at once.
    fn stop(self: &Arc<Self>, mut instance: Instance, reason: &'static str, failed: bool) {
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
        lock(&self.instances).insert(stats.id, stats.clone());
    }

    /// Takes out an instance that never started (not counted as stopped).
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.instances).remove(&id);
    }

    pub(crate) fn unregister(&self, id: u64) {
        if lock(&self.instances).remove(&id).is_some() {
            self.stopped.fetch_add(1, Relaxed);
        }
    }

    fn oldest_idle(&self) -> Option<Instant> {
        lock(&self.state).idle.first().map(|i| i.last_used)
    }

    fn evict_oldest_idle(self: &Arc<Self>) {
        let victim = {
            let mut state = lock(&self.state);
            (!state.idle.is_empty()).then(|| state.idle.remove(0))
        };
        if let Some(instance) = victim {
            self.stop(instance, "evicted to make room for another function", false);
        }
    }

    /// Stops instances idle for longer than `idle_ttl`, but never below the
    /// autoscaler's floor. Returns how many.
    pub fn reap_idle(self: &Arc<Self>, now: Instant) -> usize {
        let ttl = self.settings.idle_ttl.0;
        let above_floor = self.live().saturating_sub(self.floor()) as usize;
        let expired: Vec<Instance> = {
            let mut state = lock(&self.state);
            // Oldest first: the idle list is in order of return.
            let n = state
                .idle
                .iter()
                .take(above_floor)
                .take_while(|i| now.duration_since(i.last_used) >= ttl)
                .count();
            state.idle.drain(..n).collect()
        };
        let n = expired.len();
        for instance in expired {
            self.stop(instance, "idle_ttl passed", false);
        }
        n
    }

    /// Stops serving new instances: idle ones are stopped now (after
    /// `pre-stop`), busy ones when their request ends. Used when a function is
    /// redeployed, reconfigured or deleted, and at shutdown.
    pub fn retire(self: &Arc<Self>) {
        self.retired.store(true, Relaxed);
        self.set_floor(0);
        let idle = std::mem::take(&mut lock(&self.state).idle);
        for instance in idle {
            self.stop(instance, "pool retired", false);
        }
    }

    /// Instances alive, starting or stopping included.
    pub fn live(&self) -> u32 {
        self.settings.max_instances - self.slots.available_permits() as u32
    }

    /// Instances the autoscaler keeps warm.
    pub fn floor(&self) -> u32 {
        self.floor.load(Relaxed)
    }

    /// Instances missing to reach the floor.
    fn shortfall(&self) -> u32 {
        self.floor().saturating_sub(self.live())
    }

    fn set_floor(&self, floor: u32) {
        let old = self.floor.swap(floor, Relaxed);
        if old != floor {
            self.ctx.budget.floor_changed(old, floor);
        }
    }

    /// The load since the autoscaler last looked; starts a new period.
    pub fn take_load(&self) -> Load {
        let in_flight = self.in_flight.load(Relaxed);
        let queued = self.queued.load(Relaxed);
        let peak = self.peak.swap(in_flight.saturating_add(queued), Relaxed);
        Load {
            in_flight,
            queued,
            peak,
        }
    }

    /// Applies the autoscaler's decision: the floor below which idle
    /// instances are not stopped, and up to which instances are started
    /// ahead of demand. Returns how many instances were started.
    pub fn scale_to(self: &Arc<Self>, target: Target) -> u32 {
        if self.retired.load(Relaxed) {
            return 0;
        }
        self.set_floor(target.instances);
        *lock(&self.target) = Some(target);
        if lock(&self.prewarm_paused_until).is_some_and(|until| Instant::now() < until) {
            return 0;
        }
        let mut started = 0;
        while self.shortfall() > 0 {
            let Some(permits) = self.try_permits() else {
                break;
            };
            self.prewarm(permits);
            started += 1;
        }
        started
    }

    /// The autoscaler's last decision.
    pub fn target(&self) -> Option<Target> {
        lock(&self.target).clone()
    }

    /// Starts an instance ahead of demand and parks it. One that runs `init`
    /// is announced as arriving, so that a request wait for it rather than
    /// start another.
    fn prewarm(self: &Arc<Self>, permits: Permits) {
        let announce = self.runnable.init_per_instance;
        if announce {
            lock(&self.state).arriving += 1;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let timeout = pool.settings.init_timeout.0.max(pool.settings.timeout.0);
            let deadline = after(Instant::now(), timeout);
            let began = Instant::now();
            let started = Instance::start(&pool, permits, deadline).await;
            if announce {
                lock(&pool.state).arriving -= 1;
            }
            match started {
                Ok(instance) => {
                    pool.metrics.record_instance_start(began.elapsed());
                    pool.started.fetch_add(1, Relaxed);
                    instance.stats.set_state(InstanceState::Idle);
                    pool.park(instance, false);
                }
                Err(e) => {
                    if announce {
                        pool.arrival_failed.notify_waiters();
                    }
                    // One warning per pause, not one per instance of a
                    // failed batch.
                    let first = {
                        let mut paused = lock(&pool.prewarm_paused_until);
                        let now = Instant::now();
                        let first = paused.is_none_or(|until| now >= until);
                        *paused = Some(now + PREWARM_BACKOFF);
                        first
                    };
                    if first {
                        tracing::warn!(function = %pool.function, version = pool.version, error = %e, retry_in = ?PREWARM_BACKOFF, "starting a reserved instance failed");
                    }
                }
            }
        });
    }

    /// Instances by state.
    pub fn states(&self) -> BTreeMap<&'static str, u32> {
        let mut by_state: BTreeMap<&'static str, u32> =
            InstanceState::ALL.iter().map(|s| (s.name(), 0)).collect();
        for stats in lock(&self.instances).values() {
            *by_state.entry(stats.state().name()).or_default() += 1;
        }
        by_state
    }

    /// Instance counts.
    pub fn counts(&self) -> PoolCounts {
        let idle = lock(&self.state).idle.len() as u32;
        let (live, busy) = {
            let instances = lock(&self.instances);
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
        lock(&self.instances).values().map(|s| s.view()).collect()
    }
}

/// Decrements a counter when dropped.
struct CountGuard<'a>(&'a AtomicU32);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// What ended a wait for an instance.
enum Woken {
    Instance(Option<Instance>),
    Permits(Option<Permits>),
    /// The instance a claim counted on will not arrive.
    Retry,
    Timeout,
}

/// A request waiting in a pool's queue. It counts as queued (and, for a
/// claim, as counting on an arriving instance) until it stops waiting; an
/// instance handed to it after that (or after it was dropped, when the
/// client went away) goes back to the pool instead of being lost.
struct Waiter<'a> {
    rx: Option<oneshot::Receiver<Instance>>,
    pool: &'a Arc<Pool>,
    claim: bool,
    _queued: CountGuard<'a>,
}

impl<'a> Waiter<'a> {
    fn new(pool: &'a Arc<Pool>, claim: bool, _state: &mut PoolState) -> Self {
        pool.queued.fetch_add(1, Relaxed);
        pool.note_demand(pool.in_flight.load(Relaxed));
        Self {
            rx: None,
            pool,
            claim,
            _queued: CountGuard(&pool.queued),
        }
    }

    /// Stops waiting; returns an instance that was handed over meanwhile.
    fn stop_waiting(mut self) -> Option<Instance> {
        let rx = self.rx.as_mut()?;
        rx.close();
        rx.try_recv().ok()
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.claim {
            lock(&self.pool.state).claims -= 1;
        }
        if let Some(rx) = self.rx.as_mut() {
            rx.close();
            if let Ok(instance) = rx.try_recv() {
                // Handed over but never lent: back to the pool as it is.
                self.pool.park(instance, true);
            }
        }
    }
}

/// `start + d`, saturating instead of overflowing.
pub(crate) fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(24 * 3600))
}
