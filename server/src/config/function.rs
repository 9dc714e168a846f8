//! Per-function settings: what each function may use, with defaults from the
//! `[functions]` section and ceilings from `[limits]`.

use super::events::{BrokerSpec, EventsConfig, TriggerSpec, validate_triggers};
use super::outbound::AllowedHosts;
use super::reserve::Reserve;
use super::secrets::SealedSecret;
use super::units::{ByteSize, HumanDuration};
use super::{LimitsConfig, defaults};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The smallest memory limit a function may ask for: below this not even a
/// hello-world component instantiates.
pub const MIN_MEMORY: ByteSize = ByteSize::mib(1);

/// The longest `idle_ttl` a function may ask for.
pub const MAX_IDLE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Settings of one function. Given at deploy time (query parameters, or
/// `floe deploy --set key=value`) or later with `PATCH
/// /v1/functions/{name}/config`; unset keys take the server's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionSettings {
    /// Linear memory an instance may use, all memories together. Growing past
    /// it fails; a request that traps because of it answers 500 `memory_limit`.
    pub memory: ByteSize,
    /// Wall-clock time one request may take, guest code and host calls
    /// together. Past it the request answers 504 `timeout`.
    pub timeout: HumanDuration,
    /// Instances of this function alive at once (busy and idle).
    pub max_instances: u32,
    /// Instances kept warm at all times (the `fixed` reservation); 0 lets
    /// the function scale to zero.
    pub min_instances: u32,
    /// Requests one instance serves at once. Unset: 16 for a WASI 0.3 HTTP
    /// function, 1 for a WASI 0.2 one (which serves one request at a time,
    /// so any other value is refused for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_concurrency: Option<u32>,
    /// Reservation policies beyond `min_instances`: scheduled windows and a
    /// utilization target (see [`Reserve`]).
    pub reserve: Reserve,
    /// Requests one instance serves before it is retired; 0 means no limit.
    pub max_requests_per_instance: u64,
    /// How long an idle instance is kept before it is stopped.
    pub idle_ttl: HumanDuration,
    /// Reuse an instance for later requests (`true`), or give every request
    /// a fresh instance (`false`).
    ///
    /// Unset, instances are reused, unless a version turns out to answer
    /// only the first request of an instance (a component built with plain
    /// componentize-js, say): that version then gets a fresh instance per
    /// request, and says so. Set, it is what the operator asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse: Option<bool>,
    /// How long a request may wait for an instance when all are busy and
    /// `max_instances` is reached; then it answers 503 `overloaded`.
    pub queue_timeout: HumanDuration,
    /// Requests that may wait for an instance at once; more answer 503
    /// `overloaded` at once.
    pub max_queue: u32,
    /// Largest request body the function accepts (413 past it).
    pub max_request_body: ByteSize,
    /// Largest response body the function may send.
    pub max_response_body: ByteSize,
    /// How a function that exports `init` is initialized: `snapshot` runs it
    /// once at deploy and starts every instance from the snapshot;
    /// `instance` runs it in every instance before its first request.
    pub preinit: Preinit,
    /// Time `init` may take (at deploy, or per instance).
    pub init_timeout: HumanDuration,
    /// Time `pre-freeze` or `pre-stop` may take.
    pub hook_timeout: HumanDuration,
    /// Hosts the function may call over HTTP, in Spin's syntax
    /// (`https://api.example.com`, `http://*.internal:8080`,
    /// `*://192.168.1.10:*`). Unset, the server's `[outbound] default`
    /// applies; set, only these (empty: none). A pattern that names a host
    /// reaches it whatever its address (a LAN device, say); `*` as the host
    /// reaches public addresses only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_outbound_hosts: Option<AllowedHosts>,
    /// Whether clients of the data plane (who need no token) may invoke
    /// this event function asynchronously (`Prefer: respond-async`,
    /// `?mode=async`), which stores their payloads on this server. The
    /// control plane's `invoke` offers async regardless.
    #[serde(rename = "async")]
    pub async_invocations: bool,
    /// Variables the function reads with `wasi:config/store` (`var.KEY`;
    /// shown by the API).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Secrets it reads the same way, sealed with the server's key
    /// (`secret.KEY`, set in a request body only; the API shows their names
    /// only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SealedSecret>,
    /// What invokes the function besides HTTP and the API: cron schedules
    /// and MQTT subscriptions (`triggers=[{"kind": "cron", ...}]`, a JSON
    /// array, replacing the list). Event functions only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerSpec>,
    /// The broker the function publishes to (`floe:function/mqtt`, and
    /// `mqtt://topic` destinations); unset: the broker of its first MQTT
    /// trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<BrokerSpec>,
}

