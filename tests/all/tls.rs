//! TLS on both listeners: HTTPS over HTTP/1.1 and HTTP/2 (by ALPN), the
//! control plane and the `floe` command line over HTTPS, certificates
//! reloaded when their files change, and TLS handshakes bounded and evicted
//! like sockets that have not sent a request.

use crate::connections::closed;
use crate::harness::{FLOE, Server, ServerBuilder, eventually};
use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use floe_tests::fixtures::HELLO;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Certificates for `localhost` and 127.0.0.1, and where the server reads
/// its pair.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("floe-tls-").tempdir()?,
        })
    }

    /// The files the server is configured with.
    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Makes a self-signed pair named `name` (its subject's CN) with openssl;
    /// returns its certificate and key files.
    fn make(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let cert = self.dir.path().join(format!("{name}-cert.pem"));
        let key = self.dir.path().join(format!("{name}-key.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", &format!("/CN={name}")])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // A server certificate, not a CA (rustls refuses a CA as one).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .output()
            .context("running openssl")?;
        ensure!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((cert, key))
    }

    /// Puts the pair `name` where the server reads it: each file replaced
    /// atomically (written beside it, then renamed), the key first.
    fn install(&self, name: &str) -> Result<()> {
        let (cert, key) = (
            self.dir.path().join(format!("{name}-cert.pem")),
            self.dir.path().join(format!("{name}-key.pem")),
        );
        for (from, to) in [(key, self.key()), (cert, self.cert())] {
            let tmp = to.with_extension("tmp");
            std::fs::copy(&from, &tmp)?;
            std::fs::rename(&tmp, &to)?;
        }
        Ok(())
    }

    /// A server serving the installed pair, checking it for changes often.
    fn server(&self) -> ServerBuilder {
        Server::builder()
            .env("FLOE_SERVER__TLS_CERT", &self.cert().display().to_string())
            .env("FLOE_SERVER__TLS_KEY", &self.key().display().to_string())
            .env("FLOE_SERVER__TLS_RELOAD_INTERVAL", "50ms")
    }
}

fn der(cert: &Path) -> Result<CertificateDer<'static>> {
    Ok(CertificateDer::from_pem_file(cert)?)
}

