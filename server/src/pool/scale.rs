//! Scaling a pool: instances started ahead of demand up to the autoscaler's
//! floor, idle ones stopped past `idle_ttl` down to it, eviction to make
//! room for another function, retirement.

use super::instance::{Instance, Permits};
use super::{InstanceState, Load, Pool, Target};
use crate::runtime::after;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How long prewarming pauses after a reserved instance failed to start.
const PREWARM_BACKOFF: Duration = Duration::from_secs(1);

impl Pool {
    pub(super) fn oldest_idle(&self) -> Option<Instant> {
        self.state.lock().idle.first().map(|i| i.last_used)
    }

    pub(super) fn evict_oldest_idle(self: &Arc<Self>) {
        let victim = {
            let mut state = self.state.lock();
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
            let mut state = self.state.lock();
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
        let idle = std::mem::take(&mut self.state.lock().idle);
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
    pub(super) fn shortfall(&self) -> u32 {
        self.floor().saturating_sub(self.live())
    }

    pub(super) fn set_floor(&self, floor: u32) {
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
        *self.target.lock() = Some(target);
        if self
            .prewarm_paused_until
            .lock()
            .is_some_and(|until| Instant::now() < until)
        {
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
        self.target.lock().clone()
    }

    /// Starts an instance ahead of demand and parks it. One that runs `init`
    /// is announced as arriving, so that a request wait for it rather than
    /// start another.
    fn prewarm(self: &Arc<Self>, permits: Permits) {
        let announce = self.runnable.init_per_instance;
        if announce {
            self.state.lock().arriving += 1;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let timeout = pool.settings.init_timeout.0.max(pool.settings.timeout.0);
            let deadline = after(Instant::now(), timeout);
            let began = Instant::now();
            let started = Instance::start(&pool, permits, deadline).await;
            if announce {
                pool.state.lock().arriving -= 1;
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
                        let mut paused = pool.prewarm_paused_until.lock();
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
}
