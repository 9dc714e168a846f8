//! `[outbound]`: what functions may reach over HTTP, and the per-function
//! allow-list (`allowed_outbound_hosts`) in Spin's syntax.
//!
//! A pattern is `scheme://host:port`:
//!
//! | part | forms |
//! | --- | --- |
//! | scheme | `http`, `https`, `*` |
//! | host | a name (`api.example.com`), `*.example.com` (any subdomain), an IPv4 address, `[an IPv6 address]`, `*` |
//! | port | a number, `*`; left out, the scheme's (80, 443) |
//!
//! Only the parsing and matching of names live here; which addresses a
//! pattern reaches (after DNS) is decided by `host::outbound`.

use super::HumanDuration;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// What a function without `allowed_outbound_hosts` may reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultOutbound {
    /// Any public address, on any port. Loopback, private, link-local,
    /// CGNAT, multicast, unspecified, documentation and metadata addresses
    /// are refused.
    #[default]
    Public,
    /// Nothing.
    None,
}

/// `[outbound]`: the server-wide outbound HTTP policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// What functions without an allow-list may reach.
    pub default: DefaultOutbound,
    /// Time to connect (DNS, TCP and TLS together), unless the guest asks
    /// for less. Always capped by the calling request's deadline.
    pub connect_timeout: HumanDuration,
    /// Time to the response head, unless the guest asks for less.
    pub first_byte_timeout: HumanDuration,
    /// Time between two chunks of a response body, unless the guest asks for
    /// less.
    pub between_bytes_timeout: HumanDuration,
    /// Outbound requests one call (request, event or hook) may make; more
    /// fail with `connection-limit-reached`.
    pub max_requests_per_call: u32,
    /// Function-to-function hops through this server's data plane; a
    /// request that arrives with this many answers 508 `loop_detected`.
    pub hop_limit: u32,
    /// Whether functions may call this server's data plane (still only
    /// where their allow-list names it). Off by default.
    pub allow_data_plane: bool,
    /// Whether functions may call this server's control plane (still only
    /// where their allow-list names it). Off by default.
    pub allow_control_plane: bool,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            default: DefaultOutbound::Public,
            connect_timeout: HumanDuration(Duration::from_secs(10)),
            first_byte_timeout: HumanDuration(Duration::from_secs(30)),
            between_bytes_timeout: HumanDuration(Duration::from_secs(30)),
            max_requests_per_call: 64,
            hop_limit: 4,
            allow_data_plane: false,
            allow_control_plane: false,
        }
    }
}

/// The host part of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// `*`: any host, public addresses only.
    Any,
    /// `*.example.com`: any name under the suffix (stored without `*.`).
    Subdomain(String),
    /// One name, lowercase, without a trailing dot.
    Name(String),
    /// One address.
    Ip(IpAddr),
}

/// One entry of `allowed_outbound_hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    text: String,
    /// `None`: any scheme.
    scheme: Option<String>,
    host: HostMatch,
    /// `None`: any port.
    port: Option<u16>,
}

/// Why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound host {pattern:?}: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: &'static str,
}

impl HostPattern {
    /// The host part.
    pub fn host(&self) -> &HostMatch {
        &self.host
    }

    /// Whether a request to `scheme://host:port` matches, `host` being the
    /// name (or address literal) in the request's URI and `addr` one address
    /// it resolved to.
    pub fn matches(&self, scheme: &str, host: &str, port: u16, addr: IpAddr) -> bool {
        if self
            .scheme
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case(scheme))
        {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = normalize_host(host);
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Name(name) => host == *name,
            HostMatch::Subdomain(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            HostMatch::Ip(ip) => canonical_ip(addr) == *ip,
        }
    }
}

