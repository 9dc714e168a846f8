//! A small HTTP/1.1 load generator on tokio and hyper for what wrk cannot
//! tell: latencies kept apart by status (admitted 200s vs 503 rejections),
//! and a burst fired on connections opened beforehand.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// Response latencies in microseconds, by status; transport errors counted.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    pub(crate) by_status: BTreeMap<u16, Vec<u32>>,
    pub(crate) errors: u64,
}

impl Latencies {
    fn record(&mut self, status: u16, took: Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.by_status.entry(status).or_default().push(us);
    }

    fn merge(&mut self, other: Latencies) {
        for (status, mut us) in other.by_status {
            self.by_status.entry(status).or_default().append(&mut us);
        }
        self.errors += other.errors;
    }

    /// How many responses had `status`.
    pub(crate) fn count(&self, status: u16) -> usize {
        self.by_status.get(&status).map_or(0, Vec::len)
    }

    /// The `q` quantile (0..=1) of `status`'s latencies, in milliseconds.
    pub(crate) fn quantile_ms(&self, status: u16, q: f64) -> Option<f64> {
        let mut us = self.by_status.get(&status)?.clone();
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let at = ((us.len() - 1) as f64 * q).round() as usize;
        Some(f64::from(us[at]) / 1e3)
    }

    /// Responses that were neither 200 nor `allowed`.
    pub(crate) fn unexpected(&self, allowed: u16) -> usize {
        self.by_status
            .iter()
            .filter(|(s, _)| **s != 200 && **s != allowed)
            .map(|(_, v)| v.len())
            .sum::<usize>()
            + self.errors as usize
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn get(sender: &mut SendRequest<Empty<Bytes>>, addr: SocketAddr, path: &str) -> Result<u16> {
    sender.ready().await?;
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// `connections` clients, each sending its next request as soon as the last
/// is answered, for `duration`. A connection the server closes is reopened.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> Result<Latencies> {
    let deadline = Instant::now() + duration;
    let path: Arc<str> = path.into();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move {
                let mut seen = Latencies::default();
                let mut sender = None;
                while Instant::now() < deadline {
                    let s = match sender.as_mut() {
                        Some(s) => s,
                        None => match connect(addr).await {
                            Ok(s) => sender.insert(s),
                            Err(_) => {
                                seen.errors += 1;
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    match get(s, addr, &path).await {
                        Ok(status) => seen.record(status, t.elapsed()),
                        Err(_) => {
                            seen.errors += 1;
                            sender = None;
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Latencies::default();
    for task in tasks {
        all.merge(task.await.context("a load task panicked")?);
    }
    Ok(all)
}

/// Opens `n` connections, then sends one request on each at the same moment.
/// Returns each response's status and time from that moment.
pub(crate) async fn burst(addr: SocketAddr, path: &str, n: usize) -> Result<Vec<(u16, Duration)>> {
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        senders.push(connect(addr).await?);
    }
    let barrier = Arc::new(Barrier::new(n + 1));
    let path: Arc<str> = path.into();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let (barrier, path) = (barrier.clone(), path.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let t0 = Instant::now();
                let status = get(&mut sender, addr, &path).await?;
                anyhow::Ok((status, t0, Instant::now()))
            })
        })
        .collect();
    barrier.wait().await;
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.context("a burst task panicked")??);
    }
    let fired = answers
        .iter()
        .map(|a| a.1)
        .min()
        .unwrap_or_else(Instant::now);
    let out = answers
        .into_iter()
        .map(|(status, _, done)| (status, done - fired))
        .collect();
    Ok(out)
}
