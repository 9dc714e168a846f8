//! Warm requests: requests/s, latency percentiles and server CPU per
//! request, for several workloads at several connection counts, floe beside
//! `wasmtime serve` (and plain hyper where it can do the same work).
//!
//! Each server is started once per workload and round, warmed up, then
//! loaded at every connection count in turn. Servers alternate within a
//! round (A B C, A B C, ...); the report gives medians over the rounds.

use crate::prepare::{Tools, eprintln_status};
use crate::report::{median, spread};
use crate::servers::Spawned;
use crate::wrk::{self, Requests, WrkResult};
use crate::{Cli, bench_dir, floe_command, http_request, wasmtime_command};
use anyhow::{Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What the servers are asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Workload {
    /// The Rust hello example: a `GET`, a short text answer.
    Hello,
    /// The Rust echo example: a 1 KiB JSON `POST`, echoed back.
    JsonEcho,
    /// The Rust compute example: ~1 ms of CPU per request.
    Compute,
    /// The JavaScript SDK's hello.
    JsHello,
    /// The Python SDK's hello.
    PyHello,
}

impl Workload {
    pub(crate) const ALL: [Workload; 5] = [
        Workload::Hello,
        Workload::JsonEcho,
        Workload::Compute,
        Workload::JsHello,
        Workload::PyHello,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Workload::Hello => "Rust hello",
            Workload::JsonEcho => "Rust 1 KiB JSON echo",
            Workload::Compute => "Rust ~1 ms compute",
            Workload::JsHello => "JavaScript hello",
            Workload::PyHello => "Python hello",
        }
    }

    fn component(self, tools: &Tools, sdk: &SdkComponents) -> PathBuf {
        match self {
            Workload::Hello => tools.hello.clone(),
            Workload::JsonEcho => tools.echo.clone(),
            Workload::Compute => tools.compute.clone(),
            Workload::JsHello => sdk.js.clone(),
            Workload::PyHello => sdk.python.clone(),
        }
    }

    fn requests(self) -> Requests {
        match self {
            Workload::JsonEcho => Requests {
                post: Some(("application/json", json_kib())),
            },
            _ => Requests::default(),
        }
    }

    /// The servers that can run this workload.
    fn subjects(self, with_wasmtime: bool) -> Vec<Subject> {
        let mut subjects = vec![Subject::Floe];
        if self == Workload::Hello {
            subjects.push(Subject::FloeFresh);
        }
        if with_wasmtime {
            subjects.push(Subject::WasmtimeServe);
            // componentize-js components answer 500 to every request after
            // an instance's first: reuse is not a valid setting for them.
            if self != Workload::JsHello {
                subjects.push(Subject::WasmtimeServeReuse);
            }
        }
        if matches!(self, Workload::Hello | Workload::JsonEcho) {
            subjects.push(Subject::Hyper);
        }
        subjects
    }
}

/// A JSON document of exactly 1,024 bytes.
pub(crate) fn json_kib() -> String {
    let head = "{\"id\":42,\"name\":\"floe\",\"tags\":[\"edge\",\"faas\"],\"pad\":\"";
    let tail = "\"}";
    let pad = 1024 - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// The JavaScript and Python hello components (built by the SDKs).
#[derive(Debug, Clone)]
pub(crate) struct SdkComponents {
    pub(crate) js: PathBuf,
    pub(crate) python: PathBuf,
}

/// One server configuration under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) enum Subject {
    Floe,
    FloeFresh,
    WasmtimeServe,
    WasmtimeServeReuse,
    Hyper,
}

impl Subject {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Subject::Floe => "floe (default: reuse)",
            Subject::FloeFresh => "floe reuse=false",
            Subject::WasmtimeServe => "wasmtime serve (default)",
            Subject::WasmtimeServeReuse => "wasmtime serve reuse=1000",
            Subject::Hyper => "plain hyper (ceiling)",
        }
    }
}

/// One measurement: a server, a workload, a connection count, a round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    pub(crate) workload: Workload,
    pub(crate) subject: Subject,
    pub(crate) connections: u32,
    pub(crate) round: usize,
    pub(crate) wrk: WrkResult,
    pub(crate) cpu_us_per_request: f64,
    pub(crate) rss_kib: u64,
}

