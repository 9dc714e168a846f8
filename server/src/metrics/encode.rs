//! One scrape of `/metrics`: a [`Collector`] that reads the counters and
//! histograms when it is encoded, and hands their figures to
//! `prometheus-client`'s OpenMetrics text encoder (which escapes label values
//! and formats the numbers).
//!
//! Counters are named here by their samples (`floe_requests_total`); the
//! family that the encoder describes in `# HELP` and `# TYPE` drops the
//! `_total`, which the encoder adds back to each sample, as OpenMetrics
//! wants.

use super::{AsyncFigures, EventFigures, FunctionMetrics, Hook, MeterView, PoolGauge};
use crate::status::ErrorCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use std::fmt::Error;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// What one scrape reports: the functions' live counters, and figures taken
/// from the pools, the server and the async invocation service.
#[derive(Debug)]
pub(super) struct Scrape {
    /// Every function's metrics, by name.
    pub(super) functions: Vec<(Arc<str>, Arc<FunctionMetrics>)>,
    /// Every active pool.
    pub(super) pools: Vec<PoolGauge>,
    /// Instances alive on the server.
    pub(super) instances_total: u32,
    /// Deploys that created a version.
    pub(super) deploys: u64,
    /// Deploys rejected.
    pub(super) deploy_failures: u64,
    /// Requests for functions that do not exist.
    pub(super) unrouted: u64,
    /// The async invocation service's figures.
    pub(super) asynchronous: AsyncFigures,
    /// Triggers and outboxes.
    pub(super) events: EventFigures,
}

/// Starts the family of the counter whose samples are `name` (ending in
/// `_total`).
fn counter<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
) -> Result<MetricEncoder<'a>, Error> {
    let family = name.strip_suffix("_total").unwrap_or(name);
    encoder.encode_descriptor(family, help, None, MetricType::Counter)
}

/// Starts the family of a gauge.
fn gauge<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
) -> Result<MetricEncoder<'a>, Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)
}

/// Starts the family of a histogram.
fn histogram<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
) -> Result<MetricEncoder<'a>, Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Histogram)
}

