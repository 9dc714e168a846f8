//! Event sources: MQTT into an event function through a real Mosquitto
//! broker on loopback, against `mosquitto_sub` (the broker's own client,
//! printing what it receives) as the ceiling.
//!
//! - **throughput**: N messages published as fast as `mosquitto_pub -l`
//!   sends them, QoS 0 (invoked at once) and QoS 1 (durably queued, then
//!   acknowledged); floe's rate is N over the time until its trigger counted
//!   them all, the ceiling's until `mosquitto_sub` printed them all;
//! - **latency**: messages at a steady 1,000/s carrying their send time;
//!   the function (`mqtt-sink`, one instance) records when each reached it,
//!   `mosquitto_sub` prints when each reached it: p50 and p99;
//! - **outbox drain**: a function publishes N messages while the broker is
//!   down; the rate at which the outbox empties once the broker is back;
//! - **cron jitter**: a schedule firing every second; how late each run was
//!   queued after its scheduled time.

use crate::cluster::{Service, free_port};
use crate::prepare::{Tools, eprintln_status};
use crate::{Cli, Floe, bench_dir};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Messages/s at which latency is measured.
const LATENCY_RATE: u64 = 1_000;

/// One throughput measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throughput {
    pub(crate) qos: u8,
    pub(crate) messages: u64,
    /// Messages floe's trigger took (invoked for QoS 0, durably queued for
    /// QoS 1) within the time limit.
    pub(crate) floe_taken: u64,
    pub(crate) floe_per_s: f64,
    /// `mosquitto_sub` on the same messages.
    pub(crate) ceiling_per_s: f64,
}

/// One latency measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub(crate) qos: u8,
    pub(crate) rate_per_s: u64,
    pub(crate) messages: usize,
    pub(crate) floe_p50_ms: f64,
    pub(crate) floe_p99_ms: f64,
    pub(crate) ceiling_p50_ms: f64,
    pub(crate) ceiling_p99_ms: f64,
}

/// What was measured.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct MqttResults {
    pub(crate) throughput: Vec<Throughput>,
    pub(crate) latency: Vec<Latency>,
    /// Messages drained after the outage, and the rate.
    pub(crate) drain_messages: u64,
    pub(crate) drain_per_s: Option<f64>,
    /// Cron runs observed and how late they were queued (ms).
    pub(crate) cron_runs: usize,
    pub(crate) cron_late_p50_ms: Option<f64>,
    pub(crate) cron_late_max_ms: Option<f64>,
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let at = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[at.min(values.len() - 1)]
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

fn mosquitto_bin() -> Result<PathBuf> {
    for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(candidate).is_file() {
            return Ok(candidate.into());
        }
    }
    bail!("mosquitto is not installed (scripts/setup installs it)")
}

/// A Mosquitto broker on loopback.
struct Broker {
    port: u16,
    dir: PathBuf,
    process: Option<Service>,
}

