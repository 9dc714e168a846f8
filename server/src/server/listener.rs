//! The accept loop shared by the data and control planes: a bounded number of
//! connections, HTTP/1.1 and HTTP/2 (cleartext), and a graceful stop.

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How a listener serves connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// How long to wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
}

/// Serves `listener` with `service` until `stop` turns true, then waits up to
/// `drain_timeout` for open connections to finish their requests.
pub(crate) async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    limits: ListenerLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes)
        .timer(hyper_util::rt::TokioTimer::new())
        // A client has this long to send a request head on a new or idle
        // connection; slow-loris clients do not hold connection slots forever.
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // Waiting for a permit before accepting leaves extra clients in the
        // kernel's backlog instead of accepting connections we cannot serve.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
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
        // Responses are small and latency matters more than packet count:
        // without this, Nagle's algorithm holds back the last segment of a
        // response until the client acknowledges the previous one.
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(listener = name, %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener = name, timeout = ?limits.drain_timeout, "connections still open after the drain timeout; closing them");
    }
}
