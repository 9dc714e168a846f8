//! What a pool measures of its load, and the autoscaler's decision as the
//! pool keeps it (the policy that makes it is [`crate::scaling`]'s).

use serde::Serialize;

/// What the driver measured of one function since the last tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Requests being served now.
    pub in_flight: u32,
    /// Requests waiting for an instance now.
    pub queued: u32,
    /// The most requests in flight and waiting at once since the last tick
    /// (bursts shorter than a tick count too).
    pub peak: u32,
    /// Requests one instance serves at once (`instance_concurrency`; 0
    /// counts as 1).
    pub per_instance: u32,
}

impl Load {
    /// Requests in flight and waiting now, or the peak since the last
    /// tick when that was higher.
    pub fn demand(self) -> u32 {
        (self.in_flight.saturating_add(self.queued)).max(self.peak)
    }
}

/// Which policy set the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Nothing reserved: the function scales to zero when idle.
    None,
    /// `min_instances`.
    Fixed,
    /// An open scheduled window.
    Scheduled,
    /// The utilization target.
    Utilization,
}

/// The autoscaler's decision for one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Instances to keep warm.
    pub instances: u32,
    /// The policy that set it (the largest proposal).
    pub policy: Policy,
    /// Why, in words.
    pub reason: String,
}