impl Broker {
    fn start(dir: &Path) -> Result<Self> {
        let mut broker = Self {
            port: free_port()?,
            dir: dir.to_owned(),
            process: None,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> Result<()> {
        let conf = self.dir.join("mosquitto.conf");
        let mut text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 0\n\
             log_dest none\n",
            self.port,
            self.dir.display()
        );
        if std::env::var("USER").as_deref() == Ok("root") || is_root() {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text)?;
        let child = Command::new(mosquitto_bin()?)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto")?;
        self.process = Some(Service(child));
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("mosquitto did not listen");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut service) = self.process.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(service.0.id().to_string())
                .status();
            let _ = service.0.wait();
        }
    }

    /// `mosquitto_pub -l` on `topic`, reading messages from its stdin.
    fn publisher(&self, topic: &str, qos: u8) -> Result<Child> {
        let port = self.port.to_string();
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5"])
            .args(["-t", topic, "-q", &qos.to_string(), "-l"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("running mosquitto_pub")
    }

    /// `mosquitto_pub -l`: one message per line of `lines`, as fast as it
    /// sends them. Returns once every one was sent (and, for QoS 1,
    /// acknowledged).
    fn publish_lines(&self, topic: &str, qos: u8, lines: &[u8]) -> Result<()> {
        let mut child = self.publisher(topic, qos)?;
        child.stdin.take().context("stdin")?.write_all(lines)?;
        let status = child.wait()?;
        if !status.success() {
            bail!("mosquitto_pub failed");
        }
        Ok(())
    }

    /// `mosquitto_pub -l` fed one `t=MICROS` line every 1/`rate` s for
    /// `count` messages.
    fn publish_paced(&self, topic: &str, qos: u8, rate: u64, count: usize) -> Result<()> {
        let mut child = self.publisher(topic, qos)?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let t0 = Instant::now();
        let every = Duration::from_nanos(1_000_000_000 / rate.max(1));
        for i in 0..count {
            let due = t0 + every * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            writeln!(stdin, "t={}", now_us())?;
            stdin.flush()?;
        }
        drop(stdin);
        child.wait()?;
        Ok(())
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A `mosquitto_sub` printing each message's arrival time (µs) and payload.
struct Subscriber {
    _process: Service,
    /// `(arrival µs, payload)` of every message that is not a readiness
    /// marker.
    received: Arc<Mutex<Vec<(u64, String)>>>,
    markers: Arc<Mutex<usize>>,
}

impl Subscriber {
    /// Subscribes to `filter` at `qos`, and waits until a marker published
    /// on `{filter's root}/ready` comes back (the subscription is live).
    fn start(broker: &Broker, root: &str, qos: u8) -> Result<Self> {
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port.to_string(),
                "-V",
                "mqttv5",
            ])
            .args(["-t", &format!("{root}/#"), "-q", &qos.to_string()])
            .args(["-F", "%U %t %p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running mosquitto_sub")?;
        let stdout = child.stdout.take().context("stdout")?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let markers = Arc::new(Mutex::new(0));
        let (r, m) = (received.clone(), markers.clone());
        let ready_topic = format!("{root}/ready");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(at), Some(topic), payload) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if topic == ready_topic {
                    *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                    continue;
                }
                // %U is seconds.nanoseconds.
                let at_us = at
                    .split_once('.')
                    .and_then(|(s, ns)| {
                        Some(
                            s.parse::<u64>().ok()? * 1_000_000
                                + ns.get(..6)?.parse::<u64>().ok()?,
                        )
                    })
                    .unwrap_or_default();
                r.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((at_us, payload.unwrap_or_default().to_owned()));
            }
        });
        let subscriber = Self {
            _process: Service(child),
            received,
            markers,
        };
        let t0 = Instant::now();
        while *subscriber
            .markers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == 0
        {
            broker.publish_lines(&format!("{root}/ready"), 0, b"ready\n")?;
            std::thread::sleep(Duration::from_millis(50));
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("mosquitto_sub did not subscribe");
            }
        }
        Ok(subscriber)
    }

    fn count(&self) -> usize {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn received(&self) -> Vec<(u64, String)> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The sink and probe components, built here.
struct Components {
    sink: PathBuf,
    probe: PathBuf,
}

fn build(tools: &Tools) -> Result<Components> {
    eprintln_status("building mqtt-sink and trigger-probe (wasm32-wasip2)");
    let target = tools.root.join("target/wasm-examples");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(tools.root.join("functions-examples/rust"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["-p", "mqtt-sink", "-p", "trigger-probe", "--target-dir"])
        .arg(&target)
        .status()?;
    if !status.success() {
        bail!("building the MQTT examples failed");
    }
    let out = target.join("wasm32-wasip2/release");
    Ok(Components {
        sink: out.join("mqtt_sink.wasm"),
        probe: out.join("trigger_probe.wasm"),
    })
}

/// The function view's count of what trigger `name` of `function` fired.
async fn fired(floe: &Floe, function: &str, name: &str) -> Result<u64> {
    let info = floe.client.info(function).await?;
    Ok(info["triggers"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .and_then(|t| t["fired"].as_u64())
        .unwrap_or(0))
}

async fn wait_connected(floe: &Floe, function: &str, name: &str) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let info = floe.client.info(function).await?;
        let state = info["triggers"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .map(|t| t["state"].clone());
        if state.as_ref().is_some_and(|s| s == "connected") {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("trigger {name} did not connect: {state:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn trigger(broker: &Broker, name: &str, topic: &str, qos: u8) -> serde_json::Value {
    serde_json::json!({
        "kind": "mqtt", "name": name, "broker": broker.url(), "topics": [topic], "qos": qos,
    })
}

/// Runs the scenario.
pub(crate) fn mqtt(cli: &Cli, tools: &Tools) -> Result<MqttResults> {
    let components = build(tools)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = bench_dir(tools, "mqtt-broker", true)?;
    let mut broker = Broker::start(&dir)?;
    let floe = Floe::start(
        tools,
        "mqtt",
        &[("FLOE_INVOCATIONS__MAX_QUEUED", "1000000".to_owned())],
    )?;
    let sink = std::fs::read(&components.sink)?;
    let messages: u64 = if cli.quick { 5_000 } else { 20_000 };
    let mut results = MqttResults::default();

    // Throughput: two functions, one trigger each.
    let triggers = serde_json::json!([
        trigger(&broker, "q0", "bench/q0", 0),
        trigger(&broker, "q1", "bench/q1", 1),
    ]);
    runtime.block_on(floe.deploy(
        "sink",
        sink.clone().into(),
        &[("triggers", triggers.to_string())],
    ))?;
    runtime.block_on(wait_connected(&floe, "sink", "q0"))?;
    runtime.block_on(wait_connected(&floe, "sink", "q1"))?;
    let lines: Vec<u8> = "x\n".repeat(messages as usize).into_bytes();
    for qos in [0u8, 1] {
        eprintln_status(&format!("mqtt: {messages} messages at QoS {qos}"));
        let name = format!("q{qos}");
        let before = runtime.block_on(fired(&floe, "sink", &name))?;
        let t0 = Instant::now();
        broker.publish_lines(&format!("bench/{name}"), qos, &lines)?;
        let limit = Duration::from_secs(120);
        let taken = loop {
            let n = runtime.block_on(fired(&floe, "sink", &name))? - before;
            if n >= messages || t0.elapsed() > limit {
                break n;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let floe_s = t0.elapsed().as_secs_f64();
        // The ceiling: mosquitto_sub on the same messages.
        let root = format!("ceiling{qos}");
        let subscriber = Subscriber::start(&broker, &root, qos)?;
        let t0 = Instant::now();
        broker.publish_lines(&format!("{root}/m"), qos, &lines)?;
        while (subscriber.count() as u64) < messages && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(2));
        }
        let ceiling_s = t0.elapsed().as_secs_f64();
        results.throughput.push(Throughput {
            qos,
            messages,
            floe_taken: taken,
            floe_per_s: taken as f64 / floe_s,
            ceiling_per_s: subscriber.count() as f64 / ceiling_s,
        });
    }

    // Latency at 1,000 messages/s, on one instance.
    let latency_messages = if cli.quick { 1_000 } else { 3_000 };
    for qos in [0u8, 1] {
        eprintln_status(&format!(
            "mqtt: latency at {LATENCY_RATE} messages/s, QoS {qos}"
        ));
        let name = format!("lat{qos}");
        let triggers = serde_json::json!([trigger(&broker, &name, &format!("lat/{qos}"), qos)]);
        runtime.block_on(floe.deploy(
            &name,
            sink.clone().into(),
            &[
                ("triggers", triggers.to_string()),
                ("max_instances", "1".into()),
                ("async", "true".into()),
            ],
        ))?;
        runtime.block_on(wait_connected(&floe, &name, &name))?;
        let subscriber = Subscriber::start(&broker, "lat", qos)?;
        broker.publish_paced(&format!("lat/{qos}"), qos, LATENCY_RATE, latency_messages)?;
        let t0 = Instant::now();
        while runtime.block_on(fired(&floe, &name, &name))? < latency_messages as u64
            && t0.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // QoS 1 invocations run from the queue: wait until it is empty.
        let t0 = Instant::now();
        loop {
            let (_, listing) = runtime.block_on(floe.client.send(
                http::Method::GET,
                "/v1/invocations?status=queued&limit=1",
                bytes::Bytes::new(),
            ))?;
            let running = runtime.block_on(floe.client.send(
                http::Method::GET,
                "/v1/invocations?status=running&limit=1",
                bytes::Bytes::new(),
            ))?;
            let empty =
                |v: &serde_json::Value| v["invocations"].as_array().is_none_or(Vec::is_empty);
            if (empty(&listing) && empty(&running.1)) || t0.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (_, stats) = runtime.block_on(floe.client.send(
            http::Method::POST,
            &format!("/v1/functions/{name}/invoke"),
            bytes::Bytes::from_static(b"stats"),
        ))?;
        let mut floe_ms: Vec<f64> = stats["delays_us"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_f64())
                    .map(|us| us / 1e3)
                    .collect()
            })
            .unwrap_or_default();
        let mut ceiling_ms: Vec<f64> = subscriber
            .received()
            .iter()
            .filter_map(|(at, payload)| {
                let sent: u64 = payload.strip_prefix("t=")?.trim().parse().ok()?;
                Some(at.saturating_sub(sent) as f64 / 1e3)
            })
            .collect();
        results.latency.push(Latency {
            qos,
            rate_per_s: LATENCY_RATE,
            messages: floe_ms.len(),
            floe_p50_ms: quantile(&mut floe_ms, 0.5),
            floe_p99_ms: quantile(&mut floe_ms, 0.99),
            ceiling_p50_ms: quantile(&mut ceiling_ms, 0.5),
            ceiling_p99_ms: quantile(&mut ceiling_ms, 0.99),
        });
    }

    // Outbox drain after an outage.
    let drain: u64 = if cli.quick { 2_000 } else { 10_000 };
    eprintln_status(&format!("mqtt: outbox drain of {drain} messages"));
    let probe = std::fs::read(&components.probe)?;
    runtime.block_on(floe.deploy(
        "publisher",
        probe.into(),
        &[("publish", broker.url()), ("timeout", "60s".into())],
    ))?;
    broker.stop();
    let (_, report) = runtime.block_on(floe.client.send(
        http::Method::POST,
        "/v1/functions/publisher/invoke",
        bytes::Bytes::from(format!("publish {drain} drain/t")),
    ))?;
    if report["published"].as_u64() != Some(drain) {
        bail!("the publisher queued {report}");
    }
    broker.spawn()?;
    // From the moment the outbox is connected again (its reconnect backoff
    // is not the drain rate), until it is empty.
    let returned = Instant::now();
    let mut connected: Option<(Instant, u64)> = None;
    loop {
        let info = runtime.block_on(floe.client.info("publisher"))?;
        let outbox = &info["outbox"];
        if connected.is_none() && outbox["link"]["state"] == "connected" {
            connected = Some((Instant::now(), outbox["depth"].as_u64().unwrap_or(drain)));
        }
        if outbox["depth"] == 0 {
            break;
        }
        if returned.elapsed() > Duration::from_secs(120) {
            bail!("the outbox did not drain: {outbox}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    results.drain_messages = drain;
    if let Some((at, left)) = connected {
        results.drain_per_s = Some(left as f64 / at.elapsed().as_secs_f64().max(1e-3));
    }

    // Cron jitter.
    let seconds = if cli.quick { 3 } else { 8 };
    eprintln_status(&format!("mqtt: cron every second for {seconds} s"));
    let cron = serde_json::json!([{"kind": "cron", "name": "tick", "schedule": "* * * * * *"}]);
    runtime.block_on(floe.deploy("ticker", sink.into(), &[("triggers", cron.to_string())]))?;
    std::thread::sleep(Duration::from_secs(seconds));
    let (_, listing) = runtime.block_on(floe.client.send(
        http::Method::GET,
        "/v1/invocations?function=ticker&limit=1000",
        bytes::Bytes::new(),
    ))?;
    let mut late: Vec<f64> = listing["invocations"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| {
                    let scheduled = r["fired"]["scheduled_ms"].as_u64()?;
                    let created = r["created_at_ms"].as_u64()?;
                    Some(created.saturating_sub(scheduled) as f64)
                })
                .collect()
        })
        .unwrap_or_default();
    results.cron_runs = late.len();
    if !late.is_empty() {
        results.cron_late_p50_ms = Some(quantile(&mut late, 0.5));
        results.cron_late_max_ms = Some(quantile(&mut late, 1.0));
    }
    Ok(results)
}

/// Prints the results.
pub(crate) fn print(results: &MqttResults) {
    println!("\n## MQTT (Mosquitto on loopback; ceiling: mosquitto_sub on the same messages)\n");
    println!("| QoS | messages | floe taken | floe msg/s | mosquitto_sub msg/s |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for t in &results.throughput {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} |",
            t.qos, t.messages, t.floe_taken, t.floe_per_s, t.ceiling_per_s
        );
    }
    println!(
        "\n| QoS | rate | messages | floe p50 ms | floe p99 ms | mosquitto_sub p50 ms | p99 ms |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for l in &results.latency {
        println!(
            "| {} | {}/s | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            l.qos,
            l.rate_per_s,
            l.messages,
            l.floe_p50_ms,
            l.floe_p99_ms,
            l.ceiling_p50_ms,
            l.ceiling_p99_ms
        );
    }
    if let Some(rate) = results.drain_per_s {
        println!(
            "\noutbox drain after an outage: {} messages at {rate:.0} messages/s (once reconnected)",
            results.drain_messages
        );
    }
    if let (Some(p50), Some(max)) = (results.cron_late_p50_ms, results.cron_late_max_ms) {
        println!(
            "cron every second: {} runs, queued {p50:.0} ms (p50) / {max:.0} ms (max) after the scheduled time",
            results.cron_runs
        );
    }
}
