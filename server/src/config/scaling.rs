//! `[scaling]`: the autoscaler.

use super::{HumanDuration, defaults};
use serde::{Deserialize, Serialize};

/// `[scaling]`: the autoscaler that keeps reserved instances warm and stops
/// idle ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    /// How often every function's target is worked out again: reservations
    /// are met, and idle instances past `idle_ttl` stopped, within one tick.
    pub tick: HumanDuration,
    /// Once the server is quiet after a burst (no request in flight or
    /// waiting anywhere), the heap memory freed since (instances stopped,
    /// connections closed) is handed back to the OS, at most this often;
    /// `0s` never does.
    pub release_memory: HumanDuration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            tick: HumanDuration(defaults::SCALING_TICK),
            release_memory: HumanDuration(defaults::RELEASE_MEMORY),
        }
    }
}
