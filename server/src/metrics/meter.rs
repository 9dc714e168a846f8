//! Metering: what a function (or one instance) used, and what it costs in
//! compute units.
//!
//! A compute unit (CU) is one GB-second: the instance's memory limit in GB
//! times the seconds it executed, each invocation and hook call rounded up
//! to the millisecond (as Function Compute bills). Time parked between
//! requests (idle or frozen) is metered too, and not billed.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counters of one function or one instance.
#[derive(Debug, Default)]
pub struct Meter {
    invocations: AtomicU64,
    busy_ns: AtomicU64,
    frozen_ns: AtomicU64,
    hook_ns: AtomicU64,
    /// MiB of memory limit × billed milliseconds.
    billed_mib_ms: AtomicU64,
}

/// Milliseconds billed for `took`: rounded up, at least 1.
fn billed_ms(took: Duration) -> u64 {
    (took.as_nanos().div_ceil(1_000_000) as u64).max(1)
}

impl Meter {
    /// An invocation (request or event) that executed for `took` with a
    /// memory limit of `memory_mib`.
    pub fn invocation(&self, took: Duration, memory_mib: u64) {
        self.invocations.fetch_add(1, Relaxed);
        self.busy_ns.fetch_add(took.as_nanos() as u64, Relaxed);
        self.billed_mib_ms
            .fetch_add(billed_ms(took).saturating_mul(memory_mib), Relaxed);
    }

    /// A hook call (`init` per instance, `pre-freeze`, `pre-stop`).
    pub fn hook(&self, took: Duration, memory_mib: u64) {
        self.hook_ns.fetch_add(took.as_nanos() as u64, Relaxed);
        self.billed_mib_ms
            .fetch_add(billed_ms(took).saturating_mul(memory_mib), Relaxed);
    }

    /// Time an instance spent parked, idle or frozen.
    pub fn frozen(&self, took: Duration) {
        self.frozen_ns.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    /// The figures so far.
    pub fn view(&self) -> MeterView {
        MeterView {
            invocations: self.invocations.load(Relaxed),
            busy_ms: ns_to_ms(self.busy_ns.load(Relaxed)),
            frozen_ms: ns_to_ms(self.frozen_ns.load(Relaxed)),
            hook_ms: ns_to_ms(self.hook_ns.load(Relaxed)),
            compute_units: self.billed_mib_ms.load(Relaxed) as f64 / (1024.0 * 1000.0),
        }
    }
}

fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Metered figures, as the API and `/metrics` show them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct MeterView {
    /// Requests and events executed.
    pub invocations: u64,
    /// Time executing them, milliseconds.
    pub busy_ms: f64,
    /// Time parked between requests (idle or frozen), milliseconds.
    pub frozen_ms: f64,
    /// Time in lifecycle hooks, milliseconds.
    pub hook_ms: f64,
    /// GB of memory limit × seconds executed (invocations and hooks), each
    /// call rounded up to the millisecond.
    pub compute_units: f64,
}

impl std::ops::AddAssign for MeterView {
    fn add_assign(&mut self, other: Self) {
        self.invocations += other.invocations;
        self.busy_ms += other.busy_ms;
        self.frozen_ms += other.frozen_ms;
        self.hook_ms += other.hook_ms;
        self.compute_units += other.compute_units;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_units_are_gb_seconds_billed_by_the_millisecond() {
        let m = Meter::default();
        // 1 GiB for 0.2 ms: billed as 1 ms.
        m.invocation(Duration::from_micros(200), 1024);
        // 128 MiB for 1000.1 ms: billed as 1001 ms.
        m.invocation(Duration::from_micros(1_000_100), 128);
        // A 5 ms hook at 128 MiB.
        m.hook(Duration::from_millis(5), 128);
        m.frozen(Duration::from_secs(60));
        let v = m.view();
        assert_eq!(v.invocations, 2);
        let want = (1024.0 * 1.0 + 128.0 * 1001.0 + 128.0 * 5.0) / 1024.0 / 1000.0;
        assert!((v.compute_units - want).abs() < 1e-12, "{v:?}");
        assert!((v.busy_ms - 1000.3).abs() < 1e-9, "{v:?}");
        assert_eq!(v.frozen_ms, 60_000.0);
        assert_eq!(v.hook_ms, 5.0);
    }
}