/// One counter sample with `labels`.
fn count(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: impl EncodeCounterValue,
) -> Result<(), Error> {
    family
        .encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// One gauge sample with `labels`.
fn level(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: impl EncodeGaugeValue,
) -> Result<(), Error> {
    family.encode_family(labels)?.encode_gauge(&value)
}

/// A metered figure: a count, or an amount (seconds, compute units).
enum Figure {
    Count(u64),
    Amount(f64),
}

/// One counter sample of a metered figure.
fn metered(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    figure: Figure,
) -> Result<(), Error> {
    match figure {
        Figure::Count(n) => count(family, labels, n),
        Figure::Amount(x) => count(family, labels, x),
    }
}

/// A metered series: name suffix, help, and its figure in a view.
type MeterSeries = (&'static str, &'static str, fn(&MeterView) -> Figure);

/// The metered series, per function (`floe_*`) and per live instance
/// (`floe_instance_*`).
const METER_SERIES: [MeterSeries; 5] = [
    ("invocations_total", "Requests and events executed.", |v| {
        Figure::Count(v.invocations)
    }),
    (
        "busy_seconds_total",
        "Time executing requests and events.",
        |v| Figure::Amount(v.busy_ms / 1e3),
    ),
    (
        "frozen_seconds_total",
        "Time instances spent parked between requests (idle or frozen).",
        |v| Figure::Amount(v.frozen_ms / 1e3),
    ),
    ("hook_seconds_total", "Time in lifecycle hooks.", |v| {
        Figure::Amount(v.hook_ms / 1e3)
    }),
    (
        "compute_units_total",
        "GB of memory limit x seconds executed (requests, events, hooks), billed by the millisecond.",
        |v| Figure::Amount(v.compute_units),
    ),
];

/// The async invocation events counted, with their figures.
fn async_events(a: &AsyncFigures) -> [(&'static str, u64); 4] {
    [
        ("accepted", a.accepted),
        ("succeeded", a.succeeded),
        ("retried", a.retried),
        ("dead", a.dead),
    ]
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), Error> {
        self.encode_requests(&mut encoder)?;
        self.encode_hooks(&mut encoder)?;
        self.encode_pools(&mut encoder)?;
        self.encode_meters(&mut encoder)?;
        self.encode_events(&mut encoder)?;
        self.encode_server(&mut encoder)
    }
}

impl Scrape {
    /// Triggers (state, what they fired) and outboxes (depth, age, link).
    fn encode_events(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let e = &self.events;
        let mut family = gauge(
            encoder,
            "floe_trigger_state",
            "Triggers, 1 for the state each is in.",
        )?;
        for t in &e.triggers {
            let labels = [
                ("function", t.function.as_str()),
                ("trigger", t.trigger.as_str()),
                ("kind", t.kind),
                ("state", t.state),
            ];
            level(&mut family, &labels, 1u64)?;
        }
        for (name, help, pick) in [
            (
                "floe_trigger_fired_total",
                "Invocations a trigger started.",
                (|t| t.fired) as fn(&super::TriggerRow) -> u64,
            ),
            (
                "floe_trigger_messages_total",
                "MQTT messages a trigger received.",
                |t| t.received,
            ),
            (
                "floe_trigger_failures_total",
                "Runs or messages a trigger failed to queue or invoke.",
                |t| t.failed,
            ),
        ] {
            let mut family = counter(encoder, name, help)?;
            for t in &e.triggers {
                let labels = [
                    ("function", t.function.as_str()),
                    ("trigger", t.trigger.as_str()),
                ];
                count(&mut family, &labels, pick(t))?;
            }
        }
        let mut family = gauge(
            encoder,
            "floe_outbox_depth",
            "MQTT messages in a function's outbox, waiting for the broker.",
        )?;
        for o in &e.outboxes {
            level(&mut family, &[("function", o.function.as_str())], o.depth)?;
        }
        let mut family = gauge(
            encoder,
            "floe_outbox_bytes",
            "Bytes in a function's outbox.",
        )?;
        for o in &e.outboxes {
            level(&mut family, &[("function", o.function.as_str())], o.bytes)?;
        }
        let mut family = gauge(
            encoder,
            "floe_outbox_oldest_age_seconds",
            "Age of the oldest message in a function's outbox.",
        )?;
        for o in &e.outboxes {
            level(
                &mut family,
                &[("function", o.function.as_str())],
                o.oldest_age_seconds,
            )?;
        }
        let mut family = gauge(
            encoder,
            "floe_outbox_connected",
            "1 when a function's outbox is connected to its broker.",
        )?;
        for o in &e.outboxes {
            level(
                &mut family,
                &[("function", o.function.as_str())],
                u64::from(o.connected),
            )?;
        }
        let mut family = counter(
            encoder,
            "floe_outbox_sent_total",
            "Outbox messages the broker took.",
        )?;
        for o in &e.outboxes {
            count(&mut family, &[("function", o.function.as_str())], o.sent)?;
        }
        let mut family = counter(
            encoder,
            "floe_outbox_refused_total",
            "Publishes refused because the outbox was full.",
        )?;
        for o in &e.outboxes {
            count(&mut family, &[("function", o.function.as_str())], o.refused)?;
        }
        let runs: u64 = e.cron_lateness.iter().map(|(_, n)| n).sum();
        if runs > 0 {
            let mut family = histogram(
                encoder,
                "floe_cron_lateness_seconds",
                "How late cron runs fired after their scheduled time.",
            )?;
            family.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                e.cron_lateness_sum,
                runs,
                &e.cron_lateness,
                None,
            )?;
        }
        Ok(())
    }

    /// Requests, errors and their latency, per function.
    fn encode_requests(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let mut family = counter(
            encoder,
            "floe_requests_total",
            "Requests answered, by function and status class.",
        )?;
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        for (name, m) in &self.functions {
            for (class, c) in CLASSES.iter().zip(&m.responses) {
                let n = c.load(Relaxed);
                if n > 0 {
                    count(&mut family, &[("function", &**name), ("status", *class)], n)?;
                }
            }
        }
        let mut family = counter(
            encoder,
            "floe_request_errors_total",
            "Requests floe answered with an error, by code.",
        )?;
        for (name, m) in &self.functions {
            for (code, c) in ErrorCode::ALL.iter().zip(&m.errors) {
                let n = c.load(Relaxed);
                if n > 0 {
                    count(
                        &mut family,
                        &[("function", &**name), ("code", code.as_str())],
                        n,
                    )?;
                }
            }
        }
        let mut family = counter(
            encoder,
            "floe_outbound_requests_total",
            "Outbound HTTP requests of functions, sent or denied by their policy.",
        )?;
        for (name, m) in &self.functions {
            for (outcome, c) in ["sent", "denied"].iter().zip(&m.outbound) {
                let n = c.load(Relaxed);
                if n > 0 {
                    count(
                        &mut family,
                        &[("function", &**name), ("outcome", *outcome)],
                        n,
                    )?;
                }
            }
        }
        let mut family = histogram(
            encoder,
            "floe_request_duration_seconds",
            "Time from request to response head.",
        )?;
        for (name, m) in &self.functions {
            m.duration
                .encode(family.encode_family(&[("function", &**name)])?)?;
        }
        Ok(())
    }

    /// Lifecycle hook calls, failures and time, and instance starts.
    fn encode_hooks(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let mut family = counter(
            encoder,
            "floe_hook_calls_total",
            "Lifecycle hook calls, by function and hook.",
        )?;
        for (name, m) in &self.functions {
            for (hook, h) in Hook::ALL.iter().zip(&m.hooks) {
                let n = h.calls.load(Relaxed);
                if n > 0 {
                    count(
                        &mut family,
                        &[("function", &**name), ("hook", hook.name())],
                        n,
                    )?;
                }
            }
        }
        let mut family = counter(
            encoder,
            "floe_hook_failures_total",
            "Hook calls that trapped or overran their time limit.",
        )?;
        for (name, m) in &self.functions {
            for (hook, h) in Hook::ALL.iter().zip(&m.hooks) {
                let n = h.failures.load(Relaxed);
                if n > 0 {
                    count(
                        &mut family,
                        &[("function", &**name), ("hook", hook.name())],
                        n,
                    )?;
                }
            }
        }
        let mut family = histogram(
            encoder,
            "floe_hook_duration_seconds",
            "Time spent in lifecycle hooks.",
        )?;
        for (name, m) in &self.functions {
            for (hook, h) in Hook::ALL.iter().zip(&m.hooks) {
                if h.calls.load(Relaxed) > 0 {
                    let labels = [("function", &**name), ("hook", hook.name())];
                    h.duration.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = histogram(
            encoder,
            "floe_instance_start_seconds",
            "Time to start an instance (and run init per instance).",
        )?;
        for (name, m) in &self.functions {
            if m.instance_start.count() > 0 {
                m.instance_start
                    .encode(family.encode_family(&[("function", &**name)])?)?;
            }
        }
        Ok(())
    }

    /// Instances by state and the autoscaler's target, per pool.
    fn encode_pools(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let mut family = gauge(
            encoder,
            "floe_instances",
            "Instances of a function's active version, by state.",
        )?;
        for p in &self.pools {
            for (state, n) in &p.states {
                let labels = (
                    [("function", &*p.function)],
                    ([("version", p.version)], [("state", *state)]),
                );
                level(&mut family, &labels, *n)?;
            }
        }
        let mut family = gauge(
            encoder,
            "floe_scaling_target",
            "Instances the autoscaler keeps warm.",
        )?;
        for p in &self.pools {
            level(&mut family, &[("function", &*p.function)], p.target)?;
        }
        let mut family = gauge(
            encoder,
            "floe_fresh_instances",
            "1 when a function's active version gets a fresh instance per request because it answers only the first request of an instance (reuse unset).",
        )?;
        for p in &self.pools {
            let labels = ([("function", &*p.function)], [("version", p.version)]);
            level(&mut family, &labels, u32::from(p.fresh))?;
        }
        Ok(())
    }

    /// Metering per function and per live instance, then the pools' starts
    /// and queues.
    fn encode_meters(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let views: Vec<MeterView> = self.functions.iter().map(|(_, m)| m.meter.view()).collect();
        for (suffix, help, figure) in METER_SERIES {
            let name = format!("floe_{suffix}");
            let mut family = counter(encoder, &name, help)?;
            for ((function, _), view) in self.functions.iter().zip(&views) {
                metered(&mut family, &[("function", &**function)], figure(view))?;
            }
            let name = format!("floe_instance_{suffix}");
            let help = format!("{help} Per live instance.");
            let mut family = counter(encoder, &name, &help)?;
            for p in &self.pools {
                for (id, view) in &p.instances {
                    let labels = ([("function", &*p.function)], [("instance", *id)]);
                    metered(&mut family, &labels, figure(view))?;
                }
            }
        }
        let mut family = counter(
            encoder,
            "floe_instances_started_total",
            "Instances started for a function's active version.",
        )?;
        for p in &self.pools {
            let labels = ([("function", &*p.function)], [("version", p.version)]);
            count(&mut family, &labels, p.counts.started)?;
        }
        let mut family = gauge(
            encoder,
            "floe_queued_requests",
            "Requests waiting for an instance.",
        )?;
        for p in &self.pools {
            level(&mut family, &[("function", &*p.function)], p.counts.queued)?;
        }
        Ok(())
    }

    /// Server-wide figures, and the async invocation service's.
    fn encode_server(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let none: [(&str, &str); 0] = [];
        let mut family = gauge(
            encoder,
            "floe_instances_total",
            "Instances alive on the server.",
        )?;
        level(&mut family, &none, self.instances_total)?;
        let mut family = gauge(encoder, "floe_functions", "Functions deployed.")?;
        level(&mut family, &none, self.pools.len() as u64)?;
        let mut family = counter(
            encoder,
            "floe_deploys_total",
            "Deploys that created a version.",
        )?;
        count(&mut family, &none, self.deploys)?;
        let mut family = counter(encoder, "floe_deploy_failures_total", "Deploys rejected.")?;
        count(&mut family, &none, self.deploy_failures)?;
        let mut family = counter(
            encoder,
            "floe_unrouted_requests_total",
            "Requests for functions that do not exist.",
        )?;
        count(&mut family, &none, self.unrouted)?;

        let a = &self.asynchronous;
        let mut family = gauge(
            encoder,
            "floe_async_queue_depth",
            "Async invocations queued or running.",
        )?;
        level(&mut family, &none, a.queue_depth)?;
        let mut family = gauge(encoder, "floe_async_dead_letters", "Dead invocations kept.")?;
        level(&mut family, &none, a.dead_letters)?;
        let mut family = counter(
            encoder,
            "floe_async_invocations_total",
            "Async invocations, by what happened.",
        )?;
        for (event, n) in async_events(a) {
            count(&mut family, &[("event", event)], n)?;
        }
        Ok(())
    }
}
