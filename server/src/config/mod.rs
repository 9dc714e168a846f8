//! Server configuration: serde types, their defaults, loading and validation.
//!
//! The default configuration is `config/floe.toml`, embedded in the binary; a
//! unit test keeps it equal to [`Config::default`]. [`Config::load`] reads it
//! (or a file given with `--config`), applies `FLOE_<SECTION>__<KEY>`
//! environment overrides ([`env`](mod@env)) and validates the result. Unknown
//! keys and bad values stop startup with a message naming them. Nothing here
//! does I/O but reading the one file.
//!
//! Each section has its file: `server`, `function` (`[functions]`, with its
//! `reserve` policies), `limits`, `engine`, `scaling`, `invocations`, `gpu`, `outbound`, `cluster`,
//! `secrets`, `events` (with the functions' `triggers` and `publish`).
//! [`defaults`] holds shared default values, `load` the loading and
//! validation, `units` sizes and durations.

mod cluster;
pub mod defaults;
mod engine;
pub mod env;
mod events;
mod function;
mod gpu;
mod invocations;
mod limits;
mod load;
mod outbound;
mod reserve;
mod scaling;
mod secrets;
mod server;
mod units;

pub use cluster::{ClusterConfig, RegistryLocation, valid_node_id};
pub use engine::{Allocator, EngineConfig};
pub use events::{
    BrokerAddress, BrokerSpec, CronSpec, EventsConfig, Missed, MqttSpec, TriggerSpec, check_topic,
    check_topic_filter, parse_schedule, parse_time_zone,
};
pub use function::{
    FunctionSettings, MAX_IDLE_TTL, MIN_MEMORY, Preinit, SettingsError, valid_variable_name,
};
pub use gpu::GpuSettings;
pub use invocations::InvocationsConfig;
pub use limits::LimitsConfig;
pub use load::ConfigError;
pub use outbound::{
    AllowedHosts, DefaultOutbound, HostMatch, HostPattern, OutboundConfig, PatternError,
    canonical_ip, normalize_host,
};
pub use reserve::{Days, Ratio, Reserve, TimeOfDay, Utilization, Window};
pub use scaling::ScalingConfig;
pub use secrets::{SealedSecret, SecretsConfig};
pub use server::ServerConfig;
pub use units::{ByteSize, HumanDuration, UnitError};

use serde::{Deserialize, Serialize};

/// The default configuration, as shipped in `config/floe.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/floe.toml");

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
    /// What functions may reach over HTTP.
    pub outbound: OutboundConfig,
    /// Cluster mode: etcd and an OCI registry (off by default).
    pub cluster: ClusterConfig,
    /// The key that seals functions' secrets.
    pub secrets: SecretsConfig,
    /// Event sources: triggers and the MQTT outbox.
    pub events: EventsConfig,
}
