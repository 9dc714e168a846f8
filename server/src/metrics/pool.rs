//! What `/metrics` reads of pools, instances and async invocations: plain
//! figures their owners fill in, so that this module needs nothing of theirs.

/// A lifecycle hook floe calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `init`.
    Init,
    /// `pre-freeze`.
    PreFreeze,
    /// `pre-stop`.
    PreStop,
}

impl Hook {
    /// Every hook, in the order metrics list them.
    pub const ALL: [Hook; 3] = [Hook::Init, Hook::PreFreeze, Hook::PreStop];

    /// The hook's name in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Init => "init",
            Hook::PreFreeze => "pre-freeze",
            Hook::PreStop => "pre-stop",
        }
    }
}

/// Counts of a pool's instances.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PoolCounts {
    /// Alive (in any state).
    pub live: u32,
    /// Parked, waiting for a request.
    pub idle: u32,
    /// Serving a request.
    pub busy: u32,
    /// Requests waiting for an instance.
    pub queued: u32,
    /// Instances started so far.
    pub started: u64,
    /// Instances stopped so far.
    pub stopped: u64,
}

/// The async invocation service's figures, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncFigures {
    /// Invocations queued or running.
    pub queue_depth: u32,
    /// Dead invocations kept.
    pub dead_letters: u64,
    /// Invocations accepted so far.
    pub accepted: u64,
    /// Invocations that succeeded so far.
    pub succeeded: u64,
    /// Attempts that failed and were retried so far.
    pub retried: u64,
    /// Invocations that ran out of attempts so far.
    pub dead: u64,
}
