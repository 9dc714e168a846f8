//! Cluster mode: three floe nodes on a real etcd and a real OCI registry
//! (Debian's `etcd-server` and `docker-registry`), all on loopback.
//!
//! - **deploy to every node**: from the `201` of a deploy on node A to the
//!   moment nodes A, B and C all serve the new version, over N deploys of
//!   the Rust hello and of the ~19 MB Python hello, with compiled code shared
//!   through the registry and without (each node compiles);
//! - **catch-up**: node C is stopped, 100 functions change, C restarts: time
//!   from its start to serving all 100;
//! - **etcd away**: requests/s of the Rust hello on node A before and while
//!   etcd is stopped (serving must not drop).
//!
//! Each deploy is of new bytes (the component with a custom section holding
//! a counter), so that every deploy compiles on the deploying node.

use crate::prepare::{Tools, eprintln_status};
use crate::report::median;
use crate::servers::Spawned;
use crate::{Cli, Floe, bench_dir, floe_command, http_get, ms};
use anyhow::{Context, Result, bail};
use floe_cli::client::ControlClient;
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What was measured.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct ClusterResults {
    /// Per component and sharing: 201 -> every node serves, in ms.
    pub(crate) converge: Vec<ConvergeSample>,
    /// Node restarted after 100 changed functions: start -> serving all.
    pub(crate) catch_up_ms: Option<f64>,
    /// How many functions changed while it was down.
    pub(crate) catch_up_functions: usize,
    /// Requests/s on node A with etcd up, and with etcd stopped.
    pub(crate) rps_etcd_up: Option<f64>,
    /// See `rps_etcd_up`.
    pub(crate) rps_etcd_down: Option<f64>,
}

/// One series of deploys.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConvergeSample {
    pub(crate) component: &'static str,
    pub(crate) size_bytes: u64,
    pub(crate) shared_compiled: bool,
    /// Upload -> 201 on the deploying node.
    pub(crate) deploy_ms: Vec<f64>,
    /// 201 -> all three nodes serve the new version.
    pub(crate) all_serving_ms: Vec<f64>,
}

