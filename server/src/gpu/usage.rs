//! What one instance did on the GPU, for the instance view.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counters of one instance's GPU calls.
#[derive(Debug, Default)]
pub struct GpuUsage {
    calls: AtomicU64,
    failures: AtomicU64,
    busy_ns: AtomicU64,
    bytes: AtomicU64,
}

/// The counters, as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct GpuUsageView {
    /// Calls made (pipeline runs, difference scores, adapter queries).
    pub calls: u64,
    /// Calls that answered an error.
    pub failures: u64,
    /// Time spent waiting for and running GPU work.
    pub ms: f64,
    /// Frame bytes sent and received.
    pub bytes: u64,
}

impl GpuUsage {
    /// Counts one call.
    #[cfg_attr(
        not(feature = "gpu"),
        expect(dead_code, reason = "GPU calls need the gpu feature")
    )]
    pub(crate) fn record(&self, took: Duration, bytes: u64, ok: bool) {
        self.calls.fetch_add(1, Relaxed);
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        self.busy_ns
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// A snapshot for the API.
    pub fn view(&self) -> GpuUsageView {
        GpuUsageView {
            calls: self.calls.load(Relaxed),
            failures: self.failures.load(Relaxed),
            ms: self.busy_ns.load(Relaxed) as f64 / 1e6,
            bytes: self.bytes.load(Relaxed),
        }
    }
}
