//! The accept loop shared by the data and control planes: a bounded number of
//! connections (per listener and per client address, see
//! [`connections`](super::connections)), HTTP/1.1 and HTTP/2, in cleartext or
//! over TLS ([`tls`](super::tls)), each connection watched for its first
//! request, its idle time and the server's stop, and a graceful stop.
//!
//! The accept loop only accepts: a TLS handshake runs in the connection's own
//! task, within the same `header_timeout` (counted from accept) as the first
//! request head, and a connection in its handshake has not sent a request, so
//! it is closed first to make room. A client that opens sockets and never
//! finishes a handshake costs the server what one that never sends a request
//! does.

use super::connections::{Admitted, Connections};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, TryAcquireError, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a listener serves with: a cloneable hyper service whose futures can
/// move between threads.
pub(crate) trait HttpService<B>:
    Service<
        http::Request<Incoming>,
        Response = http::Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + 'static
{
}

/// The body of a listener's responses.
pub(crate) trait ReplyBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ReplyBody for B where B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// How a listener serves connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections one client address may hold (0: no cap).
    pub max_connections_per_ip: usize,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// Time from accept to the first complete request head.
    pub header_timeout: Duration,
    /// Time a connection with nothing in flight stays open.
    pub idle_timeout: Duration,
    /// HTTP/2 ping interval and the wait for its answer.
    pub http2_keep_alive: (Duration, Duration),
    /// How long to wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
}

/// Serves `listener` with `service` (over TLS when `tls` is given) until
/// `stop` turns true, then waits up to `drain_timeout` for open connections
/// to finish their requests.
pub(crate) async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    limits: ListenerLimits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) where
    S: HttpService<B>,
    B: ReplyBody,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes)
        .timer(TokioTimer::new())
        // A client has this long to send a request head on a new or idle
        // connection; slow-loris clients do not hold connection slots forever.
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.http2_keep_alive.0)
        .keep_alive_timeout(limits.http2_keep_alive.1);
    let builder = Arc::new(builder);
    let connections = Connections::new(limits.max_connections_per_ip);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tasks = TaskTracker::new();
    let draining = CancellationToken::new();
    let closing = CancellationToken::new();
    loop {
        // Waiting for a permit before accepting leaves extra clients in the
        // kernel's backlog instead of accepting connections we cannot serve;
        // but a connection that never sent a request gives its place up.
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                connections.evict_oldest_idle();
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    _ = stop.changed() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Ok(admitted) = connections.admit(peer.ip()) else {
            tracing::debug!(listener = name, %peer, "connection refused: the client is at max_connections_per_ip");
            continue;
        };
        // Responses are small and latency matters more than packet count:
        // without this, Nagle's algorithm holds back the last segment of a
        // response until the client acknowledges the previous one.
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            name,
            peer,
            admitted: Arc::new(admitted),
            limits,
            draining: draining.clone(),
            closing: closing.clone(),
        };
        let builder = builder.clone();
        let service = service.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            match tls {
                None => {
                    connection
                        .run(&builder, TokioIo::new(stream), service)
                        .await;
                }
                Some(tls) => {
                    if let Some(stream) = connection.handshake(&tls, stream).await {
                        connection
                            .run(&builder, TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tasks.close();
    draining.cancel();
    if tokio::time::timeout(limits.drain_timeout, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(listener = name, timeout = ?limits.drain_timeout, "connections still open after the drain timeout; closing them");
        closing.cancel();
    }
}

/// One accepted connection and what bounds it.
struct Connection {
    name: &'static str,
    peer: SocketAddr,
    admitted: Arc<Admitted>,
    limits: ListenerLimits,
    /// Cancelled at shutdown: finish in-flight requests, then close.
    draining: CancellationToken,
    /// Cancelled past the drain timeout: close now.
    closing: CancellationToken,
}

impl Connection {
    /// Runs the TLS handshake, until `header_timeout` after accept at most;
    /// the connection is given up (`None`) when it fails, runs out of time,
    /// is closed to make room or the server stops.
    async fn handshake(
        &self,
        tls: &TlsAcceptor,
        stream: TcpStream,
    ) -> Option<TlsStream<TcpStream>> {
        let deadline = self.admitted.activity.born() + self.limits.header_timeout;
        tokio::select! {
            result = tls.accept(stream) => match result {
                Ok(stream) => Some(stream),
                Err(e) => {
                    tracing::debug!(listener = self.name, peer = %self.peer, error = %e, "TLS handshake failed");
                    None
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                tracing::debug!(listener = self.name, peer = %self.peer, "no TLS handshake within header_timeout; closing");
                None
            }
            _ = self.admitted.close.cancelled() => {
                tracing::debug!(listener = self.name, peer = %self.peer, "connection in its TLS handshake closed to make room");
                None
            }
            _ = self.draining.cancelled() => None,
        }
    }

    async fn run<I, S, B>(self, builder: &auto::Builder<TokioExecutor>, io: TokioIo<I>, service: S)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService<B>,
        B: ReplyBody,
    {
        let activity = self.admitted.activity.clone();
        let tracked = hyper::service::service_fn(move |request| {
            activity.request_started();
            let answer = service.call(request);
            let activity = activity.clone();
            async move {
                let response = answer.await;
                activity.request_ended();
                response
            }
        });
        let conn = builder.serve_connection_with_upgrades(io, tracked);
        let mut conn = std::pin::pin!(conn);
        let activity = &self.admitted.activity;
        let limits = self.limits;
        // Until it closes gracefully: close it when it sends no request in
        // time or stays idle too long, or to make room, or at shutdown.
        let graceful = loop {
            let check = if !activity.started() {
                activity.born() + limits.header_timeout
            } else if let Some(idle) = activity.idle_since() {
                idle + limits.idle_timeout
            } else {
                Instant::now() + limits.idle_timeout
            };
            tokio::select! {
                result = conn.as_mut() => {
                    self.ended(result.err());
                    return;
                }
                _ = self.admitted.close.cancelled() => {
                    tracing::debug!(listener = self.name, peer = %self.peer, "connection with nothing in flight closed to make room");
                    return;
                }
                _ = self.draining.cancelled() => break true,
                _ = tokio::time::sleep_until(check.into()) => {
                    if !activity.started() && activity.born().elapsed() >= limits.header_timeout {
                        tracing::debug!(listener = self.name, peer = %self.peer, "no request head within header_timeout; closing");
                        return;
                    }
                    if activity.idle_since().is_some_and(|idle| idle.elapsed() >= limits.idle_timeout) {
                        break true;
                    }
                }
            }
        };
        if graceful {
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            result = conn.as_mut() => self.ended(result.err()),
            _ = self.closing.cancelled() => {}
            // A client that ignores the close gets the idle time once more.
            _ = tokio::time::sleep(limits.idle_timeout) => {}
        }
    }

    fn ended(&self, error: Option<Box<dyn std::error::Error + Send + Sync>>) {
        if let Some(e) = error {
            tracing::trace!(listener = self.name, peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}
