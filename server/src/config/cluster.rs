//! `[cluster]`: desired state in etcd, component bytes in an OCI registry.
//! Off (single node, no dependency) while no etcd endpoint is set.

use super::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[cluster]`: how this node joins a fleet.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd endpoints (`http://host:port` or `https://…`). None: cluster
    /// mode is off.
    pub etcd: Vec<String>,
    /// etcd user name; empty: no authentication.
    pub etcd_user: String,
    /// etcd password (better set as `FLOE_CLUSTER__ETCD_PASSWORD`).
    pub etcd_password: String,
    /// A PEM file of certificates trusted for `https://` etcd endpoints
    /// (beside the public roots).
    pub etcd_ca: PathBuf,
    /// Prefix of every key floe writes in etcd.
    pub prefix: String,
    /// The OCI registry and repository prefix components are pushed under:
    /// `http(s)://host:port/prefix`.
    pub registry: String,
    /// Registry user name; empty: anonymous.
    pub registry_user: String,
    /// Registry password (better set as `FLOE_CLUSTER__REGISTRY_PASSWORD`).
    pub registry_password: String,
    /// This node's id; empty: the host name.
    pub node_id: String,
    /// The control-plane URL other nodes and clients reach this node at;
    /// empty: made from `server.control_addr`.
    pub advertise: String,
    /// How long a node stays listed after it stops renewing its lease.
    pub lease_ttl: HumanDuration,
    /// Time for one etcd or registry request.
    pub timeout: HumanDuration,
    /// Whether compiled code travels through the registry too: a node whose
    /// engine matches loads what the deploying node compiled rather than
    /// compiling again.
    pub share_compiled: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            etcd: Vec::new(),
            etcd_user: String::new(),
            etcd_password: String::new(),
            etcd_ca: PathBuf::new(),
            prefix: "/floe/v1/".into(),
            registry: String::new(),
            registry_user: String::new(),
            registry_password: String::new(),
            node_id: String::new(),
            advertise: String::new(),
            lease_ttl: HumanDuration(Duration::from_secs(10)),
            timeout: HumanDuration(Duration::from_secs(5)),
            share_compiled: true,
        }
    }
}

// Passwords stay out of logs and error messages.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("etcd", &self.etcd)
            .field("etcd_user", &self.etcd_user)
            .field("prefix", &self.prefix)
            .field("registry", &self.registry)
            .field("registry_user", &self.registry_user)
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

impl ClusterConfig {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.etcd.is_empty()
    }

    /// Checks the section; the key and the reason when it is wrong.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled() {
            return Ok(());
        }
        for endpoint in &self.etcd {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err((
                    "cluster.etcd",
                    format!("{endpoint:?} must start with http:// or https://"),
                ));
            }
        }
        if !self.prefix.starts_with('/') || !self.prefix.ends_with('/') {
            return Err(("cluster.prefix", "must start and end with /".into()));
        }
        if self.registry.is_empty() {
            return Err((
                "cluster.registry",
                "must be set in cluster mode (http(s)://host:port/prefix)".into(),
            ));
        }
        if let Err(e) = RegistryLocation::parse(&self.registry) {
            return Err(("cluster.registry", e));
        }
        if self.lease_ttl.0 < Duration::from_secs(2) || self.lease_ttl.0 > Duration::from_secs(3600)
        {
            return Err(("cluster.lease_ttl", "must be between 2s and 1h".into()));
        }
        if self.timeout.0 < Duration::from_millis(100) || self.timeout.0 > Duration::from_secs(600)
        {
            return Err(("cluster.timeout", "must be between 100ms and 10m".into()));
        }
        if !self.node_id.is_empty() && !valid_node_id(&self.node_id) {
            return Err((
                "cluster.node_id",
                "must be 1 to 63 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        Ok(())
    }
}

/// Whether `id` can name a node (it becomes an etcd key and part of
/// invocation ids).
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Where components are pushed: `http(s)://host:port/prefix`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryLocation {
    /// Whether the registry speaks plain HTTP.
    pub plain_http: bool,
    /// `host:port`, as OCI references name a registry.
    pub host: String,
    /// The repository prefix (may be empty), without slashes around it.
    pub prefix: String,
}

impl RegistryLocation {
    /// Parses `http(s)://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (plain_http, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (false, rest)
        } else {
            return Err(format!("{url:?} must start with http:// or https://"));
        };
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
            return Err(format!("{url:?} has no valid host"));
        }
        let prefix = prefix.trim_matches('/');
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                })
        };
        if !prefix.is_empty() && !prefix.split('/').all(valid_part) {
            return Err(format!(
                "repository prefix {prefix:?} must be lower-case letters, digits, '-', '_', '.' and '/'"
            ));
        }
        Ok(Self {
            plain_http,
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The repository of function `name`: `prefix/name`.
    pub fn repository(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_locations_parse() {
        let r = RegistryLocation::parse("http://127.0.0.1:5000/floe/prod").unwrap();
        assert!(r.plain_http);
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository("hello"), "floe/prod/hello");
        let r = RegistryLocation::parse("https://ghcr.io").unwrap();
        assert!(!r.plain_http);
        assert_eq!(r.repository("hello"), "hello");
        for bad in [
            "ftp://x",
            "http://",
            "http://h/Upper",
            "http://h/a//b",
            "http://u@h/x",
        ] {
            assert!(RegistryLocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_ids() {
        assert!(valid_node_id("node-1.eu_west"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("a/b"));
        assert!(!valid_node_id(&"x".repeat(64)));
    }
}
