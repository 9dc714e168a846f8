//! Cold paths: deploying (upload to `201`, first response, process start
//! to first response) and the ~200 ms-init example (snapshot vs init per
//! instance vs `wasmtime serve`): upload to ready, first response after the
//! deploy, and requests that each need a fresh instance.

use crate::prepare::{Tools, eprintln_status};
use crate::report::median;
use crate::servers::Spawned;
use crate::{
    Cli, Floe, bench_dir, floe_command, http_get, ms, start_to_first_response, timed_gets,
    wasmtime_cold, wasmtime_command,
};
use anyhow::{Result, bail};
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeploySample {
    /// floe: PUT of the component to its 201.
    pub(crate) upload_to_201_ms: f64,
    /// floe: the first request after the 201 (starts an instance).
    pub(crate) first_request_ms: f64,
    /// floe: the request after that (a reused instance).
    pub(crate) second_request_ms: f64,
    /// floe: process start (with --deploy, nothing cached) to first 200.
    pub(crate) floe_start_to_first_response_ms: f64,
    /// wasmtime serve: process start (cache off) to first 200.
    pub(crate) wasmtime_start_to_first_response_ms: Option<f64>,
}

pub(crate) fn deploy(cli: &Cli, tools: &Tools) -> Result<Vec<DeploySample>> {
    let component = bytes::Bytes::from(std::fs::read(&tools.hello)?);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut samples = Vec::new();
    for round in 0..cli.runs.max(3) {
        eprintln_status(&format!("deploy round {}", round + 1));
        let floe = Floe::start(tools, &format!("deploy-{round}"), &[])?;
        let t0 = Instant::now();
        runtime.block_on(floe.deploy("hello", component.clone(), &[]))?;
        let upload = t0.elapsed();
        let url = format!("{}/hello/", floe.server.base);
        let t1 = Instant::now();
        http_get(&url)?;
        let first = t1.elapsed();
        let t2 = Instant::now();
        http_get(&url)?;
        let second = t2.elapsed();
        drop(floe);

        let dir = bench_dir(tools, &format!("deploy-start-{round}"), true)?;
        let mut cmd = floe_command(tools, &dir);
        cmd.arg("--deploy")
            .arg(format!("hello={}", tools.hello.display()));
        let floe_start = start_to_first_response(cmd, "/hello/")?;
        let wasmtime_start = match &tools.wasmtime {
            Some(_) => Some(
                start_to_first_response(wasmtime_cold(tools, &tools.hello)?, "/")?.as_secs_f64()
                    * 1e3,
            ),
            None => None,
        };
        samples.push(DeploySample {
            upload_to_201_ms: upload.as_secs_f64() * 1e3,
            first_request_ms: first.as_secs_f64() * 1e3,
            second_request_ms: second.as_secs_f64() * 1e3,
            floe_start_to_first_response_ms: floe_start.as_secs_f64() * 1e3,
            wasmtime_start_to_first_response_ms: wasmtime_start,
        });
    }
    Ok(samples)
}

pub(crate) fn print_deploy(samples: &[DeploySample]) {
    let m = |f: fn(&DeploySample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    println!(
        "\ndeploy and first response (hello component), {} rounds, medians",
        samples.len()
    );
    println!(
        "  floe upload -> 201 (validate, compile, store durably): {:>8.2} ms",
        m(|s| s.upload_to_201_ms)
    );
    println!(
        "  floe first request after the 201 (new instance):      {:>8.2} ms",
        m(|s| s.first_request_ms)
    );
    println!(
        "  floe second request (reused instance):                {:>8.2} ms",
        m(|s| s.second_request_ms)
    );
    println!(
        "  floe process start -> first response (--deploy):      {:>8.2} ms",
        m(|s| s.floe_start_to_first_response_ms)
    );
    let peer: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.wasmtime_start_to_first_response_ms)
        .collect();
    if !peer.is_empty() {
        println!(
            "  wasmtime serve start -> first response (cache off):   {:>8.2} ms",
            median(&peer)
        );
    }
}

/// One way of running the init example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum InitSubject {
    FloeSnapshot,
    FloeInstance,
    WasmtimeServe,
}

