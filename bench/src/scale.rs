//! Scale-out: how fast floe starts instances from zero, what an idle
//! instance costs, and whether admitted requests keep their latency when a
//! function is flooded past its maximum.
//!
//! - **Reserved prewarm**: `min_instances = N` set on a deployed hello with
//!   no instance; instances started per second, and private memory per idle
//!   instance (`smaps_rollup` delta / N).
//! - **Step load**: N connections opened, then one slow request (1 s on a
//!   host timer) sent on each at the same moment. Each request is served by an
//!   instance started for it, so the last one to be served tells when all N
//!   instances were serving: its latency minus the 1 s of sleep.
//! - **Overload**: a function capped at `max_instances` with a queue of the
//!   same length, driven at its nominal concurrency and at 10x; latency of
//!   the admitted requests (200) kept apart from the rejections (503).

use crate::load::{self, Latencies};
use crate::prepare::{Tools, eprintln_status};
use crate::report::median;
use crate::servers::Memory;
use crate::{Cli, Floe, http_get};
use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Reserved instances to prewarm, from zero, in turn.
const PREWARM: &[u32] = &[100, 1_000, 10_000];
const PREWARM_QUICK: &[u32] = &[100, 1_000];
/// Concurrent requests of the step load.
const BURST: usize = 1_000;
const BURST_QUICK: usize = 200;
/// How long each request of the step load sleeps in the function.
const BURST_SLEEP: Duration = Duration::from_secs(1);
/// The overloaded function's cap, and its nominal concurrency.
const OVERLOAD_INSTANCES: u32 = 8;
/// Work per overload request: a 10 ms backend call.
const OVERLOAD_MS: u64 = 10;
/// How long floe may take to reach a target.
const SETTLE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PrewarmSample {
    pub(crate) instances: u32,
    /// From the `min_instances` change to all N idle (includes up to one
    /// autoscaler tick).
    configure_to_ready_ms: f64,
    /// From the first instance seen live to all N idle.
    first_to_last_ms: f64,
    /// N / `first_to_last_ms`.
    pub(crate) started_per_s: f64,
    pub(crate) before: Memory,
    pub(crate) after: Memory,
    pub(crate) private_kib_per_instance: f64,
    rss_kib_per_instance: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct BurstSample {
    requests: usize,
    ok: usize,
    /// Instances the server started for the burst.
    started: u64,
    /// The burst's first request to the last one being served.
    all_serving_ms: f64,
    /// `requests` / `all_serving_ms`.
    started_per_s: f64,
    /// Median time before a request was being served.
    median_wait_ms: f64,
    /// Private memory per instance once the burst is over and all its
    /// instances are idle, having served one request each.
    private_kib_per_used_instance: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct OverloadSample {
    /// `nominal` (connections = max_instances) or `10x`.
    load: &'static str,
    connections: usize,
    admitted_per_s: f64,
    rejected_per_s: f64,
    admitted_p50_ms: f64,
    admitted_p99_ms: f64,
    rejected_p99_ms: Option<f64>,
    unexpected: usize,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ScaleResults {
    pub(crate) prewarm: Vec<PrewarmSample>,
    burst: Vec<BurstSample>,
    overload: Vec<OverloadSample>,
}

pub(crate) fn scale(cli: &Cli, tools: &Tools) -> Result<ScaleResults> {
    let runtime = tokio::runtime::Runtime::new()?;
    let mut results = ScaleResults::default();
    let hello = bytes::Bytes::from(std::fs::read(&tools.hello)?);
    let slow = bytes::Bytes::from(std::fs::read(&tools.slow)?);
    let prewarm_sizes = if cli.quick { PREWARM_QUICK } else { PREWARM };
    for round in 0..cli.runs {
        for &n in prewarm_sizes {
            if let Some(why) = too_many_mappings(n) {
                eprintln_status(&format!("scale: skipping prewarm {n}: {why}"));
                continue;
            }
            eprintln_status(&format!("scale round {}: prewarm {n}", round + 1));
            results
                .prewarm
                .push(runtime.block_on(prewarm(tools, &hello, n, round))?);
        }
        let n = if cli.quick { BURST_QUICK } else { BURST };
        eprintln_status(&format!("scale round {}: step load of {n}", round + 1));
        results
            .burst
            .push(runtime.block_on(burst(tools, &slow, n, round))?);
        eprintln_status(&format!("scale round {}: overload", round + 1));
        results.overload.extend(runtime.block_on(overload(
            tools,
            &slow,
            Duration::from_secs(cli.duration),
            round,
        ))?);
    }
    Ok(results)
}

/// Memory mappings floe's pooling allocator needs per live instance, and
/// for the rest of the process (see floe's startup check).
const MAPPINGS_PER_INSTANCE: u64 = 7;
const MAPPINGS_BASE: u64 = 1_000;

/// Why `n` instances cannot all be live under this kernel's
/// `vm.max_map_count`, if they cannot.
fn too_many_mappings(n: u32) -> Option<String> {
    let allowed: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let budget = budget(n)[0].1.parse::<u64>().ok()?;
    let needed = budget * MAPPINGS_PER_INSTANCE + MAPPINGS_BASE;
    (needed > allowed).then(|| {
        format!("needs vm.max_map_count >= {needed} (it is {allowed}; `sysctl -w vm.max_map_count={needed}`)")
    })
}

/// Room for `n` instances in the server's instance budget.
fn budget(n: u32) -> Vec<(&'static str, String)> {
    vec![("FLOE_LIMITS__MAX_INSTANCES_TOTAL", n.max(1_000).to_string())]
}

async fn info(floe: &Floe, name: &str) -> Result<Value> {
    Ok(floe.client.info(name).await?)
}

fn count(view: &Value, pointer: &str) -> u64 {
    view.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// `function`'s instances by state, from the `floe_instances` gauges.
fn instance_states(floe: &Floe, function: &str) -> Result<HashMap<String, u64>> {
    let (status, text) = http_get(&format!("{}/metrics", floe.control))?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(parse_instance_states(&text, function))
}

fn parse_instance_states(metrics: &str, function: &str) -> HashMap<String, u64> {
    let prefix = format!("floe_instances{{function=\"{function}\",");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| {
            let state = rest.split("state=\"").nth(1)?.split('"').next()?;
            let n = rest.rsplit(' ').next()?.parse().ok()?;
            Some((state.to_owned(), n))
        })
        .collect()
}

async fn prewarm(
    tools: &Tools,
    hello: &bytes::Bytes,
    n: u32,
    round: usize,
) -> Result<PrewarmSample> {
    let floe = Floe::start(tools, &format!("prewarm-{round}-{n}"), &budget(n))?;
    floe.deploy("hello", hello.clone(), &[("max_instances", n.to_string())])
        .await?;
    // Past one `scaling.release_memory`: what compiling freed is handed back.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = floe.server.memory()?;
    let t0 = Instant::now();
    floe.client
        .configure("hello", &[("min_instances".to_owned(), n.to_string())])
        .await?;
    let mut first_live = None;
    loop {
        // The instance gauges of /metrics: the function's own view lists
        // every instance (~0.5 MB at 1,000), and reading it every
        // millisecond would take the CPU the starts are measured on.
        let states = instance_states(&floe, "hello")?;
        let of = |state: &str| states.get(state).copied().unwrap_or(0);
        if first_live.is_none() && states.values().sum::<u64>() > 0 {
            first_live = Some(Instant::now());
        }
        let ready = of("idle") + of("frozen");
        if ready >= u64::from(n) {
            break;
        }
        if t0.elapsed() > SETTLE {
            bail!("{ready} of {n} reserved instances after {SETTLE:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = Instant::now();
    let first = first_live.unwrap_or(ready);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = floe.server.memory()?;
    let span = (ready - first).as_secs_f64();
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / f64::from(n);
    Ok(PrewarmSample {
        instances: n,
        configure_to_ready_ms: (ready - t0).as_secs_f64() * 1e3,
        first_to_last_ms: span * 1e3,
        started_per_s: f64::from(n) / span.max(1e-6),
        private_kib_per_instance: per(after.private_kib, before.private_kib),
        rss_kib_per_instance: per(after.rss_kib, before.rss_kib),
        before,
        after,
    })
}

async fn burst(tools: &Tools, slow: &bytes::Bytes, n: usize, round: usize) -> Result<BurstSample> {
    let cap = u32::try_from(n)?;
    let floe = Floe::start(tools, &format!("burst-{round}"), &budget(cap))?;
    floe.deploy(
        "slow",
        slow.clone(),
        &[
            ("max_instances", cap.to_string()),
            ("max_queue", cap.to_string()),
        ],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = floe.server.memory()?;
    let path = format!("/slow/?ms={}", BURST_SLEEP.as_millis());
    let answers = load::burst(floe.data_addr()?, &path, n).await?;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let waits: Vec<f64> = answers
        .iter()
        .map(|(_, took)| took.saturating_sub(BURST_SLEEP).as_secs_f64() * 1e3)
        .collect();
    let all_serving_ms = waits.iter().copied().fold(0.0, f64::max);
    let view = info(&floe, "slow").await?;
    // Past one `scaling.release_memory` (1 s), so that what the burst freed
    // (connections, request state) is no longer counted.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = floe.server.memory()?;
    let started = count(&view, "/instances/started");
    Ok(BurstSample {
        requests: n,
        ok,
        started,
        all_serving_ms,
        started_per_s: n as f64 / (all_serving_ms / 1e3).max(1e-6),
        median_wait_ms: median(&waits),
        private_kib_per_used_instance: after.private_kib.saturating_sub(before.private_kib) as f64
            / started.max(1) as f64,
    })
}

async fn overload(
    tools: &Tools,
    slow: &bytes::Bytes,
    duration: Duration,
    round: usize,
) -> Result<Vec<OverloadSample>> {
    let floe = Floe::start(tools, &format!("overload-{round}"), &[])?;
    let cap = OVERLOAD_INSTANCES;
    floe.deploy(
        "slow",
        slow.clone(),
        &[
            ("max_instances", cap.to_string()),
            ("min_instances", cap.to_string()),
            ("max_queue", cap.to_string()),
            ("queue_timeout", "1s".to_owned()),
        ],
    )
    .await?;
    let addr = floe.data_addr()?;
    let path = format!("/slow/?ms={OVERLOAD_MS}");
    // Warm up: every instance started and used once.
    load::closed_loop(addr, &path, cap as usize, Duration::from_secs(1)).await?;
    let mut samples = Vec::new();
    for (load, connections) in [("nominal", cap as usize), ("10x", 10 * cap as usize)] {
        let seen = load::closed_loop(addr, &path, connections, duration).await?;
        samples.push(summarize(load, connections, &seen, duration));
    }
    Ok(samples)
}

fn summarize(
    load: &'static str,
    connections: usize,
    seen: &Latencies,
    duration: Duration,
) -> OverloadSample {
    let secs = duration.as_secs_f64();
    OverloadSample {
        load,
        connections,
        admitted_per_s: seen.count(200) as f64 / secs,
        rejected_per_s: seen.count(503) as f64 / secs,
        admitted_p50_ms: seen.quantile_ms(200, 0.5).unwrap_or(f64::NAN),
        admitted_p99_ms: seen.quantile_ms(200, 0.99).unwrap_or(f64::NAN),
        rejected_p99_ms: seen.quantile_ms(503, 0.99),
        unexpected: seen.unexpected(503),
    }
}

pub(crate) fn print(results: &ScaleResults) {
    println!(
        "\nscale-out from zero: reserved instances of the Rust hello (min_instances = N), medians"
    );
    println!(
        "{:>8} {:>16} {:>16} {:>16} {:>20} {:>16}",
        "N", "configure->all", "first->all", "started/s", "private KiB/inst", "RSS KiB/inst"
    );
    let mut sizes: Vec<u32> = results.prewarm.iter().map(|s| s.instances).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let of: Vec<&PrewarmSample> = results
            .prewarm
            .iter()
            .filter(|s| s.instances == n)
            .collect();
        let m = |f: fn(&PrewarmSample) -> f64| median(&of.iter().map(|s| f(s)).collect::<Vec<_>>());
        println!(
            "{:>8} {:>13.1} ms {:>13.1} ms {:>16.0} {:>20.1} {:>16.1}",
            n,
            m(|s| s.configure_to_ready_ms),
            m(|s| s.first_to_last_ms),
            m(|s| s.started_per_s),
            m(|s| s.private_kib_per_instance),
            m(|s| s.rss_kib_per_instance),
        );
    }
    if !results.burst.is_empty() {
        let b = &results.burst;
        let m = |f: fn(&BurstSample) -> f64| median(&b.iter().map(f).collect::<Vec<_>>());
        println!(
            "\nstep load: {} concurrent 1 s requests on pre-opened connections, from zero instances, medians",
            b[0].requests
        );
        println!(
            "  first request -> all {} serving: {:.1} ms ({:.0} instances started/s); median wait {:.1} ms",
            b[0].requests,
            m(|s| s.all_serving_ms),
            m(|s| s.started_per_s),
            m(|s| s.median_wait_ms),
        );
        println!(
            "  answered 200: {} of {}; instances started: {}; private memory per idle used instance: {:.1} KiB",
            b.iter().map(|s| s.ok).min().unwrap_or(0),
            b[0].requests,
            b.iter().map(|s| s.started).max().unwrap_or(0),
            m(|s| s.private_kib_per_used_instance),
        );
    }
    if !results.overload.is_empty() {
        println!(
            "\noverload: {OVERLOAD_MS} ms requests, max_instances = max_queue = {OVERLOAD_INSTANCES}, medians"
        );
        println!(
            "{:<10} {:>6} {:>12} {:>12} {:>14} {:>14} {:>14} {:>10}",
            "load", "conns", "200/s", "503/s", "200 p50 ms", "200 p99 ms", "503 p99 ms", "other"
        );
        for load in ["nominal", "10x"] {
            let of: Vec<&OverloadSample> =
                results.overload.iter().filter(|s| s.load == load).collect();
            if of.is_empty() {
                continue;
            }
            let m = |f: fn(&OverloadSample) -> f64| {
                median(&of.iter().map(|s| f(s)).collect::<Vec<_>>())
            };
            println!(
                "{:<10} {:>6} {:>12.0} {:>12.0} {:>14.2} {:>14.2} {:>14.2} {:>10}",
                load,
                of[0].connections,
                m(|s| s.admitted_per_s),
                m(|s| s.rejected_per_s),
                m(|s| s.admitted_p50_ms),
                m(|s| s.admitted_p99_ms),
                m(|s| s.rejected_p99_ms.unwrap_or(f64::NAN)),
                of.iter().map(|s| s.unexpected).sum::<usize>(),
            );
        }
    }
}

/// Medians over the rounds, per number of reserved instances.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct PrewarmSummary {
    pub(crate) instances: u32,
    pub(crate) started_per_s: f64,
    pub(crate) private_kib_per_instance: f64,
    /// The server's private memory with the function deployed and no
    /// instance, KiB.
    pub(crate) private_kib_before: f64,
    /// With the N instances idle.
    pub(crate) private_kib_after: f64,
}

/// The prewarm medians, by increasing N.
pub(crate) fn prewarm_summaries(results: &ScaleResults) -> Vec<PrewarmSummary> {
    let mut sizes: Vec<u32> = results.prewarm.iter().map(|s| s.instances).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
        .into_iter()
        .map(|n| {
            let of: Vec<&PrewarmSample> = results
                .prewarm
                .iter()
                .filter(|s| s.instances == n)
                .collect();
            let m =
                |f: fn(&PrewarmSample) -> f64| median(&of.iter().map(|s| f(s)).collect::<Vec<_>>());
            PrewarmSummary {
                instances: n,
                started_per_s: m(|s| s.started_per_s),
                private_kib_per_instance: m(|s| s.private_kib_per_instance),
                private_kib_before: m(|s| s.before.private_kib as f64),
                private_kib_after: m(|s| s.after.private_kib as f64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_states_come_from_the_gauges() {
        let text = "# TYPE floe_instances gauge\nfloe_instances{function=\"hello\",version=\"1\",state=\"idle\"} 998\nfloe_instances{function=\"hello\",version=\"1\",state=\"starting\"} 2\nfloe_instances{function=\"hello2\",version=\"1\",state=\"idle\"} 5\n";
        let states = parse_instance_states(text, "hello");
        assert_eq!(states.get("idle"), Some(&998));
        assert_eq!(states.get("starting"), Some(&2));
        assert_eq!(states.len(), 2);
    }
}
