//! What `/metrics` reads of pools and instances: plain figures the pools
//! fill in, so that this module needs nothing of theirs.

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