impl InitSubject {
    pub(crate) fn label(self) -> &'static str {
        match self {
            InitSubject::FloeSnapshot => "floe, preinit=snapshot",
            InitSubject::FloeInstance => "floe, preinit=instance",
            InitSubject::WasmtimeServe => "wasmtime serve (init on first use)",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct InitSample {
    pub(crate) subject: InitSubject,
    /// Until the function can be called: floe, upload to `201` (compiled,
    /// and with the snapshot, initialized); wasmtime serve, process start
    /// to listening (compiled).
    pub(crate) ready_ms: f64,
    /// The first request once the function is deployed (floe: after the
    /// 201; wasmtime serve: once it listens).
    pub(crate) first_response_ms: f64,
    /// Each of these requests needs a fresh instance.
    pub(crate) fresh_instance_ms: Vec<f64>,
    /// floe's own mean instance start time (from /metrics), microseconds.
    pub(crate) instance_start_us: Option<f64>,
}

/// Requests that each need a fresh instance, per subject and round.
const FRESH_REQUESTS: usize = 40;
const FRESH_REQUESTS_SLOW: usize = 8;

pub(crate) fn init(cli: &Cli, tools: &Tools) -> Result<Vec<InitSample>> {
    let component = bytes::Bytes::from(std::fs::read(&tools.init_table)?);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut samples = Vec::new();
    let mut subjects = vec![InitSubject::FloeSnapshot, InitSubject::FloeInstance];
    if tools.wasmtime.is_some() {
        subjects.push(InitSubject::WasmtimeServe);
    }
    for round in 0..cli.runs {
        for &subject in &subjects {
            eprintln_status(&format!("init round {}: {}", round + 1, subject.label()));
            samples.push(match subject {
                InitSubject::WasmtimeServe => {
                    let t0 = Instant::now();
                    let server = Spawned::start(wasmtime_command(tools, &[], &tools.init_table)?)?;
                    let ready = t0.elapsed();
                    let url = format!("{}/stats", server.base);
                    let t = Instant::now();
                    let (status, _) = http_get(&url)?;
                    if status != 200 {
                        bail!("wasmtime serve answered {status}");
                    }
                    let first = t.elapsed();
                    let fresh = timed_gets(&url, FRESH_REQUESTS_SLOW)?;
                    InitSample {
                        subject,
                        ready_ms: ms(ready),
                        first_response_ms: ms(first),
                        fresh_instance_ms: fresh,
                        instance_start_us: None,
                    }
                }
                _ => {
                    let floe = Floe::start(tools, &format!("init-{round}-{subject:?}"), &[])?;
                    let mut settings = vec![];
                    if subject == InitSubject::FloeInstance {
                        settings.push(("preinit", "instance".to_owned()));
                    }
                    let t0 = Instant::now();
                    runtime.block_on(floe.deploy("table", component.clone(), &settings))?;
                    let ready = t0.elapsed();
                    let url = format!("{}/table/stats", floe.server.base);
                    let t = Instant::now();
                    http_get(&url)?;
                    let first = t.elapsed();
                    runtime.block_on(
                        floe.client
                            .configure("table", &[("reuse".to_owned(), "false".to_owned())]),
                    )?;
                    let n = if subject == InitSubject::FloeSnapshot {
                        FRESH_REQUESTS
                    } else {
                        FRESH_REQUESTS_SLOW
                    };
                    let fresh = timed_gets(&url, n)?;
                    let (_, metrics) = http_get(&format!("{}/metrics", floe.control))?;
                    InitSample {
                        subject,
                        ready_ms: ms(ready),
                        first_response_ms: ms(first),
                        fresh_instance_ms: fresh,
                        instance_start_us: mean_seconds(&metrics, "floe_instance_start_seconds")
                            .map(|s| s * 1e6),
                    }
                }
            });
        }
    }
    Ok(samples)
}

/// `sum / count` of a histogram in Prometheus text (over all its labels).
fn mean_seconds(metrics: &str, name: &str) -> Option<f64> {
    let total = |suffix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let count = total("_count");
    (count > 0.0).then(|| total("_sum") / count)
}

pub(crate) fn print_init(samples: &[InitSample]) {
    println!(
        "\ninit example (init does ~200 ms of work), medians over rounds; ready: floe upload -> 201, \
         wasmtime serve start -> listening"
    );
    println!(
        "{:<36} {:>12} {:>18} {:>22} {:>20}",
        "server", "ready ms", "first response ms", "fresh-instance req ms", "instance start us"
    );
    let mut medians = Vec::new();
    for subject in [
        InitSubject::FloeSnapshot,
        InitSubject::FloeInstance,
        InitSubject::WasmtimeServe,
    ] {
        let of: Vec<&InitSample> = samples.iter().filter(|s| s.subject == subject).collect();
        if of.is_empty() {
            continue;
        }
        let first = median(&of.iter().map(|s| s.first_response_ms).collect::<Vec<_>>());
        let ready = median(&of.iter().map(|s| s.ready_ms).collect::<Vec<_>>());
        let fresh = median(
            &of.iter()
                .flat_map(|s| s.fresh_instance_ms.iter().copied())
                .collect::<Vec<_>>(),
        );
        let start: Vec<f64> = of.iter().filter_map(|s| s.instance_start_us).collect();
        let start = if start.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.1}", median(&start))
        };
        println!(
            "{:<36} {:>12.1} {:>18.2} {:>22.2} {:>20}",
            subject.label(),
            ready,
            first,
            fresh,
            start
        );
        medians.push((subject, first, fresh));
    }
    let get = |s: InitSubject| medians.iter().find(|m| m.0 == s).map(|m| (m.1, m.2));
    if let Some((first, fresh)) = get(InitSubject::FloeSnapshot) {
        for peer in [InitSubject::FloeInstance, InitSubject::WasmtimeServe] {
            if let Some((pf, pr)) = get(peer) {
                println!(
                    "snapshot vs {}: first response {:.0}x faster, fresh-instance request {:.0}x faster",
                    peer.label(),
                    pf / first,
                    pr / fresh
                );
            }
        }
    }
}