/// Starts `subject` serving `workload`; the server and the URL to load.
fn start(
    subject: Subject,
    workload: Workload,
    tools: &Tools,
    sdk: &SdkComponents,
) -> Result<(Spawned, String)> {
    let component = workload.component(tools, sdk);
    let (cmd, path) = match subject {
        Subject::Floe | Subject::FloeFresh => {
            // One data directory per workload and subject, kept across
            // rounds: later rounds start from the stored compilation.
            let dir = bench_dir(tools, &format!("warm-{workload:?}-{subject:?}"), false)?;
            let mut cmd = floe_command(tools, &dir);
            cmd.arg("--deploy")
                .arg(format!("f={}", component.display()));
            if subject == Subject::FloeFresh {
                cmd.env("FLOE_FUNCTIONS__REUSE", "false");
            }
            (cmd, "/f/")
        }
        Subject::WasmtimeServe => (wasmtime_command(tools, &[], &component)?, "/"),
        Subject::WasmtimeServeReuse => (
            wasmtime_command(tools, &["--max-instance-reuse-count", "1000"], &component)?,
            "/",
        ),
        Subject::Hyper => {
            let mut cmd = std::process::Command::new(&tools.hyper);
            cmd.arg("127.0.0.1:0");
            (cmd, "/")
        }
    };
    let server = Spawned::start(cmd)?;
    let url = format!("{}{path}", server.base);
    let post = workload.requests().post;
    let (status, body) = http_request(&url, post.as_ref().map(|(t, b)| (*t, b.as_str())))?;
    if status != 200 {
        bail!(
            "{} answered {status} to a test request for {}: {body}",
            subject.label(),
            workload.label()
        );
    }
    Ok((server, url))
}

/// Runs the matrix: every workload, server and connection count, `cli.runs`
/// rounds.
pub(crate) fn warm(cli: &Cli, tools: &Tools, sdk: &SdkComponents) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let duration = Duration::from_secs(cli.duration);
    for round in 0..cli.runs {
        for workload in Workload::ALL {
            for subject in workload.subjects(tools.wasmtime.is_some()) {
                eprintln_status(&format!(
                    "warm round {}/{}: {} on {}",
                    round + 1,
                    cli.runs,
                    workload.label(),
                    subject.label()
                ));
                let (server, url) = start(subject, workload, tools, sdk)?;
                let requests = workload.requests();
                // Warm up: instances started, caches filled.
                wrk::run(&url, 50, Duration::from_secs(1), &requests)?;
                for &connections in &cli.connections {
                    let cpu_before = server.cpu_seconds()?;
                    let wrk = wrk::run(&url, connections, duration, &requests)?;
                    let cpu = server.cpu_seconds()? - cpu_before;
                    samples.push(Sample {
                        workload,
                        subject,
                        connections,
                        round,
                        cpu_us_per_request: cpu * 1e6 / wrk.requests.max(1) as f64,
                        rss_kib: server.rss_kib()?,
                        wrk,
                    });
                }
            }
        }
    }
    Ok(samples)
}

/// Medians over the rounds of one server, workload and connection count.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Summary {
    pub(crate) workload: Workload,
    pub(crate) subject: Subject,
    pub(crate) connections: u32,
    pub(crate) ok_per_sec: f64,
    pub(crate) ok_per_sec_min: f64,
    pub(crate) ok_per_sec_max: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) cpu_us_per_request: f64,
    /// Non-2xx answers and socket errors, over all rounds.
    pub(crate) failed: u64,
}

