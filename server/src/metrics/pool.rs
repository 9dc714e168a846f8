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

/// One trigger's figures for `/metrics`.
#[derive(Clone, Debug)]
pub struct TriggerRow {
    /// Its function.
    pub function: String,
    /// Its name.
    pub trigger: String,
    /// `cron` or `mqtt`.
    pub kind: &'static str,
    /// Its state's name (`connected`, `connecting`, `scheduled`, …).
    pub state: &'static str,
    /// Invocations it started.
    pub fired: u64,
    /// MQTT messages received.
    pub received: u64,
    /// Runs or messages it failed to queue or invoke.
    pub failed: u64,
}

/// One outbox's figures for `/metrics`.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    /// Its function.
    pub function: String,
    /// Messages waiting for the broker.
    pub depth: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Age of the oldest, in seconds.
    pub oldest_age_seconds: f64,
    /// Messages the broker took.
    pub sent: u64,
    /// Publishes refused because the outbox was full.
    pub refused: u64,
    /// Whether its connection to the broker is up.
    pub connected: bool,
}

/// Event sources' figures for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct EventFigures {
    /// Every trigger.
    pub triggers: Vec<TriggerRow>,
    /// Every open outbox.
    pub outboxes: Vec<OutboxRow>,
    /// Cron runs' lateness: `(upper bound in seconds, runs in that bucket)`,
    /// the last bound `+Inf`, and the sum in seconds.
    pub cron_lateness: Vec<(f64, u64)>,
    /// The sum of all lateness, in seconds.
    pub cron_lateness_sum: f64,
}