/// How `init` is run. See [`FunctionSettings::preinit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preinit {
    /// Once at deploy; instances start from a snapshot.
    Snapshot,
    /// Once per instance, before its first request.
    Instance,
}

impl std::str::FromStr for Preinit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "snapshot" => Ok(Self::Snapshot),
            "instance" => Ok(Self::Instance),
            other => Err(format!("{other:?} is not `snapshot` or `instance`")),
        }
    }
}

impl std::fmt::Display for Preinit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Snapshot => "snapshot",
            Self::Instance => "instance",
        })
    }
}

impl Default for FunctionSettings {
    fn default() -> Self {
        Self {
            memory: defaults::MEMORY,
            timeout: HumanDuration(defaults::TIMEOUT),
            max_instances: defaults::MAX_INSTANCES,
            min_instances: 0,
            instance_concurrency: None,
            reserve: Reserve::default(),
            max_requests_per_instance: 0,
            idle_ttl: HumanDuration(defaults::IDLE_TTL),
            reuse: None,
            queue_timeout: HumanDuration(defaults::QUEUE_TIMEOUT),
            max_queue: defaults::MAX_QUEUE,
            max_request_body: defaults::MAX_REQUEST_BODY,
            max_response_body: defaults::MAX_RESPONSE_BODY,
            preinit: Preinit::Snapshot,
            init_timeout: HumanDuration(defaults::INIT_TIMEOUT),
            hook_timeout: HumanDuration(defaults::HOOK_TIMEOUT),
            allowed_outbound_hosts: None,
            async_invocations: false,
            vars: BTreeMap::new(),
            secrets: BTreeMap::new(),
            triggers: Vec::new(),
            publish: None,
        }
    }
}

/// A setting that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// No setting has this name.
    #[error("unknown setting `{key}` (known: {known})")]
    Unknown {
        /// The name given.
        key: String,
        /// Every setting's name.
        known: &'static str,
    },
    /// The value does not parse for this setting.
    #[error("setting `{key}`: {reason}")]
    Invalid {
        /// The setting.
        key: String,
        /// Why the value was rejected.
        reason: String,
    },
}

const KNOWN: &str = "memory, timeout, max_instances, min_instances, instance_concurrency, reserve, \
                     max_requests_per_instance, idle_ttl, \
                     reuse, queue_timeout, max_queue, max_request_body, max_response_body, \
                     preinit, init_timeout, hook_timeout, allowed_outbound_hosts, async, \
                     var.KEY, secret.KEY, unset.KEY, triggers, publish";

