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
        if self.shares() {
            return self.idle_cores().first().map(|(_, t)| *t);
        }
        self.state.lock().idle.first().map(|i| i.last_used())
    }

    /// WASI 0.3 instances with no request in flight, oldest first.
    fn idle_cores(&self) -> Vec<(u64, Instant)> {
        let mut cores: Vec<(u64, Instant)> = self
            .state
            .lock()
            .idle
            .iter()
            .filter_map(|i| match i {
                Instance::Shared(s) if s.core.in_flight() == 0 && s.core.open() => {
                    Some((s.id(), s.core.last_used()))
                }
                _ => None,
            })
            .collect();
        cores.sort_unstable_by_key(|(id, t)| (*t, *id));
        cores.dedup_by_key(|(id, _)| *id);
        cores
    }

    /// Stops a WASI 0.3 instance that has no request in flight.
    fn stop_core(self: &Arc<Self>, id: u64, reason: &'static str) {
        tracing::debug!(function = %self.function, version = self.version, instance = id, reason, "instance stopped");
        let victim = {
            let state = self.state.lock();
            state.idle.iter().find_map(|i| match i {
                Instance::Shared(s) if s.id() == id => Some(s.core.clone()),
                _ => None,
            })
        };
        if let Some(core) = victim {
            core.close();
        }
        self.purge_slots(id);
    }

    pub(super) fn evict_oldest_idle(self: &Arc<Self>) {
        if self.shares() {
            if let Some((id, _)) = self.idle_cores().first() {
                self.stop_core(*id, "evicted to make room for another function");
            }
            return;
        }
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
        if self.shares() {
            let expired: Vec<u64> = self
                .idle_cores()
                .into_iter()
                .take(above_floor)
                .take_while(|(_, t)| now.duration_since(*t) >= ttl)
                .map(|(id, _)| id)
                .collect();
            for id in &expired {
                self.stop_core(*id, "idle_ttl passed");
            }
            return expired.len();
        }
        let expired: Vec<Instance> = {
            let mut state = self.state.lock();
            // Oldest first: the idle list is in order of return.
            let n = state
                .idle
                .iter()
                .take(above_floor)
                .take_while(|i| now.duration_since(i.last_used()) >= ttl)
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
        for instance in &idle {
            if let Instance::Shared(s) = instance {
                s.core.close();
            }
        }
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
            per_instance: self.concurrency,
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
        let announce = self.runnable.init_per_instance || self.shares();
        if announce {
            self.state.lock().arriving += self.arrivals(false);
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let timeout = pool.settings.init_timeout.0.max(pool.settings.timeout.0);
            let deadline = after(Instant::now(), timeout);
            let began = Instant::now();
            let started = Instance::start(&pool, permits, deadline).await;
            if let Ok(instance) = &started {
                pool.spread(instance, pool.concurrency.saturating_sub(1));
            }
            if announce {
                pool.state.lock().arriving -= pool.arrivals(false);
            }
            match started {
                Ok(instance) => {
                    pool.metrics.record_instance_start(began.elapsed());
                    pool.started.fetch_add(1, Relaxed);
                    instance.stats().set_state(InstanceState::Idle);
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
