//! Default values of the `[server]`, `[functions]`, `[limits]`, `[engine]`
//! and `[scaling]` sections, in one place.

use super::ByteSize;
use std::time::Duration;

/// Data plane listener.
pub const DATA_ADDR: &str = "0.0.0.0:8080";
/// Control plane listener (loopback only by default).
pub const CONTROL_ADDR: &str = "127.0.0.1:8081";
/// Where functions, compiled artifacts and the token live.
pub const DATA_DIR: &str = ".floe";
/// `Host: {name}.{domain}` routes to function `name`.
pub const DOMAIN: &str = "localhost";
/// Open connections per listener.
pub const MAX_CONNECTIONS: usize = 10_000;
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Request head size (431 past it).
pub const MAX_HEADER_BYTES: ByteSize = ByteSize::kib(64);
/// Request target length (414 past it).
pub const MAX_URI_BYTES: ByteSize = ByteSize::kib(8);

/// Memory per instance.
pub const MEMORY: ByteSize = ByteSize::mib(128);
/// Time per request.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Instances per function.
pub const MAX_INSTANCES: u32 = 64;
/// Idle instance lifetime.
pub const IDLE_TTL: Duration = Duration::from_secs(300);
/// Wait for an instance.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests waiting for an instance, per function.
pub const MAX_QUEUE: u32 = 1024;
/// Request body size.
pub const MAX_REQUEST_BODY: ByteSize = ByteSize::mib(16);
/// Response body size.
pub const MAX_RESPONSE_BODY: ByteSize = ByteSize::mib(64);
/// Time for `init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for `pre-freeze` and `pre-stop`.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Ceiling for any function's memory (also the pooling allocator's slot size).
pub const MAX_MEMORY: ByteSize = ByteSize::gib(1);
/// Ceiling for any function's timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// Instances of all functions together.
pub const MAX_INSTANCES_TOTAL: u32 = 1000;
/// Ceiling for request and response body limits.
pub const MAX_BODY: ByteSize = ByteSize::gib(1);
/// Component upload size.
pub const MAX_UPLOAD: ByteSize = ByteSize::mib(100);
/// Time to compile one component.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);
/// Components compiled at once.
pub const MAX_CONCURRENT_COMPILES: u32 = 2;
/// Versions kept per function.
pub const MAX_VERSIONS: u32 = 10;
/// Functions on one server.
pub const MAX_FUNCTIONS: u32 = 10_000;

/// Epoch ticker interval: timeouts are exact to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Core instances a component instance may use (pool sizing).
pub const CORE_INSTANCES_PER_INSTANCE: u32 = 32;
/// Linear memories a component instance may use (pool sizing).
pub const MEMORIES_PER_INSTANCE: u32 = 4;
/// Tables a component instance may use (pool sizing).
pub const TABLES_PER_INSTANCE: u32 = 16;
/// Elements per table.
pub const TABLE_ELEMENTS: u32 = 100_000;
/// Size of one instance's runtime state (vmctx) in the pool.
pub const INSTANCE_STATE_SIZE: ByteSize = ByteSize::mib(1);
/// Linear memory reset with memset, not madvise, when a slot is freed.
pub const MEMORY_KEEP_RESIDENT: ByteSize = ByteSize::mib(2);
/// Table memory reset with memset, not madvise, when a slot is freed.
pub const TABLE_KEEP_RESIDENT: ByteSize = ByteSize::kib(64);
/// Freed slots returned to the OS per batch.
pub const DECOMMIT_BATCH_SIZE: u32 = 1;

/// How often the autoscaler runs.
pub const SCALING_TICK: Duration = Duration::from_millis(100);
/// At most how often freed heap memory is handed back to the OS.
pub const RELEASE_MEMORY: Duration = Duration::from_secs(1);
