//! Outbound HTTP from functions (`wasi:http/outgoing-handler`), under a
//! policy: the server's `[outbound]` section and each function's
//! `allowed_outbound_hosts`.
//!
//! The check runs on every address the request's host resolves to, and the
//! connection goes to an address that passed it, so a name that resolves (or
//! re-resolves) to a private address gains nothing, and every textual form of
//! an address (`2130706433`, `0x7f000001`, `[::ffff:127.0.0.1]`) is judged by
//! the address itself. floe's own listeners are refused unless the operator
//! opens them (`allow_data_plane`, `allow_control_plane`); requests to the
//! data plane carry a hop count ([`HOPS_HEADER`]) that the data plane
//! refuses past `hop_limit`. A refused request fails in the guest with
//! `HTTP-request-denied`, is logged once and counted in `/metrics`.
//!
//! | file | what |
//! | --- | --- |
//! | `address.rs` | which addresses are public |
//! | `send.rs` | resolve, connect, TLS, HTTP/1.1, timeouts |

mod address;
mod send;

pub use address::{Special, classify};
pub use send::HOPS_HEADER;

use crate::config::{
    AllowedHosts, DefaultOutbound, HostMatch, OutboundConfig, canonical_ip, normalize_host,
};
use crate::metrics::FunctionMetrics;
use http::uri::Scheme;
use parking_lot::RwLock;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::p2::bindings::http::types as p2;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The data-plane hops a request has made, from its [`HOPS_HEADER`] (0 when
/// absent or unreadable).
pub fn hops_of(headers: &http::HeaderMap) -> u32 {
    headers
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One of floe's own listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The data plane.
    Data,
    /// The control plane.
    Control,
}

/// The server-wide half of the policy: `[outbound]` and where floe listens.
#[derive(Debug)]
pub struct Outbound {
    config: OutboundConfig,
    listeners: RwLock<Vec<(Listener, SocketAddr)>>,
}

impl Outbound {
    /// The policy of `config`, before any listener is known.
    pub fn new(config: OutboundConfig) -> Self {
        Self {
            config,
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// The `[outbound]` section.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Records where one of floe's listeners is bound.
    pub fn add_listener(&self, listener: Listener, addr: SocketAddr) {
        self.listeners.write().push((listener, addr));
    }

    /// Which of floe's listeners `ip:port` reaches, if any. A listener bound
    /// to an unspecified address is reached on every local address.
    fn own_listener(&self, ip: IpAddr, port: u16) -> Option<Listener> {
        let listeners = self.listeners.read();
        listeners
            .iter()
            .filter(|(_, bound)| bound.port() == port)
            .find(|(_, bound)| {
                let bound_ip = canonical_ip(bound.ip());
                bound_ip == ip || ip.is_unspecified() || (bound_ip.is_unspecified() && is_local(ip))
            })
            .map(|(listener, _)| *listener)
    }
}

/// Whether `ip` is an address of this machine: loopback, or one a socket can
/// be bound to (no packet is sent).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Where a request goes, from its URI.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    scheme: Scheme,
    /// Lowercase, without brackets or a trailing dot.
    host: String,
    port: u16,
}

impl Target {
    fn of(uri: &http::Uri) -> Result<Self, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => Scheme::HTTPS,
            Some(s) if *s == Scheme::HTTP => Scheme::HTTP,
            _ => return Err(Error::HttpProtocolError),
        };
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
        Ok(Self {
            scheme,
            host: normalize_host(authority.host()),
            port,
        })
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not public, and no pattern names its host.
    NotPublic(Special),
    /// The function's allow-list does not name it.
    NotAllowed,
    /// The server's default is `none` and the function has no allow-list.
    NoOutbound,
    /// One of floe's own listeners, not opened by the operator.
    FloeListener(Listener),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotPublic(special) => write!(f, "{} address", special.as_str()),
            Self::NotAllowed => f.write_str("not in allowed_outbound_hosts"),
            Self::NoOutbound => {
                f.write_str("outbound requests are off ([outbound] default = none)")
            }
            Self::FloeListener(Listener::Data) => f.write_str("floe's data plane"),
            Self::FloeListener(Listener::Control) => f.write_str("floe's control plane"),
        }
    }
}

/// How an allowed request goes.
#[derive(Debug, Clone, Copy, Default)]
struct Route {
    /// To this server's data plane: it carries the hop count.
    own_data_plane: bool,
}

/// One function's policy: the server's, and its allow-list.
#[derive(Debug)]
pub struct FunctionOutbound {
    shared: Arc<Outbound>,
    allowed: Option<AllowedHosts>,
    function: Arc<str>,
    metrics: Option<Arc<FunctionMetrics>>,
}

