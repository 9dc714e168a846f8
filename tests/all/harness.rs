//! Starting real floe servers and talking to them over loopback HTTP. (The
//! HTTPS tests bring their own TLS client, in `tls.rs`; the control-plane
//! client here speaks both.)

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use floe_cli::client::{ControlClient, Trust};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The floe command line under test.
pub(crate) const FLOE: &str = env!("CARGO_BIN_EXE_floe-under-test");

/// How long a server may take to start (it compiles every stored function
/// whose artifact is missing).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A compile cache shared by every server the tests start, so each example is
/// compiled once per machine rather than once per test.
fn compile_cache() -> PathBuf {
    Path::new(FLOE).parent().and_then(Path::parent).map_or_else(
        || std::env::temp_dir().join("floe-test-cache"),
        |t| t.join("floe-test-compile-cache"),
    )
}

/// The bytes of a fixture component.
pub(crate) fn fixture(path: &str) -> Bytes {
    Bytes::from(std::fs::read(path).unwrap_or_else(|e| panic!("reading fixture {path}: {e}")))
}

/// A floe server process.
pub(crate) struct Server {
    child: Option<Child>,
    binary: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// Data plane address.
    pub(crate) data: SocketAddr,
    /// Control plane address.
    pub(crate) control: SocketAddr,
    /// `http` or `https`, per plane.
    pub(crate) data_scheme: String,
    /// See `data_scheme`.
    pub(crate) control_scheme: String,
    /// The control-plane token.
    pub(crate) token: String,
    stdout: mpsc::Receiver<String>,
}

/// Configures a [`Server`] before it starts.
#[derive(Default)]
pub(crate) struct ServerBuilder {
    env: Vec<(String, String)>,
    args: Vec<String>,
    binary: Option<String>,
}

impl ServerBuilder {
    /// Sets a `FLOE_*` variable.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs another floe binary (one built with other features).
    pub(crate) fn binary(mut self, path: &str) -> Self {
        self.binary = Some(path.to_owned());
        self
    }

    /// Deploys `file` as `name` at startup.
    pub(crate) fn deploy(mut self, name: &str, file: &str) -> Self {
        self.args.push("--deploy".into());
        self.args.push(format!("{name}={file}"));
        self
    }

    /// Starts the server.
    pub(crate) fn start(self) -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("floe-test-").tempdir()?;
        let mut env = vec![
            (
                "FLOE_SERVER__DATA_ADDR".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "FLOE_SERVER__CONTROL_ADDR".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "FLOE_SERVER__DATA_DIR".to_owned(),
                dir.path().join("data").display().to_string(),
            ),
            (
                "FLOE_ENGINE__COMPILE_CACHE".to_owned(),
                compile_cache().display().to_string(),
            ),
            // Keep each test server's address-space reservation modest.
            (
                "FLOE_LIMITS__MAX_INSTANCES_TOTAL".to_owned(),
                "256".to_owned(),
            ),
            ("FLOE_LOG".to_owned(), "info".to_owned()),
        ];
        env.extend(self.env);
        let mut server = Server {
            child: None,
            binary: self.binary.unwrap_or_else(|| FLOE.to_owned()),
            dir,
            env,
            args: self.args,
            data: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_scheme: "http".to_owned(),
            control_scheme: "http".to_owned(),
            token: String::new(),
            stdout: mpsc::channel().1,
        };
        server.spawn()?;
        Ok(server)
    }
}

impl Server {
    /// A server with the default test configuration.
    pub(crate) fn start() -> Result<Self> {
        ServerBuilder::default().start()
    }