impl ConvergeSample {
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let mut v = self.all_serving_ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let at = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[at.min(v.len() - 1)]
    }
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed when dropped.
pub(crate) struct Service(pub(crate) Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_etcd(dir: &std::path::Path, client: u16, peer: u16) -> Result<Service> {
    let client = format!("http://127.0.0.1:{client}");
    let peer = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting etcd")?;
    wait_port(&client)?;
    Ok(Service(child))
}

fn start_registry(dir: &std::path::Path, port: u16) -> Result<Service> {
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("registry").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker-registry")?;
    wait_port(&format!("http://127.0.0.1:{port}"))?;
    Ok(Service(child))
}

fn wait_port(url: &str) -> Result<()> {
    let addr = url.trim_start_matches("http://");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{url} never accepted a connection");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The component at `path` with a custom section holding `n`.
fn variant(bytes: &[u8], n: usize) -> bytes::Bytes {
    let mut out = bytes.to_vec();
    let name = b"floe-bench";
    let payload = n.to_string();
    out.push(0);
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    bytes::Bytes::from(out)
}

/// The fleet's shared settings.
struct Fleet {
    etcd_client: u16,
    etcd_peer: u16,
    registry: u16,
    dir: PathBuf,
}

impl Fleet {
    fn env(&self, id: &str, share: bool) -> Vec<(&'static str, String)> {
        vec![
            (
                "FLOE_CLUSTER__ETCD",
                format!("[\"http://127.0.0.1:{}\"]", self.etcd_client),
            ),
            (
                "FLOE_CLUSTER__REGISTRY",
                format!("http://127.0.0.1:{}/bench", self.registry),
            ),
            ("FLOE_CLUSTER__NODE_ID", id.to_owned()),
            ("FLOE_CLUSTER__SHARE_COMPILED", share.to_string()),
            // Each deploy is new bytes: no compile cache between nodes.
            ("FLOE_ENGINE__COMPILE_CACHE", String::new()),
            ("FLOE_LIMITS__MAX_FUNCTIONS", "2000".to_owned()),
        ]
    }

    fn node(&self, tools: &Tools, tag: &str, id: &str, share: bool) -> Result<Floe> {
        Floe::start(tools, tag, &self.env(id, share))
    }
}

/// The version `client`'s node serves of `name`.
async fn active(client: &ControlClient, name: &str) -> u64 {
    client
        .info(name)
        .await
        .ok()
        .and_then(|v| v["active_version"].as_u64())
        .unwrap_or(0)
}

async fn all_serve(nodes: &[&Floe], name: &str, version: u64, limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    for node in nodes {
        while active(&node.client, name).await != version {
            if t0.elapsed() > limit {
                bail!("{name} v{version} not served within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(())
}

fn converge(
    runtime: &tokio::runtime::Runtime,
    nodes: &[&Floe],
    component: (&'static str, &[u8]),
    shared: bool,
    deploys: usize,
) -> Result<ConvergeSample> {
    let (label, bytes) = component;
    eprintln_status(&format!(
        "cluster: {deploys} deploys of the {label}, compiled code {}",
        if shared { "shared" } else { "not shared" }
    ));
    let name = format!(
        "{}-{}",
        label
            .split_whitespace()
            .next()
            .unwrap_or("f")
            .to_lowercase(),
        if shared { "shared" } else { "own" }
    );
    let mut sample = ConvergeSample {
        component: label,
        size_bytes: bytes.len() as u64,
        shared_compiled: shared,
        deploy_ms: Vec::new(),
        all_serving_ms: Vec::new(),
    };
    for n in 0..deploys {
        let body = variant(bytes, n);
        let t0 = Instant::now();
        let (status, reply) = runtime.block_on(nodes[0].client.deploy(&name, body, &[]))?;
        if status != 201 {
            bail!("deploy answered {status}: {reply}");
        }
        let created = Instant::now();
        let version = reply["version"].as_u64().context("a version")?;
        runtime.block_on(all_serve(nodes, &name, version, Duration::from_secs(300)))?;
        sample.deploy_ms.push(ms(created - t0));
        sample.all_serving_ms.push(ms(created.elapsed()));
    }
    Ok(sample)
}

/// Runs the scenario (skipped, with a note, where etcd or the registry is
/// not installed).
pub(crate) fn cluster(
    cli: &Cli,
    tools: &Tools,
    python: Option<&PathBuf>,
) -> Result<ClusterResults> {
    let mut results = ClusterResults::default();
    if !installed("etcd") || !installed("docker-registry") {
        eprintln_status("cluster: skipped (etcd-server and docker-registry are not installed)");
        return Ok(results);
    }
    let dir = bench_dir(tools, "cluster", true)?;
    let fleet = Fleet {
        etcd_client: free_port()?,
        etcd_peer: free_port()?,
        registry: free_port()?,
        dir,
    };
    let etcd = start_etcd(&fleet.dir, fleet.etcd_client, fleet.etcd_peer)?;
    let _registry = start_registry(&fleet.dir, fleet.registry)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let deploys = if cli.quick { 5 } else { 20 };
    let rust = std::fs::read(&tools.hello)?;
    let python = python.map(std::fs::read).transpose()?;

    for shared in [true, false] {
        let tag = if shared { "shared" } else { "own" };
        let nodes: Vec<Floe> = ["a", "b", "c"]
            .iter()
            .map(|id| fleet.node(tools, &format!("cluster-{tag}-{id}"), id, shared))
            .collect::<Result<_>>()?;
        let refs: Vec<&Floe> = nodes.iter().collect();
        results.converge.push(converge(
            &runtime,
            &refs,
            ("Rust hello", &rust),
            shared,
            deploys,
        )?);
        if let Some(python) = &python {
            results.converge.push(converge(
                &runtime,
                &refs,
                ("Python hello", python),
                shared,
                deploys,
            )?);
        }
    }

    // Catch-up: C down while 100 functions change.
    eprintln_status("cluster: catch-up of a node restarted after 100 changes");
    let a = fleet.node(tools, "cluster-catch-a", "a", true)?;
    let c_dir = bench_dir(tools, "cluster-catch-c", true)?;
    let c_env = fleet.env("c", true);
    let start_c = || -> Result<Spawned> {
        let mut cmd = floe_command(tools, &c_dir);
        cmd.envs(c_env.iter().map(|(k, v)| (k, v)));
        Spawned::start(cmd)
    };
    let c = start_c()?;
    let functions = 100;
    for i in 0..functions {
        runtime.block_on(a.deploy(&format!("f{i}"), variant(&rust, 1_000_000 + i), &[]))?;
    }
    let c_token = std::fs::read_to_string(c_dir.join("token"))?;
    let c_client = |base: &str| ControlClient::new(base, c_token.trim());
    let control = std::fs::read_to_string(c_dir.join("control.url"))?
        .trim()
        .to_owned();
    let client = c_client(&control);
    runtime.block_on(async {
        for i in 0..functions {
            while active(&client, &format!("f{i}")).await != 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    drop(c);
    for i in 0..functions {
        runtime.block_on(a.deploy(&format!("f{i}"), variant(&rust, 2_000_000 + i), &[]))?;
    }
    let t0 = Instant::now();
    let _c = start_c()?;
    let control = std::fs::read_to_string(c_dir.join("control.url"))?
        .trim()
        .to_owned();
    let client = c_client(&control);
    runtime.block_on(async {
        for i in 0..functions {
            while active(&client, &format!("f{i}")).await != 2 {
                if t0.elapsed() > Duration::from_secs(600) {
                    bail!("the restarted node did not catch up within 10 minutes");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(())
    })?;
    results.catch_up_ms = Some(ms(t0.elapsed()));
    results.catch_up_functions = functions;

    // Serving with etcd up, then away.
    eprintln_status("cluster: requests/s with etcd up and stopped");
    runtime.block_on(a.deploy("hello", bytes::Bytes::from(rust.clone()), &[]))?;
    let url = format!("{}/hello/", a.server.base);
    let (status, _) = http_get(&url)?;
    if status != 200 {
        bail!("hello answered {status}");
    }
    let load = |what: &str| -> Result<f64> {
        eprintln_status(&format!("cluster: load with etcd {what}"));
        let r = crate::wrk::run(
            &url,
            50,
            Duration::from_secs(cli.duration),
            &crate::wrk::Requests::default(),
        )?;
        Ok(r.ok_per_sec)
    };
    results.rps_etcd_up = Some(load("up")?);
    drop(etcd);
    results.rps_etcd_down = Some(load("stopped")?);
    Ok(results)
}

/// Prints the figures.
pub(crate) fn print(results: &ClusterResults) {
    if results.converge.is_empty() {
        return;
    }
    println!("\ncluster: 3 nodes, etcd and a registry on loopback");
    println!(
        "{:<14} {:>8} {:>9} {:>10} {:>12} {:>12}",
        "component", "size MB", "compiled", "201 p50 ms", "all p50 ms", "all p95 ms"
    );
    for s in &results.converge {
        println!(
            "{:<14} {:>8.1} {:>9} {:>10.0} {:>12.0} {:>12.0}",
            s.component,
            s.size_bytes as f64 / 1e6,
            if s.shared_compiled {
                "shared"
            } else {
                "per node"
            },
            median(&s.deploy_ms),
            s.quantile(0.5),
            s.quantile(0.95),
        );
    }
    if let Some(catch_up) = results.catch_up_ms {
        println!(
            "catch-up: a node restarted after {} functions changed serves them all {:.0} ms after its start",
            results.catch_up_functions, catch_up
        );
    }
    if let (Some(up), Some(down)) = (results.rps_etcd_up, results.rps_etcd_down) {
        println!("requests/s on a node: {up:.0} with etcd up, {down:.0} with etcd stopped");
    }
}