/// A client trusting the self-signed certificates `trusted`, offering
/// `alpn`.
fn client_config(trusted: &[&Path], alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add(der(cert)?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Opens a TLS connection to `addr`, verifying it as `localhost`.
async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost")?;
    Ok(tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?)
}

/// GETs `path` over `stream`, HTTP/2 when ALPN chose it, else HTTP/1.1.
async fn get(stream: TlsStream<TcpStream>, path: &str) -> Result<(StatusCode, String)> {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let request =
            Request::get(format!("https://localhost{path}")).body(Full::<Bytes>::default())?;
        send.send_request(request).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(header::HOST, "localhost")
            .body(Full::<Bytes>::default())?;
        send.send_request(request).await?
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The certificate `addr` serves now.
async fn served(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<CertificateDer<'static>> {
    let stream = connect(addr, config).await?;
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.clone().into_owned())
        .context("no certificate")
}

fn floe(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(FLOE);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOE_")) {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("running floe")
}

#[tokio::test(flavor = "multi_thread")]
async fn both_planes_serve_https_over_http1_and_http2() -> Result<()> {
    let certs = Certs::new()?;
    let (a, _) = certs.make("floe-a")?;
    certs.install("floe-a")?;
    let server = certs.server().start()?;
    assert_eq!(
        (server.data_scheme.as_str(), server.control_scheme.as_str()),
        ("https", "https")
    );
    // The control-plane client works over HTTPS, trusting what the server
    // recorded in its data directory.
    server.deploy("hello", HELLO, &[]).await?;

    for (alpn, expect) in [(&b"http/1.1"[..], &b"http/1.1"[..]), (b"h2", b"h2")] {
        let stream = connect(server.data, client_config(&[&a], &[alpn])?).await?;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(expect));
        let (status, body) = get(stream, "/hello/").await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "hello from floe, path=/\n");
    }
    let stream = connect(server.control, client_config(&[&a], &[b"h2", b"http/1.1"])?).await?;
    let (status, _) = get(stream, "/healthz").await?;
    assert_eq!(status, 200);

    // Plain HTTP to a TLS listener gets no answer from a function.
    let mut plain = TcpStream::connect(server.data).await?;
    plain
        .write_all(b"GET /hello/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(
        crate::harness::get(&format!("http://{}/hello/", server.data))
            .await
            .is_err()
    );

    // The command line, from the data directory (the certificate recorded
    // there is trusted whatever the URL's host) ...
    let dir = server.data_dir().display().to_string();
    let o = tokio::task::block_in_place(|| floe(&["--data-dir", &dir, "ls", "--json"], &[]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // ... or from FLOE_URL, trusting a CA file for the URL's name.
    let env = [
        (
            "FLOE_URL",
            format!("https://localhost:{}", server.control.port()),
        ),
        ("FLOE_TOKEN", server.token.clone()),
    ];
    let ls = ["--data-dir", "/nonexistent", "ls", "--json"];
    let o = tokio::task::block_in_place(|| floe(&ls, &env));
    assert!(
        !o.status.success(),
        "a self-signed certificate is not trusted by default"
    );
    let ca = a.display().to_string();
    let with_ca = [&ls[..], &["--ca", ca.as_str()][..]].concat();
    let o = tokio::task::block_in_place(|| floe(&with_ca, &env));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_certificate_is_served_without_a_restart() -> Result<()> {
    let certs = Certs::new()?;
    let (a, _) = certs.make("floe-a")?;
    let (b, _) = certs.make("floe-b")?;
    certs.install("floe-a")?;
    let server = certs.server().start()?;
    let config = client_config(&[&a, &b], &[b"http/1.1"])?;
    assert_eq!(served(server.data, config.clone()).await?, der(&a)?);

    certs.install("floe-b")?;
    let new = der(&b)?;
    eventually(
        Duration::from_secs(30),
        "the new certificate on both planes",
        || {
            let (config, new) = (config.clone(), new.clone());
            let (data, control) = (server.data, server.control);
            async move {
                Ok(served(data, config.clone()).await? == new
                    && served(control, config).await? == new)
            }
        },
    )
    .await?;
    // The CLI's copy follows, so the control-plane client still trusts it.
    let recorded = floe::store::control_cert_file(&server.data_dir());
    eventually(
        Duration::from_secs(30),
        "the new certificate recorded",
        || {
            let (recorded, new) = (recorded.clone(), new.clone());
            async move { Ok(der(&recorded)? == new) }
        },
    )
    .await?;
    server.client().list().await?;

    // A file that does not load is reported and the pair in use kept.
    let tmp = certs.cert().with_extension("tmp");
    std::fs::write(&tmp, "not a certificate")?;
    std::fs::rename(&tmp, certs.cert())?;
    eventually(Duration::from_secs(30), "the bad file reported", || async {
        Ok(server.log().contains("do not load"))
    })
    .await?;
    assert_eq!(served(server.data, config).await?, new);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unfinished_handshake_is_closed_at_the_header_timeout() -> Result<()> {
    let certs = Certs::new()?;
    certs.make("floe-a")?;
    certs.install("floe-a")?;
    let server = certs
        .server()
        .env("FLOE_SERVER__HEADER_TIMEOUT", "500ms")
        .start()?;
    let opened = std::time::Instant::now();
    let mut silent = TcpStream::connect(server.data).await?;
    // The first bytes of a TLS record, and no more.
    let mut started = TcpStream::connect(server.control).await?;
    started.write_all(&[0x16, 0x03, 0x01]).await?;
    for socket in [&mut silent, &mut started] {
        assert!(closed(socket, Duration::from_secs(30)).await);
    }
    // Not before it (the timeout runs from accept).
    assert!(opened.elapsed() >= Duration::from_millis(500));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_in_its_handshake_makes_room_for_a_request() -> Result<()> {
    let certs = Certs::new()?;
    let (a, _) = certs.make("floe-a")?;
    certs.install("floe-a")?;
    let server = certs
        .server()
        .env("FLOE_SERVER__MAX_CONNECTIONS_PER_IP", "2")
        .env("FLOE_SERVER__HEADER_TIMEOUT", "5m")
        .deploy("hello", HELLO)
        .start()?;
    let mut first = TcpStream::connect(server.data).await?;
    first.write_all(&[0x16, 0x03, 0x01]).await?;
    let mut second = TcpStream::connect(server.data).await?;
    second.write_all(&[0x16, 0x03, 0x01]).await?;
    // A third connection from the same address, at its cap: the oldest
    // one still in its handshake is closed for it.
    let stream = connect(server.data, client_config(&[&a], &[b"h2"])?).await?;
    let (status, body) = get(stream, "/hello/").await?;
    assert_eq!(status, 200, "{body}");
    // Long before its header timeout.
    assert!(closed(&mut first, Duration::from_secs(60)).await);
    drop(second);
    Ok(())
}

#[test]
fn a_certificate_that_does_not_load_stops_startup_and_names_the_file() -> Result<()> {
    let certs = Certs::new()?;
    certs.make("floe-a")?;
    certs.install("floe-a")?;
    let missing = certs.dir.path().join("missing-key.pem");
    let err = match certs
        .server()
        .env("FLOE_SERVER__TLS_KEY", &missing.display().to_string())
        .start()
    {
        Ok(_) => bail!("the server started without its key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("missing-key.pem"), "{err}");
    Ok(())
}
