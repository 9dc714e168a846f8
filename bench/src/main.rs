//! `floe-bench`: floe side by side with `wasmtime serve` 48 and a plain hyper
//! server, on loopback, with the peers measured in the same run.
//!
//! ```text
//! cargo run -p floe-bench --release -- http     # warm requests/s and latency
//! cargo run -p floe-bench --release -- deploy   # upload -> 201, first response
//! cargo run -p floe-bench --release -- init     # init snapshots vs per-instance init
//! cargo run -p floe-bench --release -- scale    # scale-out, idle memory, overload
//! cargo run -p floe-bench --release -- all
//! ```
//!
//! Servers are measured in turn, round after round (A B C, A B C, ...), and
//! the report gives medians over the rounds. Only successful responses count
//! as throughput. The server's CPU time per request (utime + stime from
//! /proc) is reported too: on a 2-core machine shared with the load
//! generator it is the steadiest figure.
#![expect(clippy::print_stdout, reason = "the report is this program's output")]

mod load;
mod prepare;
mod report;
mod scale;
mod sdks;
mod servers;
mod wrk;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use floe::client::ControlClient;
use prepare::{Tools, eprintln_status};
use report::{Machine, median, spread};
use serde::Serialize;
use servers::Spawned;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "floe-bench",
    about = "floe vs wasmtime serve vs plain hyper, on loopback"
)]
struct Cli {
    /// Rounds per scenario (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    /// Shorter runs (1 round, 3 s): a smoke test of the benchmark itself.
    #[arg(long)]
    quick: bool,
    /// Do not measure wasmtime serve (and do not install it).
    #[arg(long)]
    skip_wasmtime: bool,
    /// Where to write the JSON results (default: target/bench-results/).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Warm hello-world requests: requests/s, latency, CPU per request.
    Http,
    /// Deploy time (upload -> 201) and first-response latency.
    Deploy,
    /// The ~200 ms-init example: snapshot vs per-instance init vs wasmtime
    /// serve, first response after deploy and fresh-instance requests.
    Init,
    /// Scale-out from zero (reserved prewarm and a step load), memory per
    /// idle instance, and admitted latency at 10x overload.
    Scale,
    /// The hello example of each SDK (Rust, JavaScript, Python): size,
    /// build, deploy (first and cached), first response, warm requests/s,
    /// against wasmtime serve.
    Sdks,
    /// Everything.
    All,
}

/// One server configuration under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum Subject {
    Floe,
    FloeFresh,
    WasmtimeServe,
    WasmtimeServeReuse,
    Hyper,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Floe => "floe (default: reuse)",
            Subject::FloeFresh => "floe reuse=false",
            Subject::WasmtimeServe => "wasmtime serve (default)",
            Subject::WasmtimeServeReuse => "wasmtime serve reuse=1000",
            Subject::Hyper => "plain hyper (ceiling)",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    subject: Subject,
    round: usize,
    wrk: wrk::WrkResult,
    cpu_us_per_request: f64,
    rss_kib: u64,
}

#[derive(Debug, Default, Serialize)]
struct Results {
    machine: Option<Machine>,
    connections: u32,
    duration_s: u64,
    runs: usize,
    http: Vec<Sample>,
    deploy: Vec<DeploySample>,
    init: Vec<InitSample>,
    scale: Option<scale::ScaleResults>,
    sdks: Vec<sdks::SdkSample>,
}

