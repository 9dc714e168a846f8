//! Live figures of one instance, readable while it serves.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Figures of one instance, updated after each request.
#[derive(Debug)]
pub struct InstanceStats {
    /// The instance's id, unique in this server process.
    pub id: u64,
    started: Instant,
    started_at_ms: u64,
    requests: AtomicU64,
    busy: AtomicBool,
    memory: AtomicU64,
    resources: AtomicU64,
    busy_ns: AtomicU64,
}

/// A snapshot of [`InstanceStats`], as shown by the API.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    /// The instance's id.
    pub id: u64,
    /// `busy` or `idle`.
    pub state: &'static str,
    /// Requests served.
    pub requests: u64,
    /// Linear memory in use, bytes.
    pub memory_bytes: u64,
    /// Host resources the instance holds between requests (should stay flat).
    pub resources: u64,
    /// Time spent serving requests, milliseconds.
    pub busy_ms: u64,
    /// Age in milliseconds.
    pub age_ms: u64,
    /// Start time, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
}

impl InstanceStats {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            started: Instant::now(),
            started_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            requests: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            memory: AtomicU64::new(0),
            resources: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Relaxed);
    }

    pub(crate) fn record_request(
        &self,
        busy: std::time::Duration,
        memory: usize,
        resources: usize,
    ) {
        self.requests.fetch_add(1, Relaxed);
        self.busy_ns.fetch_add(busy.as_nanos() as u64, Relaxed);
        self.memory.store(memory as u64, Relaxed);
        self.resources.store(resources as u64, Relaxed);
    }

    pub(crate) fn set_memory(&self, memory: usize) {
        self.memory.store(memory as u64, Relaxed);
    }

    /// A snapshot for the API.
    pub fn view(&self) -> InstanceView {
        InstanceView {
            id: self.id,
            state: if self.busy.load(Relaxed) {
                "busy"
            } else {
                "idle"
            },
            requests: self.requests.load(Relaxed),
            memory_bytes: self.memory.load(Relaxed),
            resources: self.resources.load(Relaxed),
            busy_ms: self.busy_ns.load(Relaxed) / 1_000_000,
            age_ms: self.started.elapsed().as_millis() as u64,
            started_at_ms: self.started_at_ms,
        }
    }
}