impl FunctionOutbound {
    /// The policy of `function`, counted in `metrics` when given.
    pub fn new(
        shared: Arc<Outbound>,
        allowed: Option<AllowedHosts>,
        function: Arc<str>,
        metrics: Option<Arc<FunctionMetrics>>,
    ) -> Self {
        Self {
            shared,
            allowed,
            function,
            metrics,
        }
    }

    /// Whether a request to `target` may connect to `addr`.
    fn decide(&self, target: &Target, addr: IpAddr) -> Result<Route, Denied> {
        let addr = canonical_ip(addr);
        let config = self.shared.config();
        let own = self.shared.own_listener(addr, target.port);
        match own {
            Some(Listener::Data) if !config.allow_data_plane => {
                return Err(Denied::FloeListener(Listener::Data));
            }
            Some(Listener::Control) if !config.allow_control_plane => {
                return Err(Denied::FloeListener(Listener::Control));
            }
            _ => {}
        }
        let public = classify(addr);
        match &self.allowed {
            None => match config.default {
                // The listeners the operator opened still need naming.
                DefaultOutbound::Public if own.is_some() => return Err(Denied::NotAllowed),
                DefaultOutbound::Public => public.map_err(Denied::NotPublic)?,
                DefaultOutbound::None => return Err(Denied::NoOutbound),
            },
            Some(list) => {
                let scheme = target.scheme.as_str();
                let mut named = list
                    .0
                    .iter()
                    .filter(|p| p.matches(scheme, &target.host, target.port, addr));
                // `*` as the host reaches public addresses only; a pattern
                // that names the host reaches it wherever it is.
                let granted = named.any(|p| *p.host() != HostMatch::Any || public.is_ok());
                if !granted {
                    return Err(match public {
                        Err(special) => Denied::NotPublic(special),
                        Ok(()) => Denied::NotAllowed,
                    });
                }
            }
        }
        Ok(Route {
            own_data_plane: own == Some(Listener::Data),
        })
    }

    fn denied(&self, target: &Target, refusal: Option<(SocketAddr, Denied)>) {
        if let Some(m) = &self.metrics {
            m.record_outbound(true);
        }
        match refusal {
            Some((addr, why)) => tracing::warn!(
                function = %self.function,
                host = %target.host,
                port = target.port,
                %addr,
                reason = %why,
                "outbound request denied"
            ),
            None => {
                tracing::warn!(function = %self.function, host = %target.host, "outbound request denied")
            }
        }
    }

    fn sent(&self) {
        if let Some(m) = &self.metrics {
            m.record_outbound(false);
        }
    }
}

/// The wasi-http hooks of one instance: its function's policy, the deadline
/// of the call it is serving and the requests that call has made.
#[derive(Debug)]
pub struct OutboundHooks {
    policy: Arc<FunctionOutbound>,
    /// The running call's deadline (copied from the store's).
    pub(crate) deadline: Instant,
    hops: u32,
    requests: u32,
    /// Requests in flight on a WASI 0.3 instance that joined these hooks
    /// (`join_call`); 0 for a WASI 0.2 one.
    calls: u32,
    body_chunk: usize,
}

impl OutboundHooks {
    /// Hooks applying `policy`, writing outgoing bodies in chunks of at most
    /// `body_chunk` bytes.
    pub fn new(policy: Arc<FunctionOutbound>, deadline: Instant, body_chunk: usize) -> Self {
        Self {
            policy,
            deadline,
            hops: 0,
            requests: 0,
            calls: 0,
            body_chunk,
        }
    }

    /// A new call begins: it arrived after `hops` data-plane hops, and has
    /// made no request yet.
    pub fn begin_call(&mut self, hops: u32) {
        self.hops = hops;
        self.requests = 0;
    }

    /// A request joins a WASI 0.3 instance that may be serving others. The
    /// hop count sent is the highest of the requests on it (loop detection
    /// never loses a hop), and `max_requests_per_call` bounds the outbound
    /// requests of the requests in flight together: `max × in flight`, each
    /// request that ends giving its share back.
    pub fn join_call(&mut self, hops: u32) {
        if self.calls == 0 {
            self.begin_call(hops);
        } else {
            self.hops = self.hops.max(hops);
        }
        self.calls += 1;
    }

    /// A request that joined (`join_call`) has ended.
    pub fn leave_call(&mut self) {
        self.calls = self.calls.saturating_sub(1);
        let share = self.policy.shared.config().max_requests_per_call;
        self.requests = self.requests.saturating_sub(share);
    }

    /// Outbound requests the call has made so far.
    pub fn requests_made(&self) -> u32 {
        self.requests
    }
}

type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, send::IoFuture), Error>> + Send>;

/// Hooks for reading an incoming request into a WASI 0.3 request: they
/// filter its headers as wasi-http's defaults do, and send nothing.
struct IncomingHooks;