fn main() -> Result<()> {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.runs = 1;
        cli.duration = 3;
    }
    let tools = prepare::prepare(!cli.skip_wasmtime)?;
    let mut results = Results {
        machine: Some(Machine::describe()),
        connections: cli.connections,
        duration_s: cli.duration,
        runs: cli.runs,
        ..Default::default()
    };
    if matches!(cli.scenario, Scenario::Http | Scenario::All) {
        results.http = http(&cli, &tools)?;
        print_http(&cli, &results.http);
    }
    if matches!(cli.scenario, Scenario::Deploy | Scenario::All) {
        results.deploy = deploy(&cli, &tools)?;
        print_deploy(&results.deploy);
    }
    if matches!(cli.scenario, Scenario::Init | Scenario::All) {
        results.init = init(&cli, &tools)?;
        print_init(&results.init);
    }
    if matches!(cli.scenario, Scenario::Scale | Scenario::All) {
        let scaled = scale::scale(&cli, &tools)?;
        scale::print(&scaled);
        results.scale = Some(scaled);
    }
    if matches!(cli.scenario, Scenario::Sdks | Scenario::All) {
        results.sdks = sdks::sdks(&cli, &tools)?;
        sdks::print(&cli, &results.sdks);
    }
    let out = cli.out.clone().unwrap_or_else(|| {
        tools.root.join("target/bench-results").join(format!(
            "bench-{}.json",
            results.machine.as_ref().map_or(0, |m| m.unix_time)
        ))
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&results)?)?;
    println!("\nraw results: {}", out.display());
    Ok(())
}

fn bench_dir(tools: &Tools, tag: &str) -> Result<PathBuf> {
    let dir = tools
        .root
        .join("target/bench-data")
        .join(format!("{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn floe_command(tools: &Tools, data_dir: &Path) -> Command {
    let mut cmd = Command::new(&tools.floe);
    cmd.env("FLOE_SERVER__DATA_ADDR", "127.0.0.1:0")
        .env("FLOE_SERVER__CONTROL_ADDR", "127.0.0.1:0")
        .env("FLOE_SERVER__DATA_DIR", data_dir)
        .env("FLOE_LOG", "warn")
        .arg("serve");
    cmd
}

/// A floe server started for a benchmark, with a client for its control
/// plane.
struct Floe {
    server: Spawned,
    client: ControlClient,
    /// The control plane's base URL.
    control: String,
}

impl Floe {
    /// Starts floe on a fresh data directory named after `tag`, with extra
    /// `FLOE_*` settings.
    fn start(tools: &Tools, tag: &str, env: &[(&str, String)]) -> Result<Self> {
        let dir = bench_dir(tools, tag)?;
        let mut cmd = floe_command(tools, &dir);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let server = Spawned::start(cmd)?;
        let control = std::fs::read_to_string(dir.join("control.url"))?
            .trim()
            .to_owned();
        let token = std::fs::read_to_string(dir.join("token"))?;
        let client = ControlClient::new(&control, token.trim());
        Ok(Self {
            server,
            client,
            control,
        })
    }

    /// Deploys `component` as `name`, expecting 201.
    async fn deploy(
        &self,
        name: &str,
        component: bytes::Bytes,
        settings: &[(&str, String)],
    ) -> Result<()> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let (status, body) = self.client.deploy(name, component, &settings).await?;
        if status != 201 {
            bail!("deploying {name} answered {status}: {body}");
        }
        Ok(())
    }

    /// The data plane's socket address.
    fn data_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(self.server.base.trim_start_matches("http://").parse()?)
    }
}

/// `wasmtime serve -S cli=y` of `component` on a port the OS picks, with
/// extra `flags`.
fn wasmtime_command(tools: &Tools, flags: &[&str], component: &Path) -> Result<Command> {
    let bin = tools
        .wasmtime
        .as_ref()
        .context("wasmtime is not available")?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "-S", "cli=y", "--addr", "127.0.0.1:0"])
        .args(flags)
        .arg(component);
    Ok(cmd)
}

/// `wasmtime serve` of `component` with its compile cache off: it compiles
/// at start, as floe does at deploy.
fn wasmtime_cold(tools: &Tools, component: &Path) -> Result<Command> {
    wasmtime_command(tools, &["-C", "cache=n"], component)
}

