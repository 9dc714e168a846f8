//! `[server]`: listeners, data directory, connection limits, TLS.

use super::{ByteSize, HumanDuration, defaults};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[server]`: listeners, data directory, connection limits, TLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Data plane address: requests to functions.
    pub data_addr: SocketAddr,
    /// Control plane address: deploys, management, metrics.
    pub control_addr: SocketAddr,
    /// Directory holding functions, artifacts and the control-plane token.
    pub data_dir: PathBuf,
    /// `Host: {name}.{domain}` routes to function `name`; empty disables it.
    pub domain: String,
    /// Open connections per listener; more wait to be accepted.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before it exits.
    pub drain_timeout: HumanDuration,
    /// Largest request head (request line and headers); 431 past it.
    pub max_header_bytes: ByteSize,
    /// Longest request target (path and query); 414 past it.
    pub max_uri_bytes: ByteSize,
    /// Connections one client address may hold open per listener; a client
    /// over it loses its oldest connection with no request in flight, or is
    /// refused. 0: no cap.
    pub max_connections_per_ip: usize,
    /// Time from accepting a connection to its first complete request head
    /// (the HTTP/2 preface included); the connection is closed past it.
    pub header_timeout: HumanDuration,
    /// Time a connection with no request in flight stays open (HTTP/1
    /// keep-alive and idle HTTP/2 connections alike).
    pub idle_timeout: HumanDuration,
    /// How often an HTTP/2 connection is pinged; one whose ping is not
    /// answered within `http2_keep_alive_timeout` is closed.
    pub http2_keep_alive_interval: HumanDuration,
    /// See `http2_keep_alive_interval`.
    pub http2_keep_alive_timeout: HumanDuration,
    /// PEM file with the certificate chain both listeners serve over TLS
    /// (leaf first). Empty, with `tls_key`: plain HTTP.
    pub tls_cert: PathBuf,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: PathBuf,
    /// The control plane's own certificate chain; empty, with
    /// `control_tls_key`: the control plane uses `tls_cert` and `tls_key`.
    pub control_tls_cert: PathBuf,
    /// The private key of `control_tls_cert`.
    pub control_tls_key: PathBuf,
    /// How often the modification times of the TLS files are checked; a
    /// changed pair is loaded without a restart.
    pub tls_reload_interval: HumanDuration,
    /// A file holding the bootstrap (admin) control-plane token, read at
    /// startup and never written (a mounted secret, the same on every node
    /// of a cluster). Empty: `<data_dir>/token`, created at first start.
    pub token_file: PathBuf,
    /// Whether `/metrics` answers without a token. Unset: only when
    /// `control_addr` is a loopback address (see
    /// [`ServerConfig::metrics_open`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_metrics: Option<bool>,
}

impl ServerConfig {
    /// The data plane's certificate and key files, when it serves TLS.
    pub fn data_tls(&self) -> Option<(&Path, &Path)> {
        pair(&self.tls_cert, &self.tls_key)
    }

    /// The control plane's certificate and key files, when it serves TLS:
    /// its own pair, else the data plane's.
    pub fn control_tls(&self) -> Option<(&Path, &Path)> {
        pair(&self.control_tls_cert, &self.control_tls_key).or_else(|| self.data_tls())
    }

    /// Whether `/metrics` answers without a token: `open_metrics` when set,
    /// otherwise whether the control plane is configured on a loopback
    /// address (only this machine can reach it then).
    pub fn metrics_open(&self) -> bool {
        self.open_metrics
            .unwrap_or_else(|| self.control_addr.ip().is_loopback())
    }
}

fn pair<'a>(cert: &'a Path, key: &'a Path) -> Option<(&'a Path, &'a Path)> {
    (!cert.as_os_str().is_empty() && !key.as_os_str().is_empty()).then_some((cert, key))
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_addr: parse_default_addr(defaults::DATA_ADDR),
            control_addr: parse_default_addr(defaults::CONTROL_ADDR),
            data_dir: PathBuf::from(defaults::DATA_DIR),
            domain: defaults::DOMAIN.to_owned(),
            max_connections: defaults::MAX_CONNECTIONS,
            drain_timeout: HumanDuration(defaults::DRAIN_TIMEOUT),
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_uri_bytes: defaults::MAX_URI_BYTES,
            max_connections_per_ip: 1000,
            header_timeout: HumanDuration(Duration::from_secs(10)),
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            http2_keep_alive_interval: HumanDuration(Duration::from_secs(30)),
            http2_keep_alive_timeout: HumanDuration(Duration::from_secs(20)),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            control_tls_cert: PathBuf::new(),
            control_tls_key: PathBuf::new(),
            tls_reload_interval: HumanDuration(Duration::from_secs(10)),
            token_file: PathBuf::new(),
            open_metrics: None,
        }
    }
}

fn parse_default_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_open_on_loopback_unless_configured() {
        let mut config = ServerConfig::default();
        assert!(
            config.metrics_open(),
            "the default control_addr is loopback"
        );
        config.control_addr = "0.0.0.0:8081".parse().unwrap();
        assert!(!config.metrics_open());
        config.control_addr = "[::1]:8081".parse().unwrap();
        assert!(config.metrics_open());
        config.open_metrics = Some(false);
        assert!(!config.metrics_open());
        config.control_addr = "10.0.0.1:8081".parse().unwrap();
        config.open_metrics = Some(true);
        assert!(config.metrics_open());
    }
}
