//! The server's own footprint: binary size, start-to-ready and memory of an
//! idle server, and memory and restart-to-ready time with many functions
//! deployed.
//!
//! Every function is the Rust hello under its own name, deployed over the
//! control plane (the bytes are compiled once; the rest find the compiled
//! artifact by digest). The restart is a new process on the same data
//! directory, timed from spawn to the first `200` from the last function
//! deployed, with `/readyz` counting all of them.

use crate::prepare::{Tools, eprintln_status};
use crate::report::median;
use crate::servers::{Memory, Spawned};
use crate::{Cli, Floe, bench_dir, floe_command, http_get};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Functions deployed for the loaded measurements.
pub(crate) const FUNCTIONS: usize = 1_000;
/// Deploys in flight at once.
const PARALLEL_DEPLOYS: usize = 8;
/// Starts timed for the start-to-ready figure, per round.
const READY_STARTS: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct FootprintSample {
    /// `target/release/floe` as built (the release profile strips it).
    pub(crate) binary_bytes: u64,
    /// The same binary stripped again, if `strip` is installed.
    pub(crate) stripped_bytes: Option<u64>,
    /// A fresh server on an empty data directory: spawn to the first `200`
    /// from `/readyz` (the median of `READY_STARTS` starts).
    pub(crate) ready_empty_ms: f64,
    /// A fresh server with no function, a second after it listens.
    pub(crate) idle: Memory,
    pub(crate) functions: usize,
    /// Deploying `functions` functions, `PARALLEL_DEPLOYS` at a time.
    pub(crate) deploy_all_ms: f64,
    /// With `functions` functions deployed and none running.
    pub(crate) loaded: Memory,
    /// A new process on the same data directory: spawn to the last
    /// function's first `200`.
    pub(crate) restart_to_ready_ms: f64,
    /// Memory of the restarted server, a second after that response.
    pub(crate) restarted: Memory,
}

fn stripped_size(binary: &std::path::Path, dir: &std::path::Path) -> Option<u64> {
    let out = dir.join("floe-stripped");
    let ok = std::process::Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .status()
        .ok()?
        .success();
    let size = ok.then(|| std::fs::metadata(&out).ok().map(|m| m.len()))??;
    let _ = std::fs::remove_file(&out);
    Some(size)
}