/// Starts `subject` and returns it with the URL to load.
fn start(subject: Subject, tools: &Tools, round: usize) -> Result<(Spawned, String)> {
    let (cmd, path) = match subject {
        Subject::Floe | Subject::FloeFresh => {
            let dir = bench_dir(tools, &format!("http-{round}-{subject:?}"))?;
            let mut cmd = floe_command(tools, &dir);
            cmd.arg("--deploy")
                .arg(format!("hello={}", tools.hello.display()));
            if subject == Subject::FloeFresh {
                cmd.env("FLOE_FUNCTIONS__REUSE", "false");
            }
            (cmd, "/hello/")
        }
        Subject::WasmtimeServe => (wasmtime_command(tools, &[], &tools.hello)?, "/"),
        Subject::WasmtimeServeReuse => (
            wasmtime_command(tools, &["--max-instance-reuse-count", "1000"], &tools.hello)?,
            "/",
        ),
        Subject::Hyper => {
            let mut cmd = Command::new(&tools.hyper);
            cmd.arg("127.0.0.1:0");
            (cmd, "/")
        }
    };
    let server = Spawned::start(cmd)?;
    let url = format!("{}{path}", server.base);
    let (status, body) = http_get(&url)?;
    if status != 200 {
        bail!(
            "{} answered {status} to a test request: {body}",
            subject.label()
        );
    }
    Ok((server, url))
}

fn http(cli: &Cli, tools: &Tools) -> Result<Vec<Sample>> {
    let mut subjects = vec![Subject::Floe, Subject::FloeFresh];
    if tools.wasmtime.is_some() {
        subjects.extend([Subject::WasmtimeServe, Subject::WasmtimeServeReuse]);
    }
    subjects.push(Subject::Hyper);
    let mut samples = Vec::new();
    for round in 0..cli.runs {
        for &subject in &subjects {
            eprintln_status(&format!(
                "round {}/{}: {}",
                round + 1,
                cli.runs,
                subject.label()
            ));
            let (server, url) = start(subject, tools, round)?;
            // Warm up: instances started, caches filled, connections open.
            wrk::run(&url, cli.connections, Duration::from_secs(2))?;
            let cpu_before = server.cpu_seconds()?;
            let wrk = wrk::run(&url, cli.connections, Duration::from_secs(cli.duration))?;
            let cpu = server.cpu_seconds()? - cpu_before;
            let rss_kib = server.rss_kib()?;
            samples.push(Sample {
                subject,
                round,
                cpu_us_per_request: cpu * 1e6 / wrk.requests.max(1) as f64,
                rss_kib,
                wrk,
            });
        }
    }
    Ok(samples)
}

