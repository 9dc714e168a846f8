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
/// all pools. When it runs out, an idle instance of another pool is stopped to
/// make room before anyone has to wait.
#[derive(Debug)]
pub struct InstanceBudget {
    permits: Arc<Semaphore>,
    total: u32,
    pools: Mutex<Vec<Weak<Pool>>>,
    /// Requests waiting for a slot; only then is parking an instance
    /// announced on `parked`.
    waiting: AtomicU32,
    parked: Notify,
}

impl InstanceBudget {
    /// A budget of `total` instances.
    pub fn new(total: u32) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            pools: Mutex::default(),
            waiting: AtomicU32::new(0),
            parked: Notify::new(),
        })
    }

    /// Instances alive on the server.
    pub fn in_use(&self) -> u32 {
        self.total - self.permits.available_permits() as u32
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

    fn try_acquire(&self, asking: &Pool) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Some(p);
        }
        // Make room: stop the least recently used idle instance elsewhere.
        let victim = self
            .pools()
            .into_iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), asking))
            .filter_map(|p| p.oldest_idle().map(|t| (t, p)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, p)| p);
        if let Some(pool) = victim {
            pool.evict_oldest_idle();
        }
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Waits for a slot: one freed, or one made by stopping an instance that
    /// another pool parks meanwhile.
    async fn acquire(&self, asking: &Pool) -> Option<OwnedSemaphorePermit> {
        loop {
            let parked = self.parked.notified();
            tokio::pin!(parked);
            parked.as_mut().enable();
            self.waiting.fetch_add(1, Relaxed);
            let _waiting = CountGuard(&self.waiting);
            if let Some(permit) = self.try_acquire(asking) {
                return Some(permit);
            }
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => return permit.ok(),
                () = &mut parked => {}
            }
        }
    }

    /// Announces that an instance was parked idle, if anyone waits for a slot.
    fn instance_parked(&self) {
        if self.waiting.load(Relaxed) > 0 {
            self.parked.notify_waiters();
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
    retired: AtomicBool,
    started: AtomicU64,
    stopped: AtomicU64,
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
            retired: AtomicBool::new(false),
            started: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
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
                    return Ok(Lease::new(instance, self.clone()));
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
                    return Ok(Lease::new(instance, self.clone()));
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
                return Ok(Lease::new(instance, self.clone()));
            }
            match woken {
                Woken::Instance(Some(instance)) => return Ok(Lease::new(instance, self.clone())),
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
                Ok(Lease::new(instance, self.clone()))
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
        state.idle.push(instance);
        drop(state);
        self.ctx.budget.instance_parked();
    }

    /// Stops `instance`: after `pre-stop`, on a task of its own, unless it
    /// `failed` (trapped or overran), in which case it is dropped at once.
    fn stop(self: &Arc<Self>, mut instance: Instance, reason: &'static str, failed: bool) {
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

    pub(crate) fn unregister(&self, id: u64) {
        if lock(&self.instances).remove(&id).is_some() {
            self.stopped.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn record_hook(&self, hook: Hook, took: Duration, failed: bool) {
        self.metrics.record_hook(hook, took, failed);
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

    /// Stops instances idle for longer than `idle_ttl`. Returns how many.
    pub fn reap_idle(self: &Arc<Self>, now: Instant) -> usize {
        let ttl = self.settings.idle_ttl.0;
        let expired: Vec<Instance> = {
            let mut state = lock(&self.state);
            // Oldest first: the idle list is in order of return.
            let n = state
                .idle
                .iter()
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
        let idle = std::mem::take(&mut lock(&self.state).idle);
        for instance in idle {
            self.stop(instance, "pool retired", false);
        }
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
                self.pool.release(instance, &CallOutcome::Completed);
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
