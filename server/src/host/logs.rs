//! Guest stdout and stderr, captured into the server's log line by line and
//! tagged with the function, version and instance that wrote them. Each
//! instance may log `guest_log_rate` lines a second (bursts of
//! `guest_log_burst`); past it lines are dropped and counted, and the count
//! is logged (`N lines dropped`) when lines flow again or the instance ends.

use bytes::Bytes;
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line kept; longer output is split.
const MAX_LINE: usize = 4096;

/// Which stream a [`GuestLog`] captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where a log line came from, and how many more it may write.
#[derive(Debug)]
pub struct LogSource {
    /// The function.
    pub function: Arc<str>,
    /// Its version.
    pub version: u64,
    /// The instance.
    pub instance: u64,
    budget: Mutex<Budget>,
}

/// A token bucket of lines.
#[derive(Debug)]
struct Budget {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl LogSource {
    /// The source of one instance's lines, allowed `per_sec` lines a second
    /// in bursts of `burst`.
    pub fn new(function: Arc<str>, version: u64, instance: u64, per_sec: u32, burst: u32) -> Self {
        Self {
            function,
            version,
            instance,
            budget: Mutex::new(Budget {
                per_sec: f64::from(per_sec),
                burst: f64::from(burst.max(1)),
                tokens: f64::from(burst.max(1)),
                last: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// Takes one line from the budget: `None` when it is to be dropped,
    /// else the lines dropped since the last one that went through.
    fn take(&self) -> Option<u64> {
        let mut b = self.budget.lock();
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * b.per_sec;
        b.tokens = (b.tokens + refill).min(b.burst);
        b.last = now;
        if b.tokens < 1.0 {
            b.dropped += 1;
            return None;
        }
        b.tokens -= 1.0;
        Some(std::mem::take(&mut b.dropped))
    }

    fn report_dropped(&self, dropped: u64) {
        if dropped > 0 {
            tracing::warn!(
                target: "floe::guest",
                function = %self.function,
                version = self.version,
                instance = self.instance,
                dropped,
                "{dropped} lines dropped (guest_log_rate)"
            );
        }
    }
}

impl Drop for LogSource {
    fn drop(&mut self) {
        let dropped = self.budget.get_mut().dropped;
        self.report_dropped(dropped);
    }
}

/// A guest output stream that turns writes into `tracing` events, one per
/// line. Cheap to clone; clones share the partial line.
#[derive(Clone)]
pub struct GuestLog {
    source: Arc<LogSource>,
    stream: Stream,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl GuestLog {
    /// A capture of `stream` for the instance described by `source`.
    pub fn new(source: Arc<LogSource>, stream: Stream) -> Self {
        Self {
            source,
            stream,
            partial: Arc::default(),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock();
        partial.extend_from_slice(bytes);
        while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if partial.len() >= MAX_LINE {
            let line: Vec<u8> = std::mem::take(&mut *partial);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let Some(dropped) = self.source.take() else {
            return;
        };
        self.source.report_dropped(dropped);
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let s = &self.source;
        tracing::info!(
            target: "floe::guest",
            function = %s.function,
            version = s.version,
            instance = s.instance,
            stream = self.stream.name(),
            "{text}"
        );
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        // The last clone flushes a line the guest left unterminated.
        if Arc::strong_count(&self.partial) == 1 {
            let partial = std::mem::take(&mut *self.partial.lock());
            if !partial.is_empty() {
                self.emit(&partial);
            }
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_dropped_and_counted() {
        let source = LogSource::new(Arc::from("f"), 1, 1, 0, 3);
        assert_eq!(source.take(), Some(0));
        assert_eq!(source.take(), Some(0));
        assert_eq!(source.take(), Some(0));
        assert_eq!(source.take(), None);
        assert_eq!(source.take(), None);
        assert_eq!(source.budget.lock().dropped, 2);
        let refilled = LogSource::new(Arc::from("f"), 1, 1, 1_000_000, 1);
        assert_eq!(refilled.take(), Some(0));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(refilled.take(), Some(0));
    }
}
