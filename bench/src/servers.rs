//! Starting the servers under test, finding their address, measuring their
//! CPU time, and stopping them.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A server process started for a benchmark. Killed when dropped.
pub(crate) struct Spawned {
    child: Child,
    /// `http://127.0.0.1:PORT`: the first address the server printed.
    pub(crate) base: String,
}

fn forward_lines(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Spawned {
    /// Starts `cmd` and waits until it prints an `http://127.0.0.1:PORT`
    /// address on stdout or stderr.
    pub(crate) fn start(mut cmd: Command) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let (tx, rx) = mpsc::channel();
        forward_lines(child.stdout.take().context("stdout")?, tx.clone());
        forward_lines(child.stderr.take().context("stderr")?, tx);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                bail!(
                    "{cmd:?} printed no address; its output:\n{}",
                    seen.join("\n")
                );
            };
            const PREFIX: &str = "http://127.0.0.1:";
            if let Some(at) = line.find(PREFIX) {
                let port: String = line[at + PREFIX.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let base = format!("{PREFIX}{port}");
                // Keep draining output so the pipes never fill.
                std::thread::spawn(move || for _ in rx {});
                let server = Self { child, base };
                server.wait_ready()?;
                return Ok(server);
            }
            seen.push(line);
        }
    }

    fn wait_ready(&self) -> Result<()> {
        let addr = self.base.trim_start_matches("http://");
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("{addr} never accepted a connection");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the process has used so far, in seconds.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name, which is in parentheses and may hold
        // spaces: state is field 3, utime 14, stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("parsing /proc/PID/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11).context("utime")?.parse()?;
        let stime: f64 = fields.get(12).context("stime")?.parse()?;
        Ok((utime + stime) / clock_ticks())
    }

    /// Resident set size, KiB.
    pub(crate) fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("VmRSS")?
            .parse()
            .context("VmRSS value")
    }
}

/// Memory of a process from `/proc/PID/smaps_rollup`, KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Memory {
    /// Resident.
    pub(crate) rss_kib: u64,
    /// Resident and not shared with any other mapping (what an instance
    /// really costs): `Private_Clean + Private_Dirty`.
    pub(crate) private_kib: u64,
}

impl Spawned {
    /// The process's resident and private memory now.
    pub(crate) fn memory(&self) -> Result<Memory> {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()))?;
        let field = |name: &str| -> u64 {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            rss_kib: field("Rss"),
            private_kib: field("Private_Clean") + field("Private_Dirty"),
        })
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
