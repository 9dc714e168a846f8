//! `[invocations]`: async invocation of event functions.

use super::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[invocations]`: async invocation of event functions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvocationsConfig {
    /// Invocations run at once.
    pub workers: u32,
    /// Invocations queued or running; more are refused with 503.
    pub max_queued: u32,
    /// Attempts per invocation before it is dead.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_base: HumanDuration,
    /// Longest wait between retries.
    pub retry_max: HumanDuration,
    /// Age past which a failing invocation is not retried.
    pub max_age: HumanDuration,
    /// How long finished (succeeded or dead) invocations are kept.
    pub retention: HumanDuration,
}

impl Default for InvocationsConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            max_queued: 10_000,
            max_attempts: 3,
            retry_base: HumanDuration(Duration::from_secs(1)),
            retry_max: HumanDuration(Duration::from_secs(300)),
            max_age: HumanDuration(Duration::from_secs(6 * 3600)),
            retention: HumanDuration(Duration::from_secs(24 * 3600)),
        }
    }
}