/// The medians of `samples`, in workload, server and connection order.
pub(crate) fn summarize(samples: &[Sample]) -> Vec<Summary> {
    let mut keys: Vec<(usize, Subject, u32)> = samples
        .iter()
        .map(|s| {
            let w = Workload::ALL
                .iter()
                .position(|w| *w == s.workload)
                .unwrap_or(0);
            (w, s.subject, s.connections)
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(w, subject, connections)| {
            let workload = Workload::ALL[w];
            let of: Vec<&Sample> = samples
                .iter()
                .filter(|s| {
                    s.workload == workload && s.subject == subject && s.connections == connections
                })
                .collect();
            let m = |f: fn(&Sample) -> f64| median(&of.iter().map(|s| f(s)).collect::<Vec<_>>());
            let rps: Vec<f64> = of.iter().map(|s| s.wrk.ok_per_sec).collect();
            let (lo, hi) = spread(&rps);
            Summary {
                workload,
                subject,
                connections,
                ok_per_sec: median(&rps),
                ok_per_sec_min: lo,
                ok_per_sec_max: hi,
                p50_ms: m(|s| s.wrk.p50_us) / 1e3,
                p99_ms: m(|s| s.wrk.p99_us) / 1e3,
                p999_ms: m(|s| s.wrk.p999_us) / 1e3,
                cpu_us_per_request: m(|s| s.cpu_us_per_request),
                failed: of.iter().map(|s| s.wrk.non_2xx + s.wrk.errors).sum(),
            }
        })
        .collect()
}

/// The summary of `subject` on `workload` at `connections`, if measured.
pub(crate) fn find(
    summaries: &[Summary],
    workload: Workload,
    subject: Subject,
    connections: u32,
) -> Option<&Summary> {
    summaries
        .iter()
        .find(|s| s.workload == workload && s.subject == subject && s.connections == connections)
}

pub(crate) fn print(cli: &Cli, summaries: &[Summary]) {
    println!(
        "\nwarm requests: wrk -t1 -d{}s per point, medians of {} round(s) (min-max of requests/s)",
        cli.duration, cli.runs
    );
    for workload in Workload::ALL {
        let of: Vec<&Summary> = summaries
            .iter()
            .filter(|s| s.workload == workload)
            .collect();
        if of.is_empty() {
            continue;
        }
        println!("\n{}", workload.label());
        println!(
            "{:<28} {:>5} {:>24} {:>8} {:>8} {:>9} {:>10} {:>7}",
            "server", "conns", "ok req/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU us/req", "failed"
        );
        for s in &of {
            println!(
                "{:<28} {:>5} {:>8.0} ({:>6.0}-{:>6.0}) {:>8.2} {:>8.2} {:>9.2} {:>10.1} {:>7}",
                s.subject.label(),
                s.connections,
                s.ok_per_sec,
                s.ok_per_sec_min,
                s.ok_per_sec_max,
                s.p50_ms,
                s.p99_ms,
                s.p999_ms,
                s.cpu_us_per_request,
                s.failed
            );
        }
        let at = 50;
        let Some(floe) = find(summaries, workload, Subject::Floe, at) else {
            continue;
        };
        for peer in [
            Subject::WasmtimeServe,
            Subject::WasmtimeServeReuse,
            Subject::Hyper,
        ] {
            if let Some(p) = find(summaries, workload, peer, at) {
                println!(
                    "  at {at} connections, floe / {}: {:.2}x requests/s, {:.2}x less CPU per request",
                    peer.label(),
                    floe.ok_per_sec / p.ok_per_sec.max(1e-9),
                    p.cpu_us_per_request / floe.cpu_us_per_request.max(1e-9)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_body_is_one_kib_of_json() {
        let body = json_kib();
        assert_eq!(body.len(), 1024);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(value["name"], "floe");
    }

    fn sample(subject: Subject, round: usize, ok: f64) -> Sample {
        Sample {
            workload: Workload::Hello,
            subject,
            connections: 50,
            round,
            wrk: WrkResult {
                ok_per_sec: ok,
                p99_us: ok,
                non_2xx: 1,
                ..WrkResult::default()
            },
            cpu_us_per_request: 10.0,
            rss_kib: 0,
        }
    }

    #[test]
    fn summaries_take_medians_per_server_and_count_failures() {
        let samples = [
            sample(Subject::Floe, 0, 3.0),
            sample(Subject::Hyper, 0, 10.0),
            sample(Subject::Floe, 1, 1.0),
            sample(Subject::Floe, 2, 2.0),
        ];
        let s = summarize(&samples);
        assert_eq!(s.len(), 2);
        let floe = find(&s, Workload::Hello, Subject::Floe, 50).map(|s| s.ok_per_sec);
        assert_eq!(floe, Some(2.0));
        let floe = find(&s, Workload::Hello, Subject::Floe, 50).map(|s| s.failed);
        assert_eq!(floe, Some(3));
        assert!(find(&s, Workload::Hello, Subject::Floe, 10).is_none());
    }
}