/// A host as written in a URI, lowercase, without brackets or a trailing
/// dot.
pub fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) read as IPv4.
pub fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl std::str::FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let err = |reason| PatternError {
            pattern: text.to_owned(),
            reason,
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| err("expected scheme://host[:port]"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            s @ ("http" | "https") => Some(s.to_owned()),
            _ => return Err(err("the scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(err("only scheme, host and port may be given"));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (v6, after) = inner
                .split_once(']')
                .ok_or_else(|| err("unclosed [ in an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("expected :port after ]"))?,
                ),
            };
            let ip: std::net::Ipv6Addr = v6.parse().map_err(|_| err("bad IPv6 address"))?;
            (HostMatch::Ip(canonical_ip(IpAddr::V6(ip))), port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            (parse_host(host).ok_or_else(|| err("bad host"))?, port)
        };
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| err("bad port"))?),
            None => match scheme.as_deref() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => return Err(err("with scheme * the port must be given")),
            },
        };
        Ok(Self {
            text: text.to_owned(),
            scheme,
            host,
            port,
        })
    }
}

fn parse_host(host: &str) -> Option<HostMatch> {
    if host == "*" {
        return Some(HostMatch::Any);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(HostMatch::Ip(canonical_ip(ip)));
    }
    let (subdomain, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return None;
    }
    Some(if subdomain {
        HostMatch::Subdomain(name)
    } else {
        HostMatch::Name(name)
    })
}

impl TryFrom<String> for HostPattern {
    type Error = PatternError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> Self {
        p.text
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A function's `allowed_outbound_hosts`: every host it may call. Set, it
/// replaces the server's `[outbound] default`; empty, the function may call
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllowedHosts(pub Vec<HostPattern>);

impl AllowedHosts {
    /// Parses the textual form: a JSON array of patterns, or patterns
    /// separated by commas or spaces. `[]` (or nothing) allows nothing.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.starts_with('[') {
            let items: Vec<String> = serde_json::from_str(text).map_err(|_| PatternError {
                pattern: text.to_owned(),
                reason: "expected a JSON array of strings",
            })?;
            return items
                .into_iter()
                .map(HostPattern::try_from)
                .collect::<Result<_, _>>()
                .map(Self);
        }
        text.split([',', ' ', '\n', '\t'])
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    const V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(93, 184, 215, 14));

    #[test]
    fn spin_patterns_parse_and_match() {
        let api = p("https://api.example.com");
        assert!(api.matches("https", "api.example.com", 443, V4));
        assert!(api.matches("https", "API.Example.com.", 443, V4));
        assert!(!api.matches("http", "api.example.com", 443, V4));
        assert!(!api.matches("https", "api.example.com", 8443, V4));
        assert!(!api.matches("https", "evil.com", 443, V4));

        let internal = p("http://*.internal:8080");
        assert!(internal.matches("http", "db.internal", 8080, V4));
        assert!(internal.matches("http", "a.b.internal", 8080, V4));
        assert!(!internal.matches("http", "internal", 8080, V4));
        assert!(!internal.matches("http", "xinternal", 8080, V4));

        let device = p("*://192.168.1.10:*");
        let lan: IpAddr = "192.168.1.10".parse().unwrap();
        assert!(device.matches("http", "192.168.1.10", 1, lan));
        assert!(device.matches("https", "printer.lan", 443, lan));
        let mapped: IpAddr = "::ffff:192.168.1.10".parse().unwrap();
        assert!(device.matches("http", "[::ffff:192.168.1.10]", 80, mapped));
        assert!(!device.matches("http", "192.168.1.11", 80, V4));

        let v6 = p("http://[::1]:9000");
        assert!(v6.matches("http", "[::1]", 9000, "::1".parse().unwrap()));
        assert_eq!(p("*://*:*").host(), &HostMatch::Any);
        assert_eq!(p("http://localhost").port, Some(80));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "*://example.com",
            "http://exa mple.com",
            "http://example.com:99999",
            "http://example.com/path",
            "http://user@example.com",
            "http://[::1",
            "http://",
            "http://*.",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn lists_parse_from_json_or_text() {
        let a = AllowedHosts::parse(r#"["https://a.com", "http://b:8080"]"#).unwrap();
        let b = AllowedHosts::parse("https://a.com, http://b:8080").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0.len(), 2);
        assert!(AllowedHosts::parse("[]").unwrap().0.is_empty());
        assert!(AllowedHosts::parse("").unwrap().0.is_empty());
        assert!(AllowedHosts::parse("[1]").is_err());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"["https://a.com","http://b:8080"]"#);
        assert_eq!(serde_json::from_str::<AllowedHosts>(&json).unwrap(), a);
    }
}
