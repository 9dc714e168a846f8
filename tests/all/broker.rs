//! A real MQTT broker for the trigger and outbox tests: Mosquitto on a
//! loopback port the OS picks, with its own persistence directory (so a
//! restart keeps sessions and queued messages), and its own clients,
//! `mosquitto_pub` and `mosquitto_sub`, as what a device and an application
//! would run.

use crate::harness::eventually;
use crate::services::{free_port, installed};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The broker program (Debian puts it in /usr/sbin).
fn mosquitto() -> Result<PathBuf> {
    if installed("mosquitto") {
        return Ok(PathBuf::from("mosquitto"));
    }
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.is_file() {
        return Ok(sbin);
    }
    bail!("mosquitto is not installed (the test command installs it: scripts/setup)")
}

/// A Mosquitto broker.
pub(crate) struct Broker {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// TLS and a password (see [`Broker::start_secured`]).
    secured: Option<Secured>,
}

/// What a secured broker asks of its clients.
#[derive(Clone)]
struct Secured {
    user: String,
    password: String,
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub(crate) async fn start() -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix("floe-mqtt-").tempdir()?;
            let mut broker = Self {
                port: free_port()?,
                dir,
                child: None,
                secured: None,
            };
            match broker.spawn().await {
                Ok(()) => return Ok(broker),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("mosquitto did not start")))
    }

    /// A broker that speaks only TLS, with a certificate for 127.0.0.1 from
    /// a CA made here (`ca_file`), and takes only `user` with `password`.
    pub(crate) async fn start_secured(user: &str, password: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("floe-mqtts-").tempdir()?;
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=floe test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        )?;
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        )?;
        let out = Command::new("mosquitto_passwd")
            .current_dir(d)
            .args(["-b", "-c", "passwd", user, password])
            .output()
            .context("running mosquitto_passwd")?;
        if !out.status.success() {
            bail!("mosquitto_passwd: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut broker = Self {
            port: free_port()?,
            dir,
            child: None,
            secured: Some(Secured {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
        };
        broker.spawn().await?;
        Ok(broker)
    }

    /// The CA file a secured broker's certificate chains to.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// What `mosquitto_pub` and `mosquitto_sub` need to reach it.
    fn client_args(&self) -> Vec<String> {
        let mut args = vec![
            "-h".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
            "-V".to_owned(),
            "mqttv5".to_owned(),
        ];
        if let Some(s) = &self.secured {
            args.extend([
                "--cafile".to_owned(),
                self.ca_file().display().to_string(),
                "-u".to_owned(),
                s.user.clone(),
                "-P".to_owned(),
                s.password.clone(),
            ]);
        }
        args
    }

    /// `mqtt://127.0.0.1:{port}` (`mqtts://` when secured).
    pub(crate) fn url(&self) -> String {
        let scheme = if self.secured.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<()> {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\n\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_interval 1\n\
             max_queued_messages 0\n\
             max_inflight_messages 100\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type error\nlog_type warning\nlog_type notice\n",
            port = self.port,
            dir = self.dir.path().display(),
        );
        if self.secured.is_some() {
            let d = self.dir.path().display();
            text.push_str(&format!(
                "allow_anonymous false\npassword_file {d}/passwd\ncafile {d}/ca.pem\n\
                 certfile {d}/server.pem\nkeyfile {d}/server.key\n"
            ));
        } else {
            text.push_str("allow_anonymous true\n");
        }
        // As root, Mosquitto would switch to its own user, who cannot write
        // this directory.
        // SAFETY: getuid(2) has no preconditions.
        #[expect(unsafe_code, reason = "reading our own uid")]
        if unsafe { libc::getuid() } == 0 {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text)?;
        let child = Command::new(mosquitto()?)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto")?;
        self.child = Some(child);
        let port = self.port;
        let started = eventually(
            Duration::from_secs(10),
            "mosquitto to listen",
            || async move {
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok())
            },
        )
        .await;
        if let Err(e) = started {
            self.stop();
            bail!("{e}; its log:\n{}", self.log());
        }
        Ok(())
    }

    /// The broker's log.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops it (SIGTERM: it saves its sessions and queued messages) and
    /// waits until it is gone.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) on our own, not yet reaped, child.
                #[expect(unsafe_code, reason = "sending SIGTERM to our own child")]
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let _ = child.wait();
        }
    }

    /// Starts it again on its port and persistence.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().await
    }

    /// Publishes one message with `mosquitto_pub` (MQTT 5), with user
    /// properties.
    pub(crate) fn publish(
        &self,
        topic: &str,
        payload: &str,
        qos: u8,
        properties: &[(&str, &str)],
    ) -> Result<()> {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(self.client_args())
            .args(["-t", topic, "-m", payload, "-q", &qos.to_string()]);
        for (k, v) in properties {
            cmd.args(["-D", "publish", "user-property", k, v]);
        }
        let out = cmd.output().context("running mosquitto_pub")?;
        if !out.status.success() {
            bail!(
                "mosquitto_pub failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Subscribes with `mosquitto_sub` and collects what arrives; returns
    /// once the broker acknowledged the subscription. With a `session` id
    /// the subscription outlives the connection (and the client reconnects
    /// after a broker restart).
    pub(crate) async fn subscribe(
        &self,
        filter: &str,
        session: Option<&str>,
    ) -> Result<Subscriber> {
        // Line-buffered: piped, its output would otherwise wait in a buffer.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(self.client_args())
            .args(["-t", filter, "-q", "1", "-d", "-F", "MSG %t %p"]);
        if let Some(id) = session {
            cmd.args(["-i", id, "-c", "-x", "3600"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running mosquitto_sub")?;
        let stdout = child.stdout.take().context("stdout")?;
        let messages = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(0usize));
        let (m, s) = (messages.clone(), subscribed.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("MSG ") {
                    let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                    m.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((topic.to_owned(), payload.to_owned()));
                } else if line.contains("received SUBACK") {
                    *s.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                }
            }
        });
        let subscriber = Subscriber {
            child: Some(child),
            messages,
            subscribed,
        };
        let s = &subscriber;
        eventually(
            Duration::from_secs(10),
            "mosquitto_sub to subscribe",
            || async move { Ok(s.subscriptions() > 0) },
        )
        .await?;
        Ok(subscriber)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `mosquitto_sub`.
pub(crate) struct Subscriber {
    child: Option<Child>,
    messages: Arc<Mutex<Vec<(String, String)>>>,
    subscribed: Arc<Mutex<usize>>,
}

impl Subscriber {
    /// `(topic, payload)` of every message so far, in arrival order.
    pub(crate) fn messages(&self) -> Vec<(String, String)> {
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many times the broker acknowledged the subscription (once per
    /// connection).
    pub(crate) fn subscriptions(&self) -> usize {
        *self
            .subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