    /// A builder for a server with more configuration.
    pub(crate) fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("floe.log")
    }

    /// Everything the server has logged (all runs).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = Command::new(&self.binary);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOE_")) {
            cmd.env_remove(key);
        }
        cmd.envs(self.env.iter().cloned())
            .arg("serve")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.binary))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.stdout = rx;
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut data, mut control) = (None, None);
        while data.is_none() || control.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let url = |plane: &str| {
                        line.strip_prefix(&format!("floe: {plane} plane listening on "))
                            .and_then(|url| url.split_once("://"))
                            .map(|(scheme, addr)| (scheme.to_owned(), addr.to_owned()))
                    };
                    if let Some((scheme, addr)) = url("data") {
                        self.data_scheme = scheme;
                        data = Some(addr.parse()?);
                    } else if let Some((scheme, addr)) = url("control") {
                        self.control_scheme = scheme;
                        control = Some(addr.parse()?);
                    }
                }
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    bail!(
                        "the server did not start ({status:?}); its log:\n{}",
                        self.log()
                    );
                }
            }
        }
        self.data = data.context("data address")?;
        self.control = control.context("control address")?;
        // The admin token: the configured token file, else the one the server
        // created in its data directory.
        let token_file = self
            .env
            .iter()
            .find(|(k, _)| k == "FLOE_SERVER__TOKEN_FILE")
            .map_or_else(|| self.data_dir().join("token"), |(_, v)| PathBuf::from(v));
        self.token = std::fs::read_to_string(token_file)?.trim().to_owned();
        Ok(())
    }

    /// A data-plane URL.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.data_scheme, self.data)
    }

    /// A control-plane URL.
    pub(crate) fn control_url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.control_scheme, self.control)
    }

    /// A control-plane client with the server's token; over HTTPS it trusts
    /// the certificate the server records in its data directory, as the CLI
    /// does.
    pub(crate) fn client(&self) -> ControlClient {
        let mut trust = Trust::default();
        let pinned = floe::store::control_cert_file(&self.data_dir());
        if self.control_scheme == "https" {
            trust
                .pin_file(&pinned)
                .unwrap_or_else(|e| panic!("the server's certificate: {e}"));
        }
        ControlClient::with_trust(&self.control_url(""), &self.token, &trust)
    }

    /// Kills the server with SIGKILL and waits for it to be gone.
    /// The server's process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: plain kill(2) on the pid of a child we spawned and have
        // not yet reaped.
        #[expect(unsafe_code, reason = "sending SIGTERM to our own child")]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                bail!("the server did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10)); // wait-helper
        }
    }

    /// Sets (or replaces) a `FLOE_*` variable for the next start.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Restarts the server on the same data directory (killing it first if it
    /// is still running).
    pub(crate) fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Deploys a component, expecting success.
    pub(crate) async fn deploy(
        &self,
        name: &str,
        component: &str,
        settings: &[(&str, &str)],
    ) -> Result<serde_json::Value> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (_, body) = self
            .client()
            .deploy(name, fixture(component), &settings)
            .await?;
        Ok(body)
    }

    /// GET a data-plane path.
    pub(crate) async fn get(&self, path: &str) -> Result<Reply> {
        get(&self.url(path)).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- floe log (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status.
    pub(crate) status: StatusCode,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The body as far as it came.
    pub(crate) body: Bytes,
    /// Whether the body ended properly (false: the connection was cut).
    pub(crate) complete: bool,
}

impl Reply {
    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The error `code` of a floe error body.
    pub(crate) fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }
}

fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` and reads the whole response.
pub(crate) async fn send(request: Request<Full<Bytes>>) -> Result<Reply> {
    let response = http_client().request(request).await?;
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    let mut complete = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: Bytes::from(bytes),
        complete,
    })
}

/// GET `url`.
pub(crate) async fn get(url: &str) -> Result<Reply> {
    send(Request::get(url).body(Full::default())?).await
}

/// POST `body` to `url`.
pub(crate) async fn post(url: &str, body: impl Into<Bytes>) -> Result<Reply> {
    send(Request::post(url).body(Full::new(body.into()))?).await
}

/// Waits until `check` holds, polling, for at most `within`. Tests wait for
/// what the server shows through this, never for a fixed time: besides the
/// polling for a process to exit in [`Server::terminate`], it is the only
/// place in the tests that sleeps (`scripts/check-test-sleeps` holds them to
/// it; the lines allowed end in `// wait-helper`).
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // wait-helper
    }
}

/// An HTTP server on loopback that records the body of every request: where
/// functions send what their hooks report.
pub(crate) struct Collector {
    /// Its URL.
    pub(crate) url: String,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    authorizations: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Starts a collector on 127.0.0.1 (port chosen by the OS).
    pub(crate) async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/collect", listener.local_addr()?);
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let authorizations = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = lines.clone();
        let auth = authorizations.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                let auth = auth.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            let auth = auth.clone();
                            async move {
                                if let Some(value) = request.headers().get("authorization") {
                                    auth.lock()
                                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                                        .push(
                                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                                        );
                                }
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                store
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .push(String::from_utf8_lossy(&body).into_owned());
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            url,
            lines,
            authorizations,
            task,
        })
    }

    /// The `allowed_outbound_hosts` pattern that lets a function reach it
    /// (loopback is refused otherwise).
    pub(crate) fn allow(&self) -> String {
        let authority = self
            .url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        format!("http://{authority}")
    }

    /// What has been received so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The `Authorization` headers received, in order.
    pub(crate) fn authorizations(&self) -> Vec<String> {
        self.authorizations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Lines starting with `prefix`.
    pub(crate) fn starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