fn print_http(cli: &Cli, samples: &[Sample]) {
    println!(
        "\nwarm hello (Rust wstd component), wrk -t1 -c{} -d{}s, {} round(s); medians (min-max)",
        cli.connections, cli.duration, cli.runs
    );
    println!(
        "{:<28} {:>22} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "server", "ok req/s", "p50 ms", "p99 ms", "CPU us/req", "RSS MiB", "non-2xx"
    );
    let mut medians = Vec::new();
    let mut subjects: Vec<Subject> = samples.iter().map(|s| s.subject).collect();
    subjects.dedup();
    subjects.sort_by_key(|s| *s as u8);
    subjects.dedup();
    for subject in subjects {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.subject == subject).collect();
        let rps: Vec<f64> = of.iter().map(|s| s.wrk.ok_per_sec).collect();
        let (lo, hi) = spread(&rps);
        let rps_med = median(&rps);
        let p50 = median(&of.iter().map(|s| s.wrk.p50_us).collect::<Vec<_>>()) / 1e3;
        let p99 = median(&of.iter().map(|s| s.wrk.p99_us).collect::<Vec<_>>()) / 1e3;
        let cpu = median(&of.iter().map(|s| s.cpu_us_per_request).collect::<Vec<_>>());
        let rss = median(&of.iter().map(|s| s.rss_kib as f64).collect::<Vec<_>>()) / 1024.0;
        let non2xx: u64 = of.iter().map(|s| s.wrk.non_2xx + s.wrk.errors).sum();
        println!(
            "{:<28} {:>8.0} ({:>5.0}-{:>5.0}) {:>9.2} {:>9.2} {:>10.1} {:>9.1} {:>8}",
            subject.label(),
            rps_med,
            lo,
            hi,
            p50,
            p99,
            cpu,
            rss,
            non2xx
        );
        medians.push((subject, rps_med, cpu));
    }
    let get = |s: Subject| medians.iter().find(|m| m.0 == s).map(|m| (m.1, m.2));
    if let Some((floe, floe_cpu)) = get(Subject::Floe) {
        println!();
        for (peer, what) in [
            (Subject::WasmtimeServe, "wasmtime serve (default)"),
            (Subject::WasmtimeServeReuse, "wasmtime serve reuse=1000"),
        ] {
            if let Some((rps, cpu)) = get(peer) {
                println!(
                    "floe / {what}: {:.2}x requests/s, {:.2}x less CPU per request",
                    floe / rps,
                    cpu / floe_cpu
                );
            }
        }
        if let (Some((fresh, _)), Some((serve, _))) =
            (get(Subject::FloeFresh), get(Subject::WasmtimeServe))
        {
            println!(
                "floe reuse=false / wasmtime serve (default): {:.2}x requests/s",
                fresh / serve
            );
        }
        if let Some((hyper, _)) = get(Subject::Hyper) {
            println!(
                "floe / plain hyper: {:.0}% of the ceiling",
                100.0 * floe / hyper
            );
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct DeploySample {
    /// floe: PUT of the component to its 201.
    upload_to_201_ms: f64,
    /// floe: the first request after the 201 (starts an instance).
    first_request_ms: f64,
    /// floe: the request after that (a reused instance).
    second_request_ms: f64,
    /// floe: process start (with --deploy, nothing cached) to first 200.
    floe_start_to_first_response_ms: f64,
    /// wasmtime serve: process start (cache off) to first 200.
    wasmtime_start_to_first_response_ms: Option<f64>,
}

fn deploy(cli: &Cli, tools: &Tools) -> Result<Vec<DeploySample>> {
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

        let dir = bench_dir(tools, &format!("deploy-start-{round}"))?;
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

fn start_to_first_response(cmd: Command, path: &str) -> Result<Duration> {
    let t0 = Instant::now();
    let server = Spawned::start(cmd)?;
    let url = format!("{}{path}", server.base);
    loop {
        if let Ok((200, _)) = http_get(&url) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("no 200 from {url} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn print_deploy(samples: &[DeploySample]) {
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
enum InitSubject {
    FloeSnapshot,
    FloeInstance,
    WasmtimeServe,
}

impl InitSubject {
    fn label(self) -> &'static str {
        match self {
            InitSubject::FloeSnapshot => "floe, preinit=snapshot",
            InitSubject::FloeInstance => "floe, preinit=instance",
            InitSubject::WasmtimeServe => "wasmtime serve (init on first use)",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct InitSample {
    subject: InitSubject,
    /// The first request once the function is deployed (floe: after the
    /// 201; wasmtime serve: once it listens).
    first_response_ms: f64,
    /// Each of these requests needs a fresh instance.
    fresh_instance_ms: Vec<f64>,
    /// floe's own mean instance start time (from /metrics), microseconds.
    instance_start_us: Option<f64>,
}

/// Requests that each need a fresh instance, per subject and round.
const FRESH_REQUESTS: usize = 40;
const FRESH_REQUESTS_SLOW: usize = 8;

fn init(cli: &Cli, tools: &Tools) -> Result<Vec<InitSample>> {
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
                    let server = Spawned::start(wasmtime_command(tools, &[], &tools.init_table)?)?;
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
                    runtime.block_on(floe.deploy("table", component.clone(), &settings))?;
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn timed_gets(url: &str, n: usize) -> Result<Vec<f64>> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let (status, body) = http_get(url)?;
            if status != 200 {
                bail!("{url} answered {status}: {body}");
            }
            Ok(ms(t.elapsed()))
        })
        .collect()
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

fn print_init(samples: &[InitSample]) {
    println!("\ninit example (init does ~200 ms of work), medians over rounds");
    println!(
        "{:<36} {:>18} {:>22} {:>20}",
        "server", "first response ms", "fresh-instance req ms", "instance start us"
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
            "{:<36} {:>18.2} {:>22.2} {:>20}",
            subject.label(),
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

/// A minimal blocking HTTP/1.1 GET (connection closed after), for readiness
/// checks and single-request timings.
fn http_get(url: &str) -> Result<(u16, String)> {
    let rest = url.strip_prefix("http://").context("http URL")?;
    let (addr, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("a status line")?;
    Ok((status, reply))
}
