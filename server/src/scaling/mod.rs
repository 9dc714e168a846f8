//! Autoscaling: a pure policy ([`policy`]) and the driver that applies it.
//!
//! Requests start instances on demand (in microseconds, from the pooling
//! allocator's copy-on-write images), so the driver does not sit on the
//! request path. Once per `scaling.tick` it looks at every active function:
//! the load since the last tick and the time go into [`policy::target`], and
//! the pool keeps that many instances warm, starting them ahead of demand,
//! and stops instances idle past `idle_ttl` only down to it (after their
//! `pre-stop`). A function with no reservation scales to zero.

mod heap;
pub mod policy;

use crate::config::ScalingConfig;
use crate::pool::Pool;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// What the autoscaler drives: the pools serving now (the registry's active
/// versions).
pub trait ActivePools: Send + Sync {
    /// The pool of every function's active version.
    fn active_pools(&self) -> Vec<Arc<Pool>>;
    /// Deploys, reconfigurations, rollbacks and deletions so far: the
    /// autoscaler hands memory back after them too.
    fn changes(&self) -> u64;
}

/// Runs the autoscaler every `scaling.tick` until `source` is gone.
pub async fn run(source: Weak<dyn ActivePools>, config: ScalingConfig) {
    let mut interval = tokio::time::interval(config.tick.0);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heap = heap::Releaser::new(config.release_memory.0);
    loop {
        interval.tick().await;
        let Some(source) = source.upgrade() else {
            return;
        };
        let mut step = pass(
            &source.active_pools(),
            Instant::now(),
            jiff::Timestamp::now(),
        );
        step.changes = source.changes();
        drop(source);
        if step.started > 0 || step.stopped > 0 {
            tracing::debug!(started = step.started, stopped = step.stopped, "autoscaler");
        }
        heap.after(step, Instant::now());
    }
}

/// One pass of the autoscaler over `pools`: works out each one's target
/// from its load and `wall` (the time of day, for scheduled reservations),
/// starts instances up to it and stops instances idle past `idle_ttl` down
/// to it.
pub fn pass(pools: &[Arc<Pool>], now: Instant, wall: jiff::Timestamp) -> Step {
    let mut step = Step::default();
    for pool in pools {
        let load = pool.take_load();
        step.busy = step
            .busy
            .saturating_add(load.in_flight.saturating_add(load.queued));
        step.peak = step.peak.max(load.peak);
        let target = policy::target(pool.settings(), load, wall);
        step.started += pool.scale_to(target);
        step.stopped += pool.reap_idle(now) as u32;
    }
    step
}

/// What one pass of the autoscaler saw and did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Step {
    /// Instances started ahead of demand.
    pub started: u32,
    /// Idle instances stopped.
    pub stopped: u32,
    /// Requests in flight or waiting, over all functions, now.
    pub busy: u32,
    /// The most requests in flight and waiting in any one function since the
    /// last pass.
    pub peak: u32,
    /// Functions deployed, reconfigured, rolled back or deleted so far.
    pub changes: u64,
}

/// A function's scaling, as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScalingView {
    /// The reservation policies configured: `none`, `fixed`, `scheduled`,
    /// `utilization` or `hybrid`.
    pub policy: &'static str,
    /// Instances the autoscaler keeps warm now.
    pub target: u32,
    /// Which policy set the target.
    pub decided_by: policy::Policy,
    /// Why.
    pub reason: String,
    /// Live instances by state.
    pub instances: std::collections::BTreeMap<&'static str, u32>,
}

impl ScalingView {
    /// The view of `pool`.
    pub fn of(pool: &Pool) -> Self {
        let target = pool.target().unwrap_or_else(|| policy::Target {
            instances: 0,
            policy: policy::Policy::None,
            reason: "not evaluated yet".to_owned(),
        });
        Self {
            policy: policy::configured(pool.settings()),
            target: target.instances,
            decided_by: target.policy,
            reason: target.reason,
            instances: pool.states(),
        }
    }
}
