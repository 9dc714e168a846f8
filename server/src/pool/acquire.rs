//! Lending instances to requests: an idle one, one on its way, a new one, or
//! the first to come back, within the queue's bounds.

use super::instance::{Instance, Permits};
use super::{CountGuard, DEFAULT_RETRY_AFTER, InvokeError, Lease, Pool, PoolState};
use crate::runtime::after;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::oneshot;

impl Pool {
    /// Lends an instance: an idle one, one on its way, a new one, or the
    /// first to come back, waiting at most `queue_timeout` (and never past
    /// `deadline`).
    pub async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Lease, InvokeError> {
        let wait_until = deadline.min(after(Instant::now(), self.settings.queue_timeout.0));
        loop {
            // A slow start (one that runs `init`) is announced as arriving
            // in the same step as the decision to make it, so that a request
            // right behind this one waits for it rather than starting another.
            let announce = self.runnable.init_per_instance || self.shares();
            let claim = {
                let mut state = self.state.lock();
                if let Some(instance) = Pool::pop_idle(&mut state) {
                    return Ok(self.lend(instance));
                }
                // An instance on its way that nobody counts on yet serves
                // this request: no second cold start.
                let claim = state.arriving > state.claims;
                if claim {
                    state.claims += 1;
                } else if announce {
                    state.arriving += self.arrivals(true);
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
                    self.state.lock().arriving -= self.arrivals(true);
                    self.arrival_failed.notify_waiters();
                }
            }
            let failed = self.arrival_failed.notified();
            tokio::pin!(failed);
            failed.as_mut().enable();
            let mut waiter = {
                let mut state = self.state.lock();
                let mut waiter = Waiter::new(self, claim, &mut state);
                // An instance may have come back since we looked.
                if let Some(instance) = Pool::pop_idle(&mut state) {
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
        if let Instance::Shared(shared) = &instance {
            let core = &shared.core;
            core.stats.in_flight.fetch_add(1, Relaxed);
            core.stats.set_state(super::InstanceState::Busy);
            // Every request counts for `max_requests_per_instance`, and an
            // instance that is not reused takes one: past it, it takes no
            // more (it ends when its last request does).
            let lent = core.lent.fetch_add(1, Relaxed) + 1;
            let max = if self.reuses() {
                self.settings.requests_per_instance()
            } else {
                Some(1)
            };
            if max.is_some_and(|max| lent >= max) {
                core.close();
            }
        }
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

    pub(super) fn try_permits(&self) -> Option<Permits> {
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
        if let Ok(instance) = &started {
            self.metrics.record_instance_start(began.elapsed());
            // The other slots of a WASI 0.3 instance go to the requests
            // that counted on them.
            self.spread(instance, self.concurrency.saturating_sub(1));
        }
        if announced {
            self.state.lock().arriving -= self.arrivals(true);
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
            self.pool.state.lock().claims -= 1;
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