/// Spawn to the first `200` from `/readyz`, for a server on a new, empty
/// data directory (it creates its token and secret key, as on a first
/// start), polled every 100 µs.
fn spawn_to_ready(tools: &Tools, tag: &str) -> Result<f64> {
    let dir = bench_dir(tools, tag, true)?;
    let mut cmd = floe_command(tools, &dir);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn().context("starting floe")?;
    let ready = loop {
        let control = std::fs::read_to_string(dir.join("control.url")).unwrap_or_default();
        if !control.trim().is_empty()
            && matches!(
                http_get(&format!("{}/readyz", control.trim())),
                Ok((200, _))
            )
        {
            break Ok(t0.elapsed().as_secs_f64() * 1e3);
        }
        if t0.elapsed() > Duration::from_secs(30) {
            break Err(anyhow::anyhow!("no ready floe within 30 s of spawn"));
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    ready
}

fn sample(tools: &Tools, round: usize, functions: usize) -> Result<FootprintSample> {
    let runtime = tokio::runtime::Runtime::new()?;
    let binary_bytes = std::fs::metadata(&tools.floe)
        .with_context(|| format!("{}", tools.floe.display()))?
        .len();
    let scratch = bench_dir(tools, &format!("footprint-bin-{round}"), true)?;
    let stripped_bytes = stripped_size(&tools.floe, &scratch);
    let starts = (0..READY_STARTS)
        .map(|i| spawn_to_ready(tools, &format!("footprint-ready-{round}-{i}")))
        .collect::<Result<Vec<_>>>()?;
    let ready_empty_ms = median(&starts);

    let limits = [("FLOE_LIMITS__MAX_FUNCTIONS", (functions + 100).to_string())];
    let floe = Floe::start(tools, &format!("footprint-{round}"), &limits)?;
    std::thread::sleep(Duration::from_secs(1));
    let idle = floe.server.memory()?;

    let hello = bytes::Bytes::from(std::fs::read(&tools.hello)?);
    let t0 = Instant::now();
    runtime.block_on(async {
        let mut names = (0..functions).map(|i| format!("f{i}"));
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < PARALLEL_DEPLOYS {
                let Some(name) = names.next() else { break };
                let (client, hello) = (floe.client.clone(), hello.clone());
                running.spawn(async move {
                    let (status, body) = client.deploy(&name, hello, &[]).await?;
                    if status != 201 {
                        bail!("deploying {name} answered {status}: {body}");
                    }
                    anyhow::Ok(())
                });
            }
            match running.join_next().await {
                Some(done) => done??,
                None => break,
            }
        }
        anyhow::Ok(())
    })?;
    let deploy_all = t0.elapsed();
    // Past one `scaling.release_memory`: what the deploys freed is returned.
    std::thread::sleep(Duration::from_millis(1_500));
    let loaded = floe.server.memory()?;
    let dir = floe.data_dir.clone();
    drop(floe);

    let mut cmd = floe_command(tools, &dir);
    cmd.envs(limits.iter().map(|(k, v)| (k, v)));
    let t1 = Instant::now();
    let server = Spawned::start(cmd)?;
    let last = format!("{}/f{}/", server.base, functions - 1);
    loop {
        if let Ok((200, _)) = http_get(&last) {
            break;
        }
        if t1.elapsed() > Duration::from_secs(120) {
            bail!("{last} did not answer 200 within 120 s of the restart");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let restart = t1.elapsed();
    let control = std::fs::read_to_string(dir.join("control.url"))?;
    let (_, ready) = http_get(&format!("{}/readyz", control.trim()))?;
    let count = ready
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(body).ok())
        .and_then(|v| v["functions"].as_u64());
    if count != Some(functions as u64) {
        bail!("after the restart /readyz counts {count:?} functions, not {functions}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let restarted = server.memory()?;
    Ok(FootprintSample {
        binary_bytes,
        stripped_bytes,
        ready_empty_ms,
        idle,
        functions,
        deploy_all_ms: deploy_all.as_secs_f64() * 1e3,
        loaded,
        restart_to_ready_ms: restart.as_secs_f64() * 1e3,
        restarted,
    })
}

/// Runs the scenario: `cli.runs` rounds.
pub(crate) fn footprint(cli: &Cli, tools: &Tools) -> Result<Vec<FootprintSample>> {
    (0..cli.runs)
        .map(|round| {
            eprintln_status(&format!(
                "footprint round {}/{}: {FUNCTIONS} functions",
                round + 1,
                cli.runs
            ));
            sample(tools, round, FUNCTIONS)
        })
        .collect()
}

/// The median of one figure over the rounds.
fn median_of(samples: &[FootprintSample], f: fn(&FootprintSample) -> f64) -> Option<f64> {
    (!samples.is_empty()).then(|| median(&samples.iter().map(f).collect::<Vec<_>>()))
}

/// The median start-to-ready time with no functions, milliseconds.
pub(crate) fn ready_empty_ms(samples: &[FootprintSample]) -> Option<f64> {
    median_of(samples, |s| s.ready_empty_ms)
}

/// The median RSS of an idle server with no functions, MiB.
pub(crate) fn idle_rss_mib(samples: &[FootprintSample]) -> Option<f64> {
    median_of(samples, |s| s.idle.rss_kib as f64 / 1024.0)
}

/// The stripped binary, MB.
pub(crate) fn stripped_mb(samples: &[FootprintSample]) -> Option<f64> {
    samples
        .first()
        .map(|s| s.stripped_bytes.unwrap_or(s.binary_bytes) as f64 / 1e6)
}

/// The median restart-to-ready time, milliseconds.
pub(crate) fn restart_ms(samples: &[FootprintSample]) -> Option<f64> {
    median_of(samples, |s| s.restart_to_ready_ms)
}

pub(crate) fn print(samples: &[FootprintSample]) {
    let Some(first) = samples.first() else {
        return;
    };
    let m = |f: fn(&FootprintSample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    let mib = |kib: f64| kib / 1024.0;
    println!("\nserver footprint, {} round(s), medians", samples.len());
    println!(
        "  binary: {:.1} MB as built{}",
        first.binary_bytes as f64 / 1e6,
        first
            .stripped_bytes
            .map(|b| format!(", {:.1} MB stripped", b as f64 / 1e6))
            .unwrap_or_default()
    );
    println!(
        "  start on an empty data directory, spawn -> /readyz 200: {:.1} ms",
        m(|s| s.ready_empty_ms)
    );
    println!(
        "  idle, no functions: RSS {:.1} MiB, private {:.1} MiB",
        mib(m(|s| s.idle.rss_kib as f64)),
        mib(m(|s| s.idle.private_kib as f64))
    );
    println!(
        "  {} functions deployed ({:.0} ms for all): RSS {:.1} MiB, private {:.1} MiB",
        first.functions,
        m(|s| s.deploy_all_ms),
        mib(m(|s| s.loaded.rss_kib as f64)),
        mib(m(|s| s.loaded.private_kib as f64))
    );
    println!(
        "  restart with {} functions, spawn -> last function's first 200: {:.0} ms; then RSS {:.1} MiB, private {:.1} MiB",
        first.functions,
        m(|s| s.restart_to_ready_ms),
        mib(m(|s| s.restarted.rss_kib as f64)),
        mib(m(|s| s.restarted.private_kib as f64))
    );
}