impl WasiHttpHooks for IncomingHooks {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

/// The hooks an incoming request is read with (`p3::Request::from_http`).
/// Zero-sized, so handing out a `'static` borrow allocates nothing.
pub fn incoming_hooks() -> &'static mut dyn WasiHttpHooks {
    Box::leak(Box::new(IncomingHooks))
}

impl WasiHttpHooks for OutboundHooks {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        self.body_chunk
    }

    // The guest gets these errors as codes; a guest that fails requests in a
    // loop must not flood the log with warnings, so they are debug lines.
    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> p2::ErrorCode {
        tracing::debug!(function = %self.policy.function, error = %err, "outbound request failed");
        p2::ErrorCode::HttpProtocolError
    }

    fn p2_error_from_connect(&mut self, err: &std::io::Error) -> p2::ErrorCode {
        tracing::debug!(function = %self.policy.function, error = %err, "outbound connect failed");
        p2::ErrorCode::ConnectionRefused
    }

    fn p2_error_from_tls(&mut self, err: &std::io::Error) -> p2::ErrorCode {
        tracing::debug!(function = %self.policy.function, error = %err, "outbound TLS failed");
        p2::ErrorCode::TlsProtocolError
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        self.requests = self.requests.saturating_add(1);
        let limit = self
            .policy
            .shared
            .config()
            .max_requests_per_call
            .saturating_mul(self.calls.max(1));
        if self.requests > limit {
            if self.requests == limit + 1 {
                tracing::warn!(function = %self.policy.function, limit = self.policy.shared.config().max_requests_per_call, "outbound requests per call exhausted");
            }
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        }
        Box::new(send::send(
            self.policy.clone(),
            request,
            options,
            self.deadline,
            self.hops,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllowedHosts;

    fn target(uri: &str) -> Target {
        Target::of(&uri.parse().unwrap()).unwrap()
    }

    fn policy(default: DefaultOutbound, allowed: Option<&str>) -> FunctionOutbound {
        let shared = Arc::new(Outbound::new(OutboundConfig {
            default,
            ..OutboundConfig::default()
        }));
        shared.add_listener(Listener::Control, "127.0.0.1:8081".parse().unwrap());
        shared.add_listener(Listener::Data, "0.0.0.0:8080".parse().unwrap());
        FunctionOutbound::new(
            shared,
            allowed.map(|a| AllowedHosts::parse(a).unwrap()),
            Arc::from("f"),
            None,
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_public_default_refuses_special_addresses() {
        let p = policy(DefaultOutbound::Public, None);
        let t = target("https://example.com/");
        assert!(p.decide(&t, ip("93.184.215.14")).is_ok());
        for special in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::ffff:127.0.0.1",
            "::1",
        ] {
            assert!(p.decide(&t, ip(special)).is_err(), "{special}");
        }
        let none = policy(DefaultOutbound::None, None);
        assert_eq!(
            none.decide(&t, ip("93.184.215.14")).err(),
            Some(Denied::NoOutbound)
        );
    }

    #[test]
    fn an_allow_list_replaces_the_default_and_may_name_private_hosts() {
        let p = policy(
            DefaultOutbound::Public,
            Some("http://127.0.0.1:9000, *://*:*, http://*.lan:80"),
        );
        let named = target("http://127.0.0.1:9000/x");
        assert!(p.decide(&named, ip("127.0.0.1")).is_ok());
        // Another port of loopback is not named, and `*` reaches public only.
        let other = target("http://127.0.0.1:9001/x");
        assert!(matches!(
            p.decide(&other, ip("127.0.0.1")),
            Err(Denied::NotPublic(Special::Loopback))
        ));
        assert!(
            p.decide(&target("https://example.com"), ip("1.1.1.1"))
                .is_ok()
        );
        assert!(
            p.decide(&target("http://cam.lan"), ip("192.168.1.9"))
                .is_ok()
        );
        let strict = policy(DefaultOutbound::Public, Some("https://api.example.com"));
        assert_eq!(
            strict
                .decide(&target("https://example.com"), ip("1.1.1.1"))
                .err(),
            Some(Denied::NotAllowed)
        );
    }

    #[test]
    fn floe_listeners_stay_closed_even_when_named() {
        let p = policy(
            DefaultOutbound::Public,
            Some("http://127.0.0.1:8081, http://localhost:8080"),
        );
        assert_eq!(
            p.decide(
                &target("http://127.0.0.1:8081/v1/functions"),
                ip("127.0.0.1")
            )
            .err(),
            Some(Denied::FloeListener(Listener::Control))
        );
        // The data plane bound to 0.0.0.0 is reached on every local address.
        assert_eq!(
            p.decide(&target("http://localhost:8080/"), ip("::1")).err(),
            Some(Denied::FloeListener(Listener::Data))
        );
        assert_eq!(
            p.decide(&target("http://localhost:8080/"), ip("0.0.0.0"))
                .err(),
            Some(Denied::FloeListener(Listener::Data))
        );
    }
}