/// Whether `key` may name a variable or a secret: 1 to 128 ASCII letters,
/// digits, `_`, `-` and `.`, starting with a letter or `_`.
pub fn valid_variable_name(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_variable_name(key: &str, name: &str) -> Result<(), SettingsError> {
    if valid_variable_name(name) {
        Ok(())
    } else {
        Err(SettingsError::Invalid {
            key: key.to_owned(),
            reason: "a variable or secret name is 1 to 128 ASCII letters, digits, `_`, `-` \
                     and `.`, starting with a letter or `_`"
                .into(),
        })
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| SettingsError::Invalid {
            key: key.to_owned(),
            reason: e.to_string(),
        })
}

impl FunctionSettings {
    /// Sets one setting from its textual form, as written in a query string
    /// or on the command line (`memory=64MiB`, `reuse=false`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingsError> {
        match key {
            "memory" => self.memory = parse(key, value)?,
            "timeout" => self.timeout = parse(key, value)?,
            "max_instances" => self.max_instances = parse(key, value)?,
            "min_instances" => self.min_instances = parse(key, value)?,
            "instance_concurrency" => {
                self.instance_concurrency = match value {
                    "" | "default" => None,
                    v => Some(parse(key, v)?),
                }
            }
            "reserve" => self.reserve = parse(key, value)?,
            "max_requests_per_instance" => self.max_requests_per_instance = parse(key, value)?,
            "idle_ttl" => self.idle_ttl = parse(key, value)?,
            "reuse" => {
                self.reuse = match value {
                    "" | "default" => None,
                    v => Some(parse(key, v)?),
                }
            }
            "queue_timeout" => self.queue_timeout = parse(key, value)?,
            "max_queue" => self.max_queue = parse(key, value)?,
            "max_request_body" => self.max_request_body = parse(key, value)?,
            "max_response_body" => self.max_response_body = parse(key, value)?,
            "preinit" => self.preinit = parse(key, value)?,
            "init_timeout" => self.init_timeout = parse(key, value)?,
            "hook_timeout" => self.hook_timeout = parse(key, value)?,
            "async" => self.async_invocations = parse(key, value)?,
            "triggers" => {
                self.triggers = match value.trim() {
                    "" | "null" | "[]" => Vec::new(),
                    text => serde_json::from_str(text).map_err(|e| SettingsError::Invalid {
                        key: key.to_owned(),
                        reason: format!("a JSON array of triggers: {e}"),
                    })?,
                }
            }
            "publish" => {
                self.publish =
                    match value.trim() {
                        "" | "null" => None,
                        text if !text.starts_with('{') => Some(BrokerSpec {
                            broker: text.to_owned(),
                            client_id: None,
                            username: None,
                            password_secret: None,
                        }),
                        text => Some(serde_json::from_str(text).map_err(|e| {
                            SettingsError::Invalid {
                                key: key.to_owned(),
                                reason: format!("a broker URL or a JSON object: {e}"),
                            }
                        })?),
                    }
            }
            "allowed_outbound_hosts" => {
                self.allowed_outbound_hosts = match value.trim() {
                    "null" | "default" => None,
                    text => {
                        Some(
                            AllowedHosts::parse(text).map_err(|e| SettingsError::Invalid {
                                key: key.to_owned(),
                                reason: e.to_string(),
                            })?,
                        )
                    }
                };
            }
            _ => {
                if let Some(name) = key.strip_prefix("var.") {
                    check_variable_name(key, name)?;
                    self.secrets.remove(name);
                    self.vars.insert(name.to_owned(), value.to_owned());
                } else if let Some(name) = key.strip_prefix("unset.") {
                    check_variable_name(key, name)?;
                    self.vars.remove(name);
                    self.secrets.remove(name);
                } else if key.starts_with("secret.") {
                    // Sealing needs the server's key: the registry seals it
                    // and calls `set_secret`.
                    return Err(SettingsError::Invalid {
                        key: key.to_owned(),
                        reason: "a secret is set through the registry, sealed".into(),
                    });
                } else {
                    return Err(SettingsError::Unknown {
                        key: key.to_owned(),
                        known: KNOWN,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets the secret `name`, already sealed (a variable of that name goes).
    pub fn set_secret(&mut self, name: &str, sealed: SealedSecret) -> Result<(), SettingsError> {
        check_variable_name(&format!("secret.{name}"), name)?;
        self.vars.remove(name);
        self.secrets.insert(name.to_owned(), sealed);
        Ok(())
    }

    /// Checks the settings against the server's ceilings.
    pub fn validate(&self, limits: &LimitsConfig) -> Result<(), SettingsError> {
        let invalid = |key: &str, reason: String| {
            Err(SettingsError::Invalid {
                key: key.to_owned(),
                reason,
            })
        };
        if self.memory < MIN_MEMORY || self.memory > limits.max_memory {
            return invalid(
                "memory",
                format!(
                    "{} is outside {MIN_MEMORY}..={} (limits.max_memory)",
                    self.memory, limits.max_memory
                ),
            );
        }
        if self.timeout.0 < Duration::from_millis(1) || self.timeout > limits.max_timeout {
            return invalid(
                "timeout",
                format!(
                    "{} is outside 1ms..={} (limits.max_timeout)",
                    self.timeout, limits.max_timeout
                ),
            );
        }
        if self.max_instances == 0 || self.max_instances > limits.max_instances_total {
            return invalid(
                "max_instances",
                format!(
                    "{} is outside 1..={} (limits.max_instances_total)",
                    self.max_instances, limits.max_instances_total
                ),
            );
        }
        if self.min_instances > self.max_instances {
            return invalid(
                "min_instances",
                format!(
                    "{} is more than max_instances ({})",
                    self.min_instances, self.max_instances
                ),
            );
        }
        if let Some(n) = self.instance_concurrency
            && !(1..=limits.max_instance_concurrency).contains(&n)
        {
            return invalid(
                "instance_concurrency",
                format!(
                    "{n} is outside 1..={} (limits.max_instance_concurrency)",
                    limits.max_instance_concurrency
                ),
            );
        }
        if let Err(reason) = self.reserve.validate(self.max_instances) {
            return invalid("reserve", reason);
        }
        for (key, value) in [
            ("init_timeout", self.init_timeout),
            ("hook_timeout", self.hook_timeout),
        ] {
            if value.0 < Duration::from_millis(1) || value > limits.max_timeout {
                return invalid(
                    key,
                    format!(
                        "{value} is outside 1ms..={} (limits.max_timeout)",
                        limits.max_timeout
                    ),
                );
            }
        }
        if self.queue_timeout > limits.max_timeout {
            return invalid(
                "queue_timeout",
                format!(
                    "{} is longer than {} (limits.max_timeout)",
                    self.queue_timeout, limits.max_timeout
                ),
            );
        }
        if self.idle_ttl.0 > MAX_IDLE_TTL {
            return invalid(
                "idle_ttl",
                format!(
                    "{} is longer than {}",
                    self.idle_ttl,
                    HumanDuration(MAX_IDLE_TTL)
                ),
            );
        }
        let entries = self.vars.len() + self.secrets.len();
        if entries > limits.max_variables as usize {
            return invalid(
                "var",
                format!(
                    "{entries} variables and secrets are more than {} (limits.max_variables)",
                    limits.max_variables
                ),
            );
        }
        if let Some((name, value)) = self
            .vars
            .iter()
            .find(|(_, v)| v.len() as u64 > limits.max_variable_bytes.0)
        {
            return invalid(
                &format!("var.{name}"),
                format!(
                    "{} bytes is more than {} (limits.max_variable_bytes)",
                    value.len(),
                    limits.max_variable_bytes
                ),
            );
        }
        if self.max_request_body > limits.max_body || self.max_response_body > limits.max_body {
            return invalid(
                "max_request_body",
                format!(
                    "body limits may not exceed {} (limits.max_body)",
                    limits.max_body
                ),
            );
        }
        Ok(())
    }

    /// Checks the triggers and the publish broker against `[events]`.
    pub fn validate_events(&self, events: &EventsConfig) -> Result<(), SettingsError> {
        validate_triggers(&self.triggers, self.publish.as_ref(), &self.secrets, events)
            .map_err(|(key, reason)| SettingsError::Invalid { key, reason })
    }

    /// The broker the function publishes to: `publish`, else its first MQTT
    /// trigger's.
    pub fn publish_broker(&self) -> Option<&BrokerSpec> {
        self.publish.as_ref().or_else(|| {
            self.triggers.iter().find_map(|t| match t {
                TriggerSpec::Mqtt(m) => Some(&m.broker),
                TriggerSpec::Cron(_) => None,
            })
        })
    }

    /// Brings settings stored under other limits within `limits`, and says
    /// what was changed. Used for functions loaded from the store after an
    /// operator lowered a ceiling.
    pub fn clamp_to(&mut self, limits: &LimitsConfig) -> Vec<String> {
        let mut changed = Vec::new();
        let mut clamp = |key: &str, from: String, to: String| {
            changed.push(format!(
                "{key} {from} exceeds the server's limit; using {to}"
            ));
        };
        if self.memory > limits.max_memory {
            clamp(
                "memory",
                self.memory.to_string(),
                limits.max_memory.to_string(),
            );
            self.memory = limits.max_memory;
        }
        for (key, value) in [
            ("timeout", &mut self.timeout),
            ("queue_timeout", &mut self.queue_timeout),
        ] {
            if *value > limits.max_timeout {
                clamp(key, value.to_string(), limits.max_timeout.to_string());
                *value = limits.max_timeout;
            }
        }
        if self.idle_ttl.0 > MAX_IDLE_TTL {
            clamp(
                "idle_ttl",
                self.idle_ttl.to_string(),
                HumanDuration(MAX_IDLE_TTL).to_string(),
            );
            self.idle_ttl = HumanDuration(MAX_IDLE_TTL);
        }
        let total = limits.max_instances_total;
        if self.max_instances == 0 || self.max_instances > total {
            let to = self.max_instances.clamp(1, total);
            clamp(
                "max_instances",
                self.max_instances.to_string(),
                to.to_string(),
            );
            self.max_instances = to;
        }
        if self.min_instances > self.max_instances {
            clamp(
                "min_instances",
                self.min_instances.to_string(),
                self.max_instances.to_string(),
            );
            self.min_instances = self.max_instances;
        }
        if let Err(reason) = self.reserve.validate(self.max_instances) {
            clamp("reserve", reason, "no reservation".to_owned());
            self.reserve = Reserve::default();
        }
        for (key, value) in [
            ("max_request_body", &mut self.max_request_body),
            ("max_response_body", &mut self.max_response_body),
        ] {
            if *value > limits.max_body {
                clamp(key, value.to_string(), limits.max_body.to_string());
                *value = limits.max_body;
            }
        }
        changed
    }

    /// `max_requests_per_instance`, with 0 read as "no limit".
    pub fn requests_per_instance(&self) -> Option<u64> {
        (self.max_requests_per_instance > 0).then_some(self.max_requests_per_instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_set_from_text_and_checked_against_limits() {
        let limits = LimitsConfig::default();
        let mut s = FunctionSettings::default();
        s.set("memory", "64MiB").unwrap();
        s.set("reuse", "false").unwrap();
        s.set("timeout", "2s").unwrap();
        assert_eq!(s.memory, ByteSize::mib(64));
        assert_eq!(s.reuse, Some(false));
        assert_eq!(s.timeout.0, Duration::from_secs(2));
        s.validate(&limits).unwrap();

        assert!(matches!(
            s.set("memroy", "1MiB"),
            Err(SettingsError::Unknown { .. })
        ));
        assert!(matches!(
            s.set("reuse", "maybe"),
            Err(SettingsError::Invalid { .. })
        ));
        s.set("memory", "64GiB").unwrap();
        assert!(s.validate(&limits).is_err());
        s.set("memory", "64MiB").unwrap();
        s.set("queue_timeout", "18446744073709551615s").unwrap();
        assert!(s.validate(&limits).is_err(), "durations are bounded");
    }

    #[test]
    fn stored_settings_are_brought_within_lowered_limits() {
        let mut s = FunctionSettings::default();
        s.set("memory", "512MiB").unwrap();
        s.set("max_instances", "500").unwrap();
        let limits = LimitsConfig {
            max_memory: ByteSize::mib(256),
            max_instances_total: 100,
            ..LimitsConfig::default()
        };
        let changed = s.clamp_to(&limits);
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert_eq!(s.memory, ByteSize::mib(256));
        assert_eq!(s.max_instances, 100);
        s.validate(&limits).unwrap();
        assert!(s.clamp_to(&limits).is_empty());
    }
}
