//! Counters and histograms per function, encoded in the OpenMetrics text
//! format at `GET /metrics` by `prometheus-client`.
//!
//! Recording is a few relaxed atomic adds on the request path; everything else
//! (labels, gauges read from the pools) happens when `/metrics` is scraped: a
//! [`Collector`](prometheus_client::collector::Collector) walks the atomics
//! then and hands their figures to the encoder, which escapes label values.
//!
//! This module depends on nothing of floe's but [`ErrorCode`]: the pools and
//! the async invocation service hand it plain figures ([`PoolGauge`],
//! [`AsyncFigures`]).

mod encode;
mod histogram;
mod meter;
mod pool;

pub use histogram::{BUCKETS, Histogram};
pub use meter::{Meter, MeterView};
pub use pool::{AsyncFigures, EventFigures, Hook, OutboxRow, PoolCounts, TriggerRow};

use crate::status::ErrorCode;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
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
    /// Outbound HTTP requests sent and denied.
    outbound: [AtomicU64; 2],
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
        if let Some(i) = Hook::ALL.iter().position(|h| *h == hook) {
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

    /// Records an outbound HTTP request the function made: sent, or denied
    /// by its policy.
    pub fn record_outbound(&self, denied: bool) {
        self.outbound[usize::from(denied)].fetch_add(1, Relaxed);
    }

    /// Calls of `hook` so far.
    pub fn hook_calls(&self, hook: Hook) -> u64 {
        Hook::ALL
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
    /// Its version gets a fresh instance per request because it answers
    /// only the first request of an instance.
    pub fresh: bool,
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

    /// Encodes everything, with the pools' and the async invocations'
    /// figures, as one OpenMetrics text document (ending in `# EOF`).
    pub fn render(
        &self,
        pools: Vec<PoolGauge>,
        instances_total: u32,
        asynchronous: AsyncFigures,
        events: EventFigures,
    ) -> Result<String, std::fmt::Error> {
        let mut functions: Vec<(Arc<str>, Arc<FunctionMetrics>)> = self
            .functions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        functions.sort_by(|a, b| a.0.cmp(&b.0));
        let s = &self.server;
        let scrape = encode::Scrape {
            functions,
            pools,
            instances_total,
            deploys: s.deploys.load(Relaxed),
            deploy_failures: s.deploy_failures.load(Relaxed),
            unrouted: s.unrouted.load(Relaxed),
            asynchronous,
            events,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every sample line of `text` (no `#` line), split into name with
    /// labels, and value.
    fn samples(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .collect()
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        let name: Arc<str> = Arc::from("a\"b\\c\nd");
        m.function(&name)
            .record(http::StatusCode::OK, Duration::from_millis(1));
        let text = m
            .render(
                Vec::new(),
                0,
                AsyncFigures::default(),
                EventFigures::default(),
            )
            .unwrap();
        assert!(
            text.lines()
                .any(|l| l == r#"floe_requests_total{function="a\"b\\c\nd",status="2xx"} 1"#),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l == r#"floe_request_duration_seconds_count{function="a\"b\\c\nd"} 1"#),
            "{text}"
        );
        // The newline never reaches the output raw: every line is a comment
        // or a whole sample.
        assert!(!text.contains("\nd\""), "{text}");
    }

    #[test]
    fn a_scrape_has_every_series_in_one_document() {
        let m = Metrics::default();
        let hello: Arc<str> = Arc::from("hello");
        let f = m.function(&hello);
        f.record(http::StatusCode::OK, Duration::from_millis(2));
        f.record(http::StatusCode::OK, Duration::from_millis(3));
        f.record(http::StatusCode::BAD_GATEWAY, Duration::from_millis(4));
        f.record_error(ErrorCode::Trap);
        f.record_hook(Hook::PreFreeze, Duration::from_millis(1), false);
        f.record_hook(Hook::PreFreeze, Duration::from_millis(1), true);
        f.record_instance_start(Duration::from_millis(20));
        f.meter.invocation(Duration::from_millis(2), 128);
        f.meter.invocation(Duration::from_millis(3), 128);
        f.meter.invocation(Duration::from_millis(4), 128);
        m.server.deploys.fetch_add(2, Relaxed);
        m.server.deploy_failures.fetch_add(1, Relaxed);
        m.server.unrouted.fetch_add(4, Relaxed);
        let mut instance = MeterView {
            invocations: 3,
            busy_ms: 9.0,
            ..MeterView::default()
        };
        instance.compute_units = 0.5;
        let pool = PoolGauge {
            function: hello.clone(),
            version: 1,
            counts: PoolCounts {
                live: 2,
                started: 5,
                queued: 1,
                ..PoolCounts::default()
            },
            states: BTreeMap::from([("busy", 1), ("idle", 1)]),
            target: 2,
            fresh: true,
            instances: vec![(7, instance)],
        };
        let asynchronous = AsyncFigures {
            queue_depth: 2,
            dead_letters: 1,
            accepted: 6,
            succeeded: 3,
            retried: 2,
            dead: 1,
        };
        let text = m
            .render(vec![pool], 2, asynchronous, EventFigures::default())
            .unwrap();

        let samples = samples(&text);
        let value = |series: &str| samples.iter().find(|(s, _)| *s == series).map(|(_, v)| *v);
        for (series, want) in [
            (
                "floe_requests_total{function=\"hello\",status=\"2xx\"}",
                "2",
            ),
            (
                "floe_requests_total{function=\"hello\",status=\"5xx\"}",
                "1",
            ),
            (
                "floe_request_errors_total{function=\"hello\",code=\"trap\"}",
                "1",
            ),
            (
                "floe_request_duration_seconds_count{function=\"hello\"}",
                "3",
            ),
            (
                "floe_request_duration_seconds_bucket{le=\"+Inf\",function=\"hello\"}",
                "3",
            ),
            (
                "floe_hook_calls_total{function=\"hello\",hook=\"pre-freeze\"}",
                "2",
            ),
            (
                "floe_hook_failures_total{function=\"hello\",hook=\"pre-freeze\"}",
                "1",
            ),
            (
                "floe_hook_duration_seconds_count{function=\"hello\",hook=\"pre-freeze\"}",
                "2",
            ),
            ("floe_instance_start_seconds_count{function=\"hello\"}", "1"),
            (
                "floe_instances{function=\"hello\",version=\"1\",state=\"busy\"}",
                "1",
            ),
            (
                "floe_instances{function=\"hello\",version=\"1\",state=\"idle\"}",
                "1",
            ),
            ("floe_scaling_target{function=\"hello\"}", "2"),
            (
                "floe_fresh_instances{function=\"hello\",version=\"1\"}",
                "1",
            ),
            ("floe_invocations_total{function=\"hello\"}", "3"),
            (
                "floe_instance_invocations_total{function=\"hello\",instance=\"7\"}",
                "3",
            ),
            (
                "floe_instance_busy_seconds_total{function=\"hello\",instance=\"7\"}",
                "0.009",
            ),
            (
                "floe_instance_compute_units_total{function=\"hello\",instance=\"7\"}",
                "0.5",
            ),
            (
                "floe_instances_started_total{function=\"hello\",version=\"1\"}",
                "5",
            ),
            ("floe_queued_requests{function=\"hello\"}", "1"),
            ("floe_instances_total", "2"),
            ("floe_functions", "1"),
            ("floe_deploys_total", "2"),
            ("floe_deploy_failures_total", "1"),
            ("floe_unrouted_requests_total", "4"),
            ("floe_async_queue_depth", "2"),
            ("floe_async_dead_letters", "1"),
            ("floe_async_invocations_total{event=\"accepted\"}", "6"),
            ("floe_async_invocations_total{event=\"succeeded\"}", "3"),
            ("floe_async_invocations_total{event=\"retried\"}", "2"),
            ("floe_async_invocations_total{event=\"dead\"}", "1"),
        ] {
            assert_eq!(value(series), Some(want), "{series} in\n{text}");
        }
        for series in [
            "floe_busy_seconds_total{function=\"hello\"}",
            "floe_frozen_seconds_total{function=\"hello\"}",
            "floe_hook_seconds_total{function=\"hello\"}",
            "floe_compute_units_total{function=\"hello\"}",
            "floe_instance_frozen_seconds_total{function=\"hello\",instance=\"7\"}",
            "floe_instance_hook_seconds_total{function=\"hello\",instance=\"7\"}",
        ] {
            assert!(value(series).is_some(), "{series} missing from\n{text}");
        }
        // Counters that never counted are left out.
        assert_eq!(
            value("floe_requests_total{function=\"hello\",status=\"4xx\"}"),
            None
        );
        // Counter families are described without `_total`, as OpenMetrics
        // wants; their samples keep it.
        assert!(text.contains("# TYPE floe_requests counter\n"), "{text}");
        assert!(text.contains("# TYPE floe_instances gauge\n"), "{text}");
        assert!(
            text.contains("# TYPE floe_request_duration_seconds histogram\n"),
            "{text}"
        );
        // One document: a single `# EOF`, at the end.
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("\n# EOF\n"), "{text}");
    }
}
