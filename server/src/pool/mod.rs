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
//! Invariants:
//! - An instance belongs to exactly one pool, so instances of different
//!   functions or versions never share anything.
//! - Every live instance holds one permit of its pool's semaphore and one of
//!   the budget's; dropping the instance frees both.
//! - An instance whose call failed (trap, timeout, memory limit), that hit a
//!   limit, that served `max_requests_per_instance`, that belongs to a
//!   `reuse = false` function or to a retired pool is dropped, never reused.
//! - The idle list and the wait queue share one lock, so an instance coming
//!   back is either handed to the oldest waiter or parked, never stranded.

mod body;
mod error;
mod instance;
mod lease;
mod stats;

pub use body::{BodyError, GuestBody};
pub use error::InvokeError;
pub use lease::{CallOutcome, Lease};
pub use stats::{InstanceStats, InstanceView};

use crate::config::FunctionSettings;
use crate::engine::FloeEngine;
use crate::host::InstanceState;
use instance::{Instance, Permits};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// How long an overloaded client is told to wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

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

    fn attach(&self, pool: &Arc<Pool>) {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    fn try_acquire(&self, asking: &Pool) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Some(p);
        }
        // Make room: stop the least recently used idle instance elsewhere.
        let pools: Vec<Arc<Pool>> = self
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let victim = pools
            .iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), asking))
            .filter_map(|p| p.oldest_idle().map(|t| (t, p)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, p)| p.clone());
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
    pre: ProxyPre<InstanceState>,
    settings: FunctionSettings,
    engine: Arc<FloeEngine>,
    budget: Arc<InstanceBudget>,
    slots: Arc<Semaphore>,
    state: Mutex<PoolState>,
    instances: Mutex<BTreeMap<u64, Arc<InstanceStats>>>,
    queued: AtomicU32,
    retired: AtomicBool,
    started: AtomicU64,
    stopped: AtomicU64,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Instance>,
    waiters: VecDeque<oneshot::Sender<Instance>>,
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
    /// Alive (busy or idle).
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
        pre: ProxyPre<InstanceState>,
        settings: FunctionSettings,
        engine: Arc<FloeEngine>,
        budget: Arc<InstanceBudget>,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            slots: Arc::new(Semaphore::new(settings.max_instances as usize)),
            function,
            version,
            pre,
            settings,
            engine,
            budget: budget.clone(),
            state: Mutex::default(),
            instances: Mutex::default(),
            queued: AtomicU32::new(0),
            retired: AtomicBool::new(false),
            started: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
        });
        budget.attach(&pool);
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

    /// Lends an instance: an idle one, a new one, or the first to come back,
    /// waiting at most `queue_timeout` (and never past `deadline`).
    pub async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Lease, InvokeError> {
        if let Some(instance) = lock(&self.state).idle.pop() {
            return Ok(Lease::new(instance, self.clone()));
        }
        // Never under the state lock: the budget may stop another pool's
        // instance to make room, which takes that pool's lock.
        if let Some(permits) = self.try_permits() {
            return self.start(permits, deadline).await;
        }
        let mut waiter = {
            let mut state = lock(&self.state);
            // An instance may have come back since we looked.
            if let Some(instance) = state.idle.pop() {
                return Ok(Lease::new(instance, self.clone()));
            }
            if self.queued.load(Relaxed) >= self.settings.max_queue {
                return Err(self.overloaded("queue full"));
            }
            // Waiters that gave up leave closed senders behind.
            state.waiters.retain(|w| !w.is_closed());
            let (tx, rx) = oneshot::channel();
            state.waiters.push_back(tx);
            Waiter::new(rx, self)
        };
        let wait_until = deadline.min(after(Instant::now(), self.settings.queue_timeout.0));
        let woken = tokio::select! {
            biased;
            instance = &mut waiter.rx => Woken::Instance(instance.ok()),
            permits = self.wait_permits() => Woken::Permits(permits),
            _ = tokio::time::sleep_until(wait_until.into()) => Woken::Timeout,
        };
        // From here on, an instance coming back goes to the next waiter; one
        // that came meanwhile is taken (and any permits are given back).
        if let Some(instance) = waiter.stop_waiting() {
            return Ok(Lease::new(instance, self.clone()));
        }
        match woken {
            Woken::Instance(Some(instance)) => Ok(Lease::new(instance, self.clone())),
            Woken::Permits(Some(permits)) => self.start(permits, deadline).await,
            Woken::Instance(None) | Woken::Permits(None) => Err(self.overloaded("pool retired")),
            Woken::Timeout => Err(self.overloaded("queue timeout")),
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
        let server = self.budget.try_acquire(self)?;
        Some(Permits {
            _function: function,
            _server: server,
        })
    }

    async fn wait_permits(&self) -> Option<Permits> {
        let function = self.slots.clone().acquire_owned().await.ok()?;
        let server = self.budget.acquire(self).await?;
        Some(Permits {
            _function: function,
            _server: server,
        })
    }

    async fn start(
        self: &Arc<Self>,
        permits: Permits,
        deadline: Instant,
    ) -> Result<Lease, InvokeError> {
        let instance = Instance::start(self, permits, deadline).await?;
        self.started.fetch_add(1, Relaxed);
        tracing::debug!(function = %self.function, version = self.version, instance = instance.id(), "instance started");
        Ok(Lease::new(instance, self.clone()))
    }

    /// Takes an instance back after a call.
    pub(crate) fn release(&self, instance: Instance, outcome: &CallOutcome) {
        instance.stats.set_busy(false);
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
            self.stop(instance, reason);
            return;
        }
        let mut instance = instance;
        let mut state = lock(&self.state);
        // Checked under the lock that `retire` empties the idle list under,
        // so an instance never lands in a retired pool's idle list.
        if self.retired.load(Relaxed) {
            drop(state);
            self.stop(instance, "pool retired");
            return;
        }
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.send(instance) {
                Ok(()) => return,
                Err(back) => instance = back,
            }
        }
        state.idle.push(instance);
        drop(state);
        self.budget.instance_parked();
    }

    fn stop(&self, instance: Instance, reason: &'static str) {
        tracing::debug!(
            function = %self.function,
            version = self.version,
            instance = instance.id(),
            served = instance.served,
            reason,
            "instance stopped"
        );
        drop(instance);
    }

    pub(crate) fn register(&self, stats: &Arc<InstanceStats>) {
        lock(&self.instances).insert(stats.id, stats.clone());
    }

    pub(crate) fn unregister(&self, id: u64) {
        if lock(&self.instances).remove(&id).is_some() {
            self.stopped.fetch_add(1, Relaxed);
        }
    }

    fn oldest_idle(&self) -> Option<Instant> {
        lock(&self.state).idle.first().map(|i| i.last_used)
    }

    fn evict_oldest_idle(&self) {
        let victim = {
            let mut state = lock(&self.state);
            (!state.idle.is_empty()).then(|| state.idle.remove(0))
        };
        if let Some(instance) = victim {
            self.stop(instance, "evicted to make room for another function");
        }
    }

    /// Stops instances idle for longer than `idle_ttl`. Returns how many.
    pub fn reap_idle(&self, now: Instant) -> usize {
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
            self.stop(instance, "idle_ttl passed");
        }
        n
    }

    /// Stops serving new instances: idle ones are stopped now, busy ones when
    /// their request ends. Used when a function is redeployed, reconfigured or
    /// deleted.
    pub fn retire(&self) {
        self.retired.store(true, Relaxed);
        let idle = std::mem::take(&mut lock(&self.state).idle);
        for instance in idle {
            self.stop(instance, "pool retired");
        }
    }

    /// Instance counts.
    pub fn counts(&self) -> PoolCounts {
        let idle = lock(&self.state).idle.len() as u32;
        let live = lock(&self.instances).len() as u32;
        PoolCounts {
            live,
            idle,
            busy: live.saturating_sub(idle),
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
    Timeout,
}

/// A request waiting in a pool's queue. It counts as queued until it stops
/// waiting; an instance handed to it after that (or after it was dropped,
/// when the client went away) goes back to the pool instead of being lost.
struct Waiter<'a> {
    rx: oneshot::Receiver<Instance>,
    pool: &'a Pool,
    _queued: CountGuard<'a>,
}

impl<'a> Waiter<'a> {
    fn new(rx: oneshot::Receiver<Instance>, pool: &'a Pool) -> Self {
        pool.queued.fetch_add(1, Relaxed);
        Self {
            rx,
            pool,
            _queued: CountGuard(&pool.queued),
        }
    }

    /// Stops waiting; returns an instance that was handed over meanwhile.
    fn stop_waiting(mut self) -> Option<Instance> {
        self.rx.close();
        self.rx.try_recv().ok()
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(instance) = self.rx.try_recv() {
            self.pool.release(instance, &CallOutcome::Completed);
        }
    }
}

/// `start + d`, saturating instead of overflowing.
pub(crate) fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(24 * 3600))
}
