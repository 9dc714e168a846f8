//! Server configuration: serde types, their defaults, loading and validation.
//!
//! The default configuration is `config/floe.toml`, embedded in the binary; a
//! unit test keeps it equal to [`Config::default`]. [`Config::load`] reads it
//! (or a file given with `--config`), applies `FLOE_<SECTION>__<KEY>`
//! environment overrides ([`env`]) and validates the result. Unknown keys and
//! bad values stop startup with a message naming them. Nothing here does I/O
//! but reading the one file.

pub mod env;
mod function;
mod reserve;
mod units;

pub use function::{FunctionSettings, MAX_IDLE_TTL, MIN_MEMORY, Preinit, SettingsError};
pub use reserve::{Days, Ratio, Reserve, TimeOfDay, Utilization, Window};
pub use units::{ByteSize, HumanDuration, UnitError};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration, as shipped in `config/floe.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/floe.toml");

/// Default values, in one place.
pub mod defaults {
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
}

/// The whole server configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listeners, data directory, connection limits.
    pub server: ServerConfig,
    /// Default settings of every function.
    pub functions: FunctionSettings,
    /// Ceilings that function settings and uploads must stay under.
    pub limits: LimitsConfig,
    /// The wasmtime engine.
    pub engine: EngineConfig,
    /// The autoscaler.
    pub scaling: ScalingConfig,
    /// Async invocations.
    pub invocations: InvocationsConfig,
    /// GPU frame work (`floe:function/gpu`).
    pub gpu: GpuSettings,
}

/// `[gpu]`: the device behind `floe:function/gpu`, and what each function
/// may use of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuSettings {
    /// Open a device and serve the interface (a server built without the
    /// `gpu` feature never does).
    pub enabled: bool,
    /// `auto`, `vulkan`, `gl`, `metal` or `dx12`.
    pub backend: String,
    /// Use the first adapter whose name contains this; empty: the first
    /// GPU, else a software device.
    pub adapter: String,
    /// Bytes of frames in and out of one call.
    pub max_call_bytes: ByteSize,
    /// Device memory one call may hold (input, intermediate and output
    /// frames).
    pub max_device_bytes: ByteSize,
    /// GPU jobs one function may have queued or running at once; further
    /// calls wait.
    pub max_jobs_per_function: u32,
    /// Buffers kept on the device for reuse between calls.
    pub pool_bytes: ByteSize,
    /// Times in a row a lost device is recreated before calls answer
    /// `unavailable`.
    pub max_recoveries: u32,
}

impl Default for GpuSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: "auto".into(),
            adapter: String::new(),
            max_call_bytes: ByteSize::mib(64),
            max_device_bytes: ByteSize::mib(512),
            max_jobs_per_function: 2,
            pool_bytes: ByteSize::mib(256),
            max_recoveries: 3,
        }
    }
}

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

/// `[server]`: listeners, data directory, connection limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Data plane address: requests to functions.
    pub data_addr: SocketAddr,
    /// Control plane address: deploys, management, metrics.
    pub control_addr: SocketAddr,
    /// Directory holding functions, artifacts and the control-plane token.
    pub data_dir: PathBuf,
    /// `Host: {name}.{domain}` routes to function `name`; empty disables it.
    pub domain: String,
    /// Open connections per listener; more wait to be accepted.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before it exits.
    pub drain_timeout: HumanDuration,
    /// Largest request head (request line and headers); 431 past it.
    pub max_header_bytes: ByteSize,
    /// Longest request target (path and query); 414 past it.
    pub max_uri_bytes: ByteSize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_addr: parse_default_addr(defaults::DATA_ADDR),
            control_addr: parse_default_addr(defaults::CONTROL_ADDR),
            data_dir: PathBuf::from(defaults::DATA_DIR),
            domain: defaults::DOMAIN.to_owned(),
            max_connections: defaults::MAX_CONNECTIONS,
            drain_timeout: HumanDuration(defaults::DRAIN_TIMEOUT),
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_uri_bytes: defaults::MAX_URI_BYTES,
        }
    }
}

fn parse_default_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

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
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_memory: defaults::MAX_MEMORY,
            max_timeout: HumanDuration(defaults::MAX_TIMEOUT),
            max_instances_total: defaults::MAX_INSTANCES_TOTAL,
            max_body: defaults::MAX_BODY,
            max_upload: defaults::MAX_UPLOAD,
            compile_timeout: HumanDuration(defaults::COMPILE_TIMEOUT),
            max_concurrent_compiles: defaults::MAX_CONCURRENT_COMPILES,
            max_versions: defaults::MAX_VERSIONS,
            max_functions: defaults::MAX_FUNCTIONS,
        }
    }
}

/// How instance memory is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// wasmtime's pooling allocator: slots reserved up front, copy-on-write
    /// memory images, microsecond instantiation. Falls back to `on-demand`
    /// (with a warning) where the address space cannot be reserved.
    Pooling,
    /// Allocate each instance's memory with mmap when it is created.
    OnDemand,
}

/// `[engine]`: the wasmtime engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Interval of the epoch ticker that interrupts guest code; timeouts are
    /// exact to within one tick, and long-running guests yield once a tick.
    pub epoch_tick: HumanDuration,
    /// Instance allocation strategy.
    pub allocator: Allocator,
    /// Directory of wasmtime's compile cache (by content hash), shared across
    /// data directories; empty disables it. floe keeps each deployed
    /// function's compiled artifact in its data directory regardless.
    pub compile_cache: PathBuf,
    /// Pool sizing: core instances per component instance.
    pub core_instances_per_instance: u32,
    /// Pool sizing: linear memories per component instance.
    pub memories_per_instance: u32,
    /// Pool sizing: tables per component instance.
    pub tables_per_instance: u32,
    /// Pool sizing: elements per table.
    pub table_elements: u32,
    /// Pool sizing: runtime state of one core or component instance.
    pub instance_state_size: ByteSize,
    /// When an instance's memory slot is freed, this much of each linear
    /// memory is reset with `memset` and stays resident instead of being
    /// returned to the OS with `madvise`: fewer page faults and TLB
    /// shootdowns when instances come and go, more resident memory.
    pub memory_keep_resident: ByteSize,
    /// The same for tables.
    pub table_keep_resident: ByteSize,
    /// Freed slots are returned to the OS in batches of this many, which
    /// amortizes the cost of each `madvise` across threads (1: no batching).
    pub decommit_batch_size: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            epoch_tick: HumanDuration(defaults::EPOCH_TICK),
            allocator: Allocator::Pooling,
            compile_cache: PathBuf::new(),
            core_instances_per_instance: defaults::CORE_INSTANCES_PER_INSTANCE,
            memories_per_instance: defaults::MEMORIES_PER_INSTANCE,
            tables_per_instance: defaults::TABLES_PER_INSTANCE,
            table_elements: defaults::TABLE_ELEMENTS,
            instance_state_size: defaults::INSTANCE_STATE_SIZE,
            memory_keep_resident: defaults::MEMORY_KEEP_RESIDENT,
            table_keep_resident: defaults::TABLE_KEEP_RESIDENT,
            decommit_batch_size: defaults::DECOMMIT_BATCH_SIZE,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: {source}")]
    Syntax {
        /// The file (or "embedded default").
        origin: String,
        /// The parser's message, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key is unknown or its value has the wrong type or format.
    #[error("{origin}: `{key}`: {reason}")]
    Field {
        /// The file, and the environment variables that changed it.
        origin: String,
        /// The dotted key path.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment override does not fit the configuration's shape.
    #[error("{var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// Values parse but do not make sense together.
    #[error("{origin}: `{key}`: {reason}")]
    Invalid {
        /// Where the configuration came from.
        origin: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Loads the configuration: `file` (or the embedded default when `None`),
    /// then the `FLOE_*__*` overrides found in `vars`, then validation.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (origin, text) = match file {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            ),
            None => (
                "embedded config/floe.toml".to_owned(),
                DEFAULT_CONFIG_TOML.to_owned(),
            ),
        };
        Self::from_toml(&origin, &text, &env::overrides(vars))
    }

    /// Parses `text`, applies `overrides`, and validates.
    pub fn from_toml(
        origin: &str,
        text: &str,
        overrides: &[env::Override],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|source| ConfigError::Syntax {
                origin: origin.to_owned(),
                source: Box::new(source),
            })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let origin = if overrides.is_empty() {
            origin.to_owned()
        } else {
            let vars: Vec<&str> = overrides.iter().map(|o| o.var.as_str()).collect();
            format!("{origin} with {}", vars.join(", "))
        };
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Field {
                    origin: origin.clone(),
                    key: e.path().to_string(),
                    reason: e.inner().to_string(),
                }
            })?;
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                origin,
                key: key.to_owned(),
                reason,
            })?;
        Ok(config)
    }

    /// Checks that the values make sense together. [`Config::load`] does this;
    /// call it on a configuration built in code.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                origin: "configuration".to_owned(),
                key: key.to_owned(),
                reason,
            })
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.engine.epoch_tick.0 < Duration::from_millis(1) {
            return Err(("engine.epoch_tick", "must be at least 1ms".into()));
        }
        if self.limits.max_timeout.0 > Duration::from_secs(24 * 3600) {
            return Err(("limits.max_timeout", "must be at most 24h".into()));
        }
        if self.server.drain_timeout.0 > Duration::from_secs(3600) {
            return Err(("server.drain_timeout", "must be at most 1h".into()));
        }
        if self.engine.epoch_tick.0 > Duration::from_secs(1) {
            return Err(("engine.epoch_tick", "must be at most 1s".into()));
        }
        if !["auto", "vulkan", "gl", "metal", "dx12"].contains(&self.gpu.backend.as_str()) {
            return Err((
                "gpu.backend",
                "must be one of auto, vulkan, gl, metal, dx12".into(),
            ));
        }
        if self.gpu.max_jobs_per_function == 0 {
            return Err(("gpu.max_jobs_per_function", "must be at least 1".into()));
        }
        let inv = &self.invocations;
        if inv.workers == 0 || inv.workers > 1024 {
            return Err(("invocations.workers", "must be between 1 and 1024".into()));
        }
        if inv.max_queued == 0 || inv.max_attempts == 0 {
            return Err((
                "invocations.max_queued",
                "max_queued and max_attempts must be at least 1".into(),
            ));
        }
        for (key, d) in [
            ("invocations.retry_base", inv.retry_base.0),
            ("invocations.retry_max", inv.retry_max.0),
            ("invocations.max_age", inv.max_age.0),
            ("invocations.retention", inv.retention.0),
        ] {
            if d > Duration::from_secs(365 * 24 * 3600) {
                return Err((key, "must be at most a year".into()));
            }
        }
        let tick = self.scaling.tick.0;
        if tick < Duration::from_millis(10) || tick > Duration::from_secs(60) {
            return Err(("scaling.tick", "must be between 10ms and 60s".into()));
        }
        if self.engine.decommit_batch_size == 0 {
            return Err(("engine.decommit_batch_size", "must be at least 1".into()));
        }
        if self.limits.max_instances_total == 0 {
            return Err(("limits.max_instances_total", "must be at least 1".into()));
        }
        if self.limits.max_concurrent_compiles == 0 {
            return Err((
                "limits.max_concurrent_compiles",
                "must be at least 1".into(),
            ));
        }
        if self.limits.max_versions == 0 {
            return Err(("limits.max_versions", "must be at least 1".into()));
        }
        if self.server.max_connections == 0 {
            return Err(("server.max_connections", "must be at least 1".into()));
        }
        if self.server.max_header_bytes < ByteSize::kib(8) {
            return Err(("server.max_header_bytes", "must be at least 8KiB".into()));
        }
        if !self.server.domain.is_empty()
            && !self.server.domain.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        {
            return Err((
                "server.domain",
                format!("{:?} is not a domain name", self.server.domain),
            ));
        }
        self.functions
            .validate(&self.limits)
            .map_err(|e| ("functions", e.to_string()))
    }
}

fn apply_override(table: &mut toml::Table, o: &env::Override) -> Result<(), ConfigError> {
    let Some((last, parents)) = o.path.split_last() else {
        return Err(ConfigError::Env {
            var: o.var.clone(),
            reason: "empty key".into(),
        });
    };
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            var: o.var.clone(),
            reason: format!("`{p}` is a value, not a section"),
        })?;
    }
    cur.insert(last.clone(), o.value.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_file_matches_the_code_defaults() {
        let parsed = Config::from_toml("floe.toml", DEFAULT_CONFIG_TOML, &[]).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn every_file_in_config_dir_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load(Some(&path), []).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("t", "[functions]\nmemroy = \"1MiB\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("memroy"), "{msg}");

        let err = Config::from_toml("t", "[sever]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("sever"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_toml("t", "[functions]\nmemory = \"lots\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("functions.memory") && msg.contains("lots"),
            "{msg}"
        );
    }

    #[test]
    fn env_overrides_apply_and_are_blamed() {
        let o = env::overrides([
            ("FLOE_FUNCTIONS__MEMORY".to_owned(), "64MiB".to_owned()),
            (
                "FLOE_SERVER__DOMAIN".to_owned(),
                "fn.example.com".to_owned(),
            ),
        ]);
        let c = Config::from_toml("t", "", &o).unwrap();
        assert_eq!(c.functions.memory, ByteSize::mib(64));
        assert_eq!(c.server.domain, "fn.example.com");

        let o = env::overrides([("FLOE_FUNCTIONS__MEMROY".to_owned(), "64MiB".to_owned())]);
        let msg = Config::from_toml("t", "", &o).unwrap_err().to_string();
        assert!(
            msg.contains("FLOE_FUNCTIONS__MEMROY") && msg.contains("memroy"),
            "{msg}"
        );
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let err = Config::from_toml("t", "[functions]\nmemory = \"2GiB\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("max_memory"), "{err}");
    }
}
