//! Every environment variable floe reads, in one place.
//!
//! Configuration overrides are `FLOE_<SECTION>__<KEY>=value`: the double
//! underscore separates the path, and both parts are lower-cased, so
//! `FLOE_FUNCTIONS__MEMORY=256MiB` sets `[functions] memory`. The value is read
//! as a TOML value when it is one (`true`, `42`, `"text"`) and as a string
//! otherwise (`256MiB`). An override naming a key that does not exist stops
//! startup, like an unknown key in the file.
//!
//! Variables without a double underscore are not configuration:

/// Prefix of every variable floe reads.
pub const PREFIX: &str = "FLOE_";
/// Separates the section from the key in an override.
pub const PATH_SEPARATOR: &str = "__";
/// The control-plane URL the CLI talks to (otherwise read from the data
/// directory).
pub const URL: &str = "FLOE_URL";
/// The control-plane bearer token the CLI sends (otherwise read from the data
/// directory).
pub const TOKEN: &str = "FLOE_TOKEN";
/// A PEM file of certificates the CLI trusts for an https control plane
/// (beside the public roots and the certificate the server records in its
/// data directory).
pub const CA: &str = "FLOE_CA";
/// A configuration file to use instead of the embedded default.
pub const CONFIG: &str = "FLOE_CONFIG";
/// Log filter, in `tracing_subscriber::EnvFilter` syntax (default `info`).
pub const LOG: &str = "FLOE_LOG";
/// How log lines are written: `text` (timestamped), or `journald` (a syslog
/// priority prefix, no timestamp); by default `journald` when stderr is the
/// journal (systemd's `JOURNAL_STREAM`), else `text`.
pub const LOG_FORMAT: &str = "FLOE_LOG_FORMAT";

/// One configuration override taken from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The variable it came from, for error messages.
    pub var: String,
    /// The key path, e.g. `["functions", "memory"]`.
    pub path: Vec<String>,
    /// The value, as TOML.
    pub value: toml::Value,
    /// The value as written, for keys that take text (a password of
    /// digits stays text).
    pub raw: String,
}

/// Picks the configuration overrides out of `vars`.
pub fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(var, raw)| {
            let rest = var.strip_prefix(PREFIX)?;
            if !rest.contains(PATH_SEPARATOR) {
                return None;
            }
            let path = rest
                .split(PATH_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect();
            Some(Override {
                path,
                value: parse_value(&raw),
                raw,
                var,
            })
        })
        .collect();
    // The environment has no order; make the result deterministic.
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_double_underscore_variables_are_overrides() {
        let vars = [
            ("FLOE_FUNCTIONS__MEMORY", "256MiB"),
            ("FLOE_SERVER__MAX_CONNECTIONS", "12"),
            ("FLOE_POOL__REUSE", "false"),
            ("FLOE_TOKEN", "secret"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let o = overrides(vars);
        assert_eq!(o.len(), 3);
        assert_eq!(o[0].path, ["functions", "memory"]);
        assert_eq!(o[0].value, toml::Value::String("256MiB".into()));
        assert_eq!(o[1].value, toml::Value::Boolean(false));
        assert_eq!(o[2].value, toml::Value::Integer(12));
    }
}
