//! Sending one outbound request: resolve, check every address against the
//! policy, connect to an allowed one, TLS, HTTP/1.1, with every wait bounded
//! by the calling request's deadline.

use super::{FunctionOutbound, Target};
use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// The header that counts function-to-function hops through a data plane.
pub const HOPS_HEADER: &str = "floe-hops";

/// What the guest is waiting on once the response head is in: the
/// connection's end.
pub(super) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The waits of one request, each the smaller of what the guest asked, the
/// server's default and what is left until `deadline`.
struct Waits {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Waits {
    fn new(
        outbound: &FunctionOutbound,
        options: Option<RequestOptions>,
        deadline: Instant,
    ) -> Self {
        let config = outbound.shared.config();
        let left = deadline.saturating_duration_since(Instant::now());
        let pick = |asked: Option<Duration>, default: Duration| {
            asked.unwrap_or(default).min(default).min(left)
        };
        let options = options.unwrap_or_default();
        Self {
            connect: pick(options.connect_timeout, config.connect_timeout.0),
            first_byte: pick(options.first_byte_timeout, config.first_byte_timeout.0),
            between_bytes: pick(
                options.between_bytes_timeout,
                config.between_bytes_timeout.0,
            ),
        }
    }
}

/// Sends `request` for the function behind `outbound`, if its policy allows
/// the address it would connect to.
pub(super) async fn send(
    outbound: Arc<FunctionOutbound>,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
    deadline: Instant,
    hops: u32,
) -> Result<(Response<WasiBody>, IoFuture), Error> {
    let target = Target::of(request.uri())?;
    let waits = Waits::new(&outbound, options, deadline);
    let connect_by = Instant::now() + waits.connect;

    let addrs = resolve(&target, waits.connect).await?;
    let mut allowed = Vec::new();
    let mut refusal = None;
    for addr in addrs {
        match outbound.decide(&target, addr.ip()) {
            Ok(route) => allowed.push((addr, route)),
            Err(why) => refusal = refusal.or(Some((addr, why))),
        }
    }
    if allowed.is_empty() {
        outbound.denied(&target, refusal);
        return Err(Error::HttpRequestDenied);
    }
    outbound.sent();

    let mut last_error = Error::ConnectionTimeout;
    let mut connected = None;
    for (addr, route) in allowed {
        let left = connect_by.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                connected = Some((stream, route));
                break;
            }
            Ok(Err(e)) => last_error = Error::Connect(e),
            Err(_) => {
                last_error = Error::ConnectionTimeout;
                break;
            }
        }
    }
    let (stream, route) = connected.ok_or(last_error)?;
    let _ = stream.set_nodelay(true);
    let stream: Box<dyn Io> = if target.scheme == Scheme::HTTPS {
        let left = connect_by.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, tls(&target, stream))
            .await
            .map_err(|_| Error::ConnectionTimeout)??
    } else {
        Box::new(stream)
    };
    let left = connect_by.saturating_duration_since(Instant::now());
    let (mut sender, connection) = tokio::time::timeout(
        left,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    if route.own_data_plane {
        let value = http::HeaderValue::from(hops.saturating_add(1));
        request.headers_mut().insert(HOPS_HEADER, value);
    }
    // The request line carries the path only (no proxy here).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;

    // The connection lives on its own task until the response is read (or
    // dropped), never past the calling request's deadline.
    let lifetime = deadline.saturating_duration_since(Instant::now());
    let connection = tokio::spawn(tokio::time::timeout(lifetime, connection));
    let response = tokio::time::timeout(waits.first_byte, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let io: IoFuture = Box::new(async move {
        match connection.await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Error::from(e)),
            Ok(Err(_)) => Err(Error::HttpResponseTimeout),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    });
    let response = response.map(|body| {
        BetweenBytes {
            body,
            wait: waits.between_bytes,
            timer: Box::pin(tokio::time::sleep(waits.between_bytes)),
        }
        .boxed_unsync()
    });
    Ok((response, io))
}

/// Every address of the target (one, for an address literal).
async fn resolve(target: &Target, wait: Duration) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match tokio::time::timeout(wait, lookup).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                return Err(Error::DestinationNotFound);
            }
            Ok(addrs)
        }
        Ok(Err(e)) => Err(Error::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        }),
        Err(_) => Err(Error::DnsTimeout),
    }
}

/// The client TLS configuration (the Mozilla roots of `webpki-roots`),
/// made once.
fn client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

async fn tls(target: &Target, stream: TcpStream) -> Result<Box<dyn Io>, Error> {
    use rustls::pki_types::ServerName;
    let name = match target.host.parse::<IpAddr>() {
        Ok(ip) => ServerName::from(ip),
        Err(_) => {
            ServerName::try_from(target.host.clone()).map_err(|_| Error::HttpRequestUriInvalid)?
        }
    };
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let stream = connector.connect(name, stream).await.map_err(Error::Tls)?;
    Ok(Box::new(stream))
}

/// A response body that fails when no chunk comes for `wait`.
struct BetweenBytes {
    body: hyper::body::Incoming,
    wait: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.wait;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
