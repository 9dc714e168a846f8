//! `[limits]`: ceilings that function settings and uploads must stay under.

use super::{ByteSize, HumanDuration, defaults};
use serde::{Deserialize, Serialize};

/// `[limits]`: ceilings for function settings and uploads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest memory any function may be given.
    pub max_memory: ByteSize,
    /// Longest timeout any function may be given.
    pub max_timeout: HumanDuration,
    /// Instances of all functions together.
    pub max_instances_total: u32,
    /// Largest `instance_concurrency` any function may be given.
    pub max_instance_concurrency: u32,
    /// Largest body limit any function may be given.
    pub max_body: ByteSize,
    /// Largest component upload; 413 past it.
    pub max_upload: ByteSize,
    /// Time to compile one component; the deploy fails past it.
    pub compile_timeout: HumanDuration,
    /// Components compiled at once; other deploys wait their turn.
    pub max_concurrent_compiles: u32,
    /// Versions kept per function; older ones are pruned.
    pub max_versions: u32,
    /// Functions on this server.
    pub max_functions: u32,
    /// Per-instance series (`floe_instance_*`) in one `/metrics` scrape, all
    /// functions together; instances past it are in the instance view only.
    pub max_instance_series: u32,
    /// Lines of stdout and stderr one instance may log per second; past it
    /// (after a burst of `guest_log_burst`) lines are dropped and counted.
    pub guest_log_rate: u32,
    /// See `guest_log_rate`.
    pub guest_log_burst: u32,
    /// The first bytes of a request body (or all of a smaller one) are read
    /// before an instance is taken, so that a slow upload holds a connection
    /// but no instance.
    pub body_buffer: ByteSize,
    /// Time those first bytes (and a whole event payload) may take to
    /// arrive, within the function's timeout; 408 past it.
    pub body_timeout: HumanDuration,
    /// Slowest average rate, per second, of the rest of a streamed request
    /// body (after `body_timeout`); a slower body fails.
    pub body_min_rate: ByteSize,
    /// Variables and secrets of one function, together.
    pub max_variables: u32,
    /// Largest value of one variable or secret.
    pub max_variable_bytes: ByteSize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_memory: defaults::MAX_MEMORY,
            max_timeout: HumanDuration(defaults::MAX_TIMEOUT),
            max_instances_total: defaults::MAX_INSTANCES_TOTAL,
            max_instance_concurrency: 256,
            max_body: defaults::MAX_BODY,
            max_upload: defaults::MAX_UPLOAD,
            compile_timeout: HumanDuration(defaults::COMPILE_TIMEOUT),
            max_concurrent_compiles: defaults::MAX_CONCURRENT_COMPILES,
            max_versions: defaults::MAX_VERSIONS,
            max_functions: defaults::MAX_FUNCTIONS,
            max_instance_series: 256,
            guest_log_rate: 100,
            guest_log_burst: 1000,
            body_buffer: ByteSize::kib(64),
            body_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            body_min_rate: ByteSize::kib(1),
            max_variables: 128,
            max_variable_bytes: ByteSize::kib(64),
        }
    }
}
