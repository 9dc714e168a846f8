//! The real services cluster mode runs on, started on loopback ports the OS
//! picks, with throwaway data directories: etcd (one member or three) and an
//! OCI registry (the distribution registry, Debian's `docker-registry`).

use crate::harness::{eventually, get};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port the OS picked, free when this returns.
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether `program` is on the PATH.
pub(crate) fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// One etcd member.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// An etcd cluster of one or more members on loopback.
pub(crate) struct Etcd {
    members: Vec<Member>,
    initial_cluster: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `size` members and waits until the cluster answers. A port
    /// picked for it can be taken by another listener before etcd binds it:
    /// then it starts again on other ports.
    pub(crate) async fn start(size: usize) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(size).await {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    async fn start_once(size: usize) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("floe-etcd-").tempdir()?;
        let mut members = Vec::new();
        for i in 0..size {
            members.push(Member {
                name: format!("m{i}"),
                client: free_port()?,
                peer: free_port()?,
                dir: dir.path().join(format!("m{i}")),
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Self {
            members,
            initial_cluster,
            _dir: dir,
        };
        for i in 0..size {
            etcd.spawn(i)?;
        }
        etcd.wait_healthy().await?;
        Ok(etcd)
    }

    /// Whether a member process has exited (it could not bind its ports).
    fn exited(&mut self) -> bool {
        self.members.iter_mut().any(|m| {
            m.child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
        })
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let cluster = self.initial_cluster.clone();
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.with_extension("log"))?;
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd (Debian package etcd-server)")?;
        m.child = Some(child);
        Ok(())
    }

    /// Every member's client URL, as floe's `[cluster] etcd` takes them.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// The endpoints as a `FLOE_CLUSTER__ETCD` value.
    pub(crate) fn endpoints_toml(&self) -> String {
        let quoted: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", quoted.join(", "))
    }

    fn live_endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs etcdctl against the live members; its stdout.
    pub(crate) fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.live_endpoints()))
            .args(args)
            .output()
            .context("running etcdctl (Debian package etcd-client)")?;
        if !out.status.success() {
            bail!(
                "etcdctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until a majority answers (failing at once when a member
    /// exited).
    pub(crate) async fn wait_healthy(&mut self) -> Result<()> {
        let this = std::sync::Mutex::new(self);
        eventually(Duration::from_secs(30), "etcd answers", || async {
            let mut etcd = this.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            if etcd.exited() {
                bail!("an etcd member exited; its log is beside its data directory");
            }
            Ok(etcd.ctl(&["put", "/floe-test/health", "ok"]).is_ok())
        })
        .await
    }

    /// Every key under `prefix` with its value.
    pub(crate) fn dump(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let out = self.ctl(&["get", "--prefix", prefix])?;
        let lines: Vec<&str> = out.lines().collect();
        Ok(lines
            .chunks(2)
            .filter_map(|pair| Some((pair.first()?.to_string(), pair.get(1)?.to_string())))
            .collect())
    }

    /// The current revision.
    pub(crate) fn revision(&self) -> Result<i64> {
        let out = self.ctl(&["get", "/floe-test/health", "-w", "json"])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        json["header"]["revision"]
            .as_i64()
            .context("no revision in etcdctl's answer")
    }

    /// The index of the member that leads.
    pub(crate) fn leader(&self) -> Result<usize> {
        let out = self.ctl(&["endpoint", "status", "-w", "json"])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        for (i, status) in json.as_array().into_iter().flatten().enumerate() {
            let status = &status["Status"];
            if status["leader"] == status["header"]["member_id"] {
                return Ok(i);
            }
        }
        bail!("no leader in {out}")
    }

    /// Kills member `i` (SIGKILL).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every member.
    pub(crate) fn stop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Restarts every stopped member on its data directory and ports.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i)?;
            }
        }
        self.wait_healthy().await
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An OCI registry on loopback.
pub(crate) struct Registry {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Registry {
    /// Starts a registry and waits until it answers.
    pub(crate) async fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("floe-registry-")
            .tempdir()?;
        let mut registry = Self {
            port: free_port()?,
            dir,
            child: None,
        };
        registry.spawn()?;
        registry.wait_ready().await?;
        Ok(registry)
    }

    fn spawn(&mut self) -> Result<()> {
        let config = self.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{}\n",
                self.storage().display(),
                self.port
            ),
        )?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the registry (Debian package docker-registry)")?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let url = format!("http://{}/v2/", self.host());
        let child = std::sync::Mutex::new(self.child.as_mut());
        eventually(Duration::from_secs(30), "the registry answers", || async {
            let exited = child
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                bail!("the registry exited (its port was taken?)");
            }
            Ok(get(&url).await.is_ok_and(|r| r.status == 200))
        })
        .await
    }

    /// `127.0.0.1:port`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where it keeps blobs.
    pub(crate) fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding blob `digest` (`sha256:…`).
    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        blob_path(&self.storage(), hex)
    }

    /// Stops it (SIGKILL).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on its storage and port.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()?;
        self.wait_ready().await
    }
}

fn blob_path(storage: &Path, hex: &str) -> PathBuf {
    storage
        .join("docker/registry/v2/blobs/sha256")
        .join(hex.get(..2).unwrap_or_default())
        .join(hex)
        .join("data")
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
