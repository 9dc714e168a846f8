//! `[invocations]`: async invocation of event functions.

use super::{ByteSize, HumanDuration};
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
    /// Bytes of payloads and results kept on disk; an invocation that would
    /// go past it is refused with 503 (after the oldest finished ones are
    /// let go).
    pub max_stored_bytes: ByteSize,
    /// Finished invocations kept; past it the oldest go before their
    /// `retention`.
    pub max_finished: u32,
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
            max_stored_bytes: ByteSize::gib(1),
            max_finished: 10_000,
        }
    }
}
