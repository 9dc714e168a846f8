//! Loading: the file (or the embedded default), `FLOE_*__*` overrides,
//! validation, and the errors they give.

use super::{ByteSize, Config, DEFAULT_CONFIG_TOML, env};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        // What type each key takes, so that an override of a text key
        // stays text whatever it looks like (`12345`, `true`, a date).
        let shape = match overrides.is_empty() {
            true => toml::Table::new(),
            false => toml::Table::try_from(Config::default()).unwrap_or_default(),
        };
        for o in overrides {
            apply_override(&mut table, o, &shape)?;
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
        self.cluster.validate()?;
        self.events.validate()?;
        if self.cluster.enabled() && self.limits.max_versions > 100 {
            // Every change writes each kept version in one etcd transaction
            // (etcd allows 128 operations in one by default).
            return Err((
                "limits.max_versions",
                "must be at most 100 in cluster mode".into(),
            ));
        }
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
        for (key, value) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.idle_timeout", self.server.idle_timeout),
            (
                "server.http2_keep_alive_interval",
                self.server.http2_keep_alive_interval,
            ),
            (
                "server.http2_keep_alive_timeout",
                self.server.http2_keep_alive_timeout,
            ),
            (
                "server.tls_reload_interval",
                self.server.tls_reload_interval,
            ),
            ("outbound.connect_timeout", self.outbound.connect_timeout),
            (
                "outbound.first_byte_timeout",
                self.outbound.first_byte_timeout,
            ),
            (
                "outbound.between_bytes_timeout",
                self.outbound.between_bytes_timeout,
            ),
        ] {
            if value.0 < std::time::Duration::from_millis(1) {
                return Err((key, "must be at least 1ms".into()));
            }
        }
        if self.engine.max_resources < 64 {
            return Err(("engine.max_resources", "must be at least 64".into()));
        }
        if self.engine.max_kept_resources >= self.engine.max_resources {
            return Err((
                "engine.max_kept_resources",
                "must be less than engine.max_resources".into(),
            ));
        }
        for (key, value) in [
            ("engine.max_field_bytes", self.engine.max_field_bytes),
            (
                "engine.outgoing_body_chunk",
                self.engine.outgoing_body_chunk,
            ),
        ] {
            if value < ByteSize::kib(1) {
                return Err((key, "must be at least 1KiB".into()));
            }
        }
        if self.outbound.hop_limit == 0 {
            return Err(("outbound.hop_limit", "must be at least 1".into()));
        }
        let server = &self.server;
        for (cert_key, key_key, cert, key) in [
            (
                "server.tls_cert",
                "server.tls_key",
                &server.tls_cert,
                &server.tls_key,
            ),
            (
                "server.control_tls_cert",
                "server.control_tls_key",
                &server.control_tls_cert,
                &server.control_tls_key,
            ),
        ] {
            match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
                (false, true) => {
                    return Err((key_key, format!("must be set with {cert_key}")));
                }
                (true, false) => {
                    return Err((cert_key, format!("must be set with {key_key}")));
                }
                _ => {}
            }
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

fn apply_override(
    table: &mut toml::Table,
    o: &env::Override,
    shape: &toml::Table,
) -> Result<(), ConfigError> {
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
    let mut expected = Some(shape);
    for p in parents {
        expected = expected
            .and_then(|t| t.get(p))
            .and_then(toml::Value::as_table);
    }
    let takes_text = expected
        .and_then(|t| t.get(last))
        .is_some_and(toml::Value::is_str);
    let value = match &o.value {
        toml::Value::String(_) => o.value.clone(),
        _ if takes_text => toml::Value::String(o.raw.clone()),
        other => other.clone(),
    };
    cur.insert(last.clone(), value);
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
    fn an_override_of_a_text_key_stays_text() {
        let o = env::overrides([
            ("FLOE_CLUSTER__ETCD_PASSWORD".to_owned(), "12345".to_owned()),
            (
                "FLOE_CLUSTER__REGISTRY_PASSWORD".to_owned(),
                "true".to_owned(),
            ),
            ("FLOE_CLUSTER__NODE_ID".to_owned(), "2024-01-01".to_owned()),
            ("FLOE_LIMITS__MAX_FUNCTIONS".to_owned(), "12".to_owned()),
        ]);
        let c = Config::from_toml("t", "", &o).unwrap();
        assert_eq!(c.cluster.etcd_password, "12345");
        assert_eq!(c.cluster.registry_password, "true");
        assert_eq!(c.cluster.node_id, "2024-01-01");
        assert_eq!(c.limits.max_functions, 12);
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
    fn a_tls_certificate_needs_its_key() {
        let err = Config::from_toml("t", "[server]\ntls_cert = \"c.pem\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("server.tls_key"), "{err}");
        let err =
            Config::from_toml("t", "[server]\ncontrol_tls_key = \"k.pem\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("server.control_tls_cert"), "{err}");
        let c = Config::from_toml(
            "t",
            "[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
            &[],
        )
        .unwrap();
        let data = c.server.data_tls().unwrap();
        assert_eq!(c.server.control_tls(), Some(data));
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
