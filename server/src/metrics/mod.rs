//! Counters and histograms per function, rendered in the Prometheus text
//! format at `GET /metrics`.
//!
//! Recording is a few relaxed atomic adds on the request path; everything else
//! (label formatting, gauges read from the pools) happens when `/metrics` is
//! scraped.

mod histogram;
mod meter;
mod pool;

pub use histogram::{BUCKETS, Histogram};
pub use meter::{Meter, MeterView};
pub use pool::{Hook, PoolCounts};

use crate::status::ErrorCode;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Figures of one function, across its versions.
#[derive(Debug, Default)]
pub struct FunctionMetrics {
    responses: [AtomicU64; 5],
    errors: [AtomicU64; ErrorCode::ALL.len()],
    duration: Histogram,
    hooks: [HookMetrics; 3],
    instance_start: Histogram,
    /// Invocations, busy, frozen and hook time, compute units.
    pub meter: Meter,
}

/// Calls of one lifecycle hook.
#[derive(Debug, Default)]
struct HookMetrics {
    calls: AtomicU64,
    failures: AtomicU64,
    duration: Histogram,
}

const HOOKS: [Hook; 3] = [Hook::Init, Hook::PreFreeze, Hook::PreStop];

impl FunctionMetrics {
    /// Records a request that answered `status` after `elapsed` (time to the
    /// response head).
    pub fn record(&self, status: http::StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Relaxed);
        self.duration.observe(elapsed);
    }

    /// Records an error answered by floe (not by the guest).
    pub fn record_error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Records a call of a lifecycle hook (metered apart from requests).
    pub fn record_hook(&self, hook: Hook, took: Duration, failed: bool) {
        if let Some(i) = HOOKS.iter().position(|h| *h == hook) {
            let h = &self.hooks[i];
            h.calls.fetch_add(1, Relaxed);
            h.duration.observe(took);
            if failed {
                h.failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// Records how long starting an instance took (instantiation, and `init`
    /// when it runs per instance).
    pub fn record_instance_start(&self, took: Duration) {
        self.instance_start.observe(took);
    }

    /// Calls of `hook` so far.
    pub fn hook_calls(&self, hook: Hook) -> u64 {
        HOOKS
            .iter()
            .position(|h| *h == hook)
            .map_or(0, |i| self.hooks[i].calls.load(Relaxed))
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.responses.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// Deploys that created a version.
    pub deploys: AtomicU64,
    /// Deploys rejected (any reason).
    pub deploy_failures: AtomicU64,
    /// Requests for functions that do not exist.
    pub unrouted: AtomicU64,
}

type MeterSeries = (&'static str, &'static str, fn(&MeterView) -> f64);

/// The metered series: name suffix, help, value.
const METER_SERIES: [MeterSeries; 5] = [
    ("invocations_total", "Requests and events executed.", |v| {
        v.invocations as f64
    }),
    (
        "busy_seconds_total",
        "Time executing requests and events.",
        |v| v.busy_ms / 1e3,
    ),
    (
        "frozen_seconds_total",
        "Time instances spent parked between requests (idle or frozen).",
        |v| v.frozen_ms / 1e3,
    ),
    ("hook_seconds_total", "Time in lifecycle hooks.", |v| {
        v.hook_ms / 1e3
    }),
    (
        "compute_units_total",
        "GB of memory limit x seconds executed (requests, events, hooks), billed by the millisecond.",
        |v| v.compute_units,
    ),
];

/// Metering per function (`floe_*`) and per live instance
/// (`floe_instance_*`).
fn render_meters(
    out: &mut String,
    functions: &[(Arc<str>, Arc<FunctionMetrics>)],
    pools: &[PoolGauge],
) {
    for (suffix, help, value) in METER_SERIES {
        let _ = writeln!(out, "# HELP floe_{suffix} {help}");
        let _ = writeln!(out, "# TYPE floe_{suffix} counter");
        for (name, m) in functions {
            let _ = writeln!(
                out,
                "floe_{suffix}{{function=\"{name}\"}} {}",
                value(&m.meter.view())
            );
        }
        let _ = writeln!(
            out,
            "# HELP floe_instance_{suffix} {help} Per live instance."
        );
        let _ = writeln!(out, "# TYPE floe_instance_{suffix} counter");
        for p in pools {
            for (id, view) in &p.instances {
                let _ = writeln!(
                    out,
                    "floe_instance_{suffix}{{function=\"{}\",instance=\"{id}\"}} {}",
                    p.function,
                    value(view)
                );
            }
        }
    }
}

/// All metrics of a server.
#[derive(Debug, Default)]
pub struct Metrics {
    functions: RwLock<HashMap<Arc<str>, Arc<FunctionMetrics>>>,
    /// Server-wide counters.
    pub server: ServerMetrics,
}

/// What `/metrics` reports about one function's pool.
#[derive(Debug, Clone)]
pub struct PoolGauge {
    /// The function.
    pub function: Arc<str>,
    /// Its active version.
    pub version: u64,
    /// Its instances.
    pub counts: PoolCounts,
    /// Its instances by state.
    pub states: std::collections::BTreeMap<&'static str, u32>,
    /// The autoscaler's target.
    pub target: u32,
    /// Each live instance's metering, by instance id.
    pub instances: Vec<(u64, MeterView)>,
}

impl Metrics {
    /// The metrics of `function`, created on first use.
    pub fn function(&self, function: &Arc<str>) -> Arc<FunctionMetrics> {
        if let Some(m) = self
            .functions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
        {
            return m.clone();
        }
        self.functions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(function.clone())
            .or_default()
            .clone()
    }

    /// Forgets a deleted function.
    pub fn remove(&self, function: &str) {
        self.functions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(function);
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, pools: &[PoolGauge], instances_total: u32) -> String {
        let mut out = String::with_capacity(4096);
        let functions: Vec<(Arc<str>, Arc<FunctionMetrics>)> = {
            let map = self
                .functions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let mut v: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };

        out.push_str(
            "# HELP floe_requests_total Requests answered, by function and status class.\n",
        );
        out.push_str("# TYPE floe_requests_total counter\n");
        for (name, m) in &functions {
            for (i, c) in m.responses.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "floe_requests_total{{function=\"{name}\",status=\"{}xx\"}} {n}",
                        i + 1
                    );
                }
            }
        }
        out.push_str(
            "# HELP floe_request_errors_total Requests floe answered with an error, by code.\n",
        );
        out.push_str("# TYPE floe_request_errors_total counter\n");
        for (name, m) in &functions {
            for (code, c) in ErrorCode::ALL.iter().zip(&m.errors) {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "floe_request_errors_total{{function=\"{name}\",code=\"{}\"}} {n}",
                        code.as_str()
                    );
                }
            }
        }
        out.push_str("# HELP floe_request_duration_seconds Time from request to response head.\n");
        out.push_str("# TYPE floe_request_duration_seconds histogram\n");
        for (name, m) in &functions {
            m.duration.render(
                &mut out,
                "floe_request_duration_seconds",
                &format!("function=\"{name}\""),
            );
        }
        out.push_str("# HELP floe_hook_calls_total Lifecycle hook calls, by function and hook.\n");
        out.push_str("# TYPE floe_hook_calls_total counter\n");
        for (name, m) in &functions {
            for (hook, h) in HOOKS.iter().zip(&m.hooks) {
                let n = h.calls.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "floe_hook_calls_total{{function=\"{name}\",hook=\"{}\"}} {n}",
                        hook.name()
                    );
                }
            }
        }
        out.push_str("# HELP floe_hook_failures_total Hook calls that trapped or overran their time limit.\n");
        out.push_str("# TYPE floe_hook_failures_total counter\n");
        for (name, m) in &functions {
            for (hook, h) in HOOKS.iter().zip(&m.hooks) {
                let n = h.failures.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "floe_hook_failures_total{{function=\"{name}\",hook=\"{}\"}} {n}",
                        hook.name()
                    );
                }
            }
        }
        out.push_str("# HELP floe_hook_duration_seconds Time spent in lifecycle hooks.\n");
        out.push_str("# TYPE floe_hook_duration_seconds histogram\n");
        for (name, m) in &functions {
            for (hook, h) in HOOKS.iter().zip(&m.hooks) {
                if h.calls.load(Relaxed) > 0 {
                    h.duration.render(
                        &mut out,
                        "floe_hook_duration_seconds",
                        &format!("function=\"{name}\",hook=\"{}\"", hook.name()),
                    );
                }
            }
        }
        out.push_str("# HELP floe_instance_start_seconds Time to start an instance (and run init per instance).\n");
        out.push_str("# TYPE floe_instance_start_seconds histogram\n");
        for (name, m) in &functions {
            if m.instance_start.count() > 0 {
                m.instance_start.render(
                    &mut out,
                    "floe_instance_start_seconds",
                    &format!("function=\"{name}\""),
                );
            }
        }
        out.push_str("# HELP floe_instances Instances of a function's active version, by state.\n");
        out.push_str("# TYPE floe_instances gauge\n");
        for p in pools {
            for (state, n) in &p.states {
                let _ = writeln!(
                    out,
                    "floe_instances{{function=\"{}\",version=\"{}\",state=\"{state}\"}} {n}",
                    p.function, p.version
                );
            }
        }
        out.push_str("# HELP floe_scaling_target Instances the autoscaler keeps warm.\n");
        out.push_str("# TYPE floe_scaling_target gauge\n");
        for p in pools {
            let _ = writeln!(
                out,
                "floe_scaling_target{{function=\"{}\"}} {}",
                p.function, p.target
            );
        }
        render_meters(&mut out, &functions, pools);
        out.push_str("# HELP floe_instances_started_total Instances started for a function's active version.\n");
        out.push_str("# TYPE floe_instances_started_total counter\n");
        for p in pools {
            let _ = writeln!(
                out,
                "floe_instances_started_total{{function=\"{}\",version=\"{}\"}} {}",
                p.function, p.version, p.counts.started
            );
        }
        out.push_str("# HELP floe_queued_requests Requests waiting for an instance.\n");
        out.push_str("# TYPE floe_queued_requests gauge\n");
        for p in pools {
            let _ = writeln!(
                out,
                "floe_queued_requests{{function=\"{}\"}} {}",
                p.function, p.counts.queued
            );
        }
        let s = &self.server;
        let _ = write!(
            out,
            "# HELP floe_instances_total Instances alive on the server.\n\
             # TYPE floe_instances_total gauge\n\
             floe_instances_total {instances_total}\n\
             # HELP floe_functions Functions deployed.\n\
             # TYPE floe_functions gauge\n\
             floe_functions {}\n\
             # HELP floe_deploys_total Deploys that created a version.\n\
             # TYPE floe_deploys_total counter\n\
             floe_deploys_total {}\n\
             # HELP floe_deploy_failures_total Deploys rejected.\n\
             # TYPE floe_deploy_failures_total counter\n\
             floe_deploy_failures_total {}\n\
             # HELP floe_unrouted_requests_total Requests for functions that do not exist.\n\
             # TYPE floe_unrouted_requests_total counter\n\
             floe_unrouted_requests_total {}\n",
            pools.len(),
            s.deploys.load(Relaxed),
            s.deploy_failures.load(Relaxed),
            s.unrouted.load(Relaxed),
        );
        out
    }
}
