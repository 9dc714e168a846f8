//! Handing freed heap memory back to the OS once a burst is over.
//!
//! glibc's allocator keeps what a burst freed (stopped instances' stores,
//! closed connections' buffers) in its per-thread arenas, where it counts as
//! the process's private memory until reused. When the server is quiet after
//! activity, `malloc_trim` returns those pages; it runs on a blocking thread,
//! at most once per `scaling.release_memory`, so a server under steady load
//! never pays for it.

use super::Step;
use std::time::{Duration, Instant};

/// Decides, after each autoscaler pass, whether to release memory now.
#[derive(Debug)]
pub(super) struct Releaser {
    every: Duration,
    last: Option<Instant>,
    /// Requests were served, instances started or stopped, or functions
    /// changed since the last release.
    active: bool,
    /// `Step::changes` at the last pass.
    changes: u64,
}

impl Releaser {
    /// Releases at most once per `every`; never when it is zero.
    pub(super) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            active: false,
            changes: 0,
        }
    }

    /// Whether to release now, after a pass that saw `step`.
    fn decide(&mut self, step: Step, now: Instant) -> bool {
        if self.every.is_zero() {
            return false;
        }
        let changed = step.changes != self.changes;
        self.changes = step.changes;
        if step.started > 0 || step.stopped > 0 || step.peak > 0 || step.busy > 0 || changed {
            self.active = true;
        }
        // A pass that saw a change is not quiet: what the change frees (a
        // deploy's upload, the compiler's buffers) may still be in use.
        let quiet = step.busy == 0 && step.peak == 0 && !changed;
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if !(self.active && quiet && due) {
            return false;
        }
        self.active = false;
        self.last = Some(now);
        true
    }

    /// Called after each pass: releases on a blocking thread when due.
    pub(super) fn after(&mut self, step: Step, now: Instant) {
        if self.decide(step, now) {
            tokio::task::spawn_blocking(|| {
                let began = Instant::now();
                let released = release();
                tracing::debug!(released, took = ?began.elapsed(), "freed heap memory handed back");
            });
        }
    }
}

/// Returns free heap pages to the OS. Whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() -> bool {
    #[expect(
        unsafe_code,
        reason = "malloc_trim takes no pointers; it walks glibc's own arenas under their locks"
    )]
    let released = unsafe { libc::malloc_trim(0) };
    released != 0
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(busy: u32, peak: u32, stopped: u32) -> Step {
        Step {
            started: 0,
            stopped,
            busy,
            peak,
            changes: 0,
        }
    }

    #[test]
    fn releases_once_quiet_after_a_burst_and_not_again_until_due() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = Releaser::new(Duration::from_secs(1));
        // Nothing happened yet: nothing to give back.
        assert!(!r.decide(step(0, 0, 0), at(0)));
        // A burst: not while requests are in flight or were this tick.
        assert!(!r.decide(step(50, 50, 0), at(100)));
        assert!(!r.decide(step(0, 50, 0), at(200)));
        // The first quiet pass after it releases.
        assert!(r.decide(step(0, 0, 0), at(300)));
        assert!(!r.decide(step(0, 0, 0), at(400)));
        // Idle instances stopped later count as activity, but the next
        // release waits for its interval.
        assert!(!r.decide(step(0, 0, 3), at(500)));
        assert!(!r.decide(step(0, 0, 0), at(1_200)));
        assert!(r.decide(step(0, 0, 0), at(1_300)));
        // A deploy is activity too (compiling frees a lot).
        let deployed = Step {
            changes: 1,
            ..step(0, 0, 0)
        };
        assert!(!r.decide(deployed, at(2_400)));
        assert!(r.decide(deployed, at(2_500)));
        assert!(!r.decide(deployed, at(3_600)));
    }

    #[test]
    fn zero_interval_never_releases() {
        let mut r = Releaser::new(Duration::ZERO);
        assert!(!r.decide(step(5, 5, 5), Instant::now()));
        assert!(!r.decide(step(0, 0, 0), Instant::now()));
    }
}
