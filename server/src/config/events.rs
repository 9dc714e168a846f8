//! Event sources: the `[events]` section (limits of triggers and of the
//! MQTT outbox), and the per-function `triggers` and `publish` settings,
//! checked here so that a bad one is refused when it is configured.

use super::{ByteSize, HumanDuration, valid_variable_name};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `[events]`: triggers (cron, MQTT) and publishing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Triggers of one function.
    pub max_triggers: u32,
    /// Topic filters of one MQTT trigger.
    pub max_topics: u32,
    /// Largest MQTT message taken from a broker or published (a larger
    /// incoming one is refused by the client; a larger publish is an error
    /// to the guest).
    pub max_message_bytes: ByteSize,
    /// First wait before reconnecting to a broker; doubled after each
    /// failure up to `reconnect_max`.
    pub reconnect_min: HumanDuration,
    /// Longest wait between reconnects.
    pub reconnect_max: HumanDuration,
    /// MQTT keep-alive interval.
    pub keep_alive: HumanDuration,
    /// Messages an MQTT trigger takes before it acknowledged them: QoS 1
    /// messages being stored (all stored in one group commit), QoS 0
    /// messages being invoked. Past it the broker waits.
    pub receive_maximum: u16,
    /// Messages of one function's outbox not yet taken by the broker; a
    /// publish past it is refused (`outbox-full`), never dropped.
    pub outbox_max_messages: u32,
    /// Bytes of one function's outbox (payloads and topics).
    pub outbox_max_bytes: ByteSize,
    /// Messages of one outbox sent and not yet acknowledged at once.
    pub outbox_inflight: u32,
    /// Certificates (PEM) trusted for `mqtts://` brokers besides the web's
    /// root certificates: a gateway's own CA. Empty: none.
    pub broker_ca_file: std::path::PathBuf,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_triggers: 16,
            max_topics: 16,
            max_message_bytes: ByteSize::kib(256),
            reconnect_min: HumanDuration(Duration::from_millis(500)),
            reconnect_max: HumanDuration(Duration::from_secs(30)),
            keep_alive: HumanDuration(Duration::from_secs(30)),
            receive_maximum: 256,
            outbox_max_messages: 100_000,
            outbox_max_bytes: ByteSize::mib(256),
            outbox_inflight: 64,
            broker_ca_file: std::path::PathBuf::new(),
        }
    }
}

impl EventsConfig {
    /// Checks the section's values.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_triggers > 1024 {
            return Err(("events.max_triggers", "must be at most 1024".into()));
        }
        if !(1..=1024).contains(&self.max_topics) {
            return Err(("events.max_topics", "must be between 1 and 1024".into()));
        }
        if self.max_message_bytes.0 == 0 || self.max_message_bytes.0 > 256 << 20 {
            return Err((
                "events.max_message_bytes",
                "must be between 1 byte and 256MiB (MQTT's own limit)".into(),
            ));
        }
        if self.reconnect_min.0.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err((
                "events.reconnect_min",
                "must be more than zero and at most reconnect_max".into(),
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(65_535)).contains(&self.keep_alive.0) {
            return Err(("events.keep_alive", "must be between 1s and 65535s".into()));
        }
        if self.receive_maximum == 0 {
            return Err(("events.receive_maximum", "must be at least 1".into()));
        }
        if self.outbox_max_messages == 0 || self.outbox_max_bytes.0 == 0 {
            return Err((
                "events.outbox_max_messages",
                "the outbox limits must be more than zero".into(),
            ));
        }
        if !(1..=65_535).contains(&self.outbox_inflight) {
            return Err((
                "events.outbox_inflight",
                "must be between 1 and 65535".into(),
            ));
        }
        Ok(())
    }
}

/// One trigger of a function: what invokes it besides HTTP and the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerSpec {
    /// A cron schedule.
    Cron(CronSpec),
    /// An MQTT subscription.
    Mqtt(MqttSpec),
}

impl TriggerSpec {
    /// The trigger's name, unique within its function.
    pub fn name(&self) -> &str {
        match self {
            Self::Cron(c) => &c.name,
            Self::Mqtt(m) => &m.name,
        }
    }
}

/// A cron trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronSpec {
    /// Its name.
    pub name: String,
    /// A cron expression: five fields (minute to day of week), or six with
    /// seconds first; names (`MON`, `JAN`) and `@hourly`-style nicknames.
    pub schedule: String,
    /// The IANA time zone the schedule is read in.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// What happens to runs missed while the server was down.
    #[serde(default)]
    pub missed: Missed,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// Runs missed while the server was down (or the function absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// They are skipped; the next run is the next time due.
    #[default]
    Skip,
    /// One run makes up for all of them (with the last missed time), then
    /// the schedule goes on.
    Once,
}

/// An MQTT trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSpec {
    /// Its name.
    pub name: String,
    /// The broker.
    #[serde(flatten)]
    pub broker: BrokerSpec,
    /// Topic filters (`+` and `#` wildcards).
    pub topics: Vec<String>,
    /// The quality of service subscribed with: 0 or 1 (the default).
    #[serde(default = "qos_1")]
    pub qos: u8,
}

fn qos_1() -> u8 {
    1
}

/// How to reach an MQTT broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    /// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883, TLS with
    /// the web's root certificates). No password in it: see
    /// `password_secret`.
    pub broker: String,
    /// The MQTT client id; default `floe-{function}-{trigger}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The name of one of the function's secrets holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
}

/// A broker URL, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    /// The host (a name, or an IP address without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether to speak TLS.
    pub tls: bool,
    /// A user name given in the URL.
    pub username: Option<String>,
}

impl BrokerSpec {
    /// The broker's address, or why the URL is not one.
    pub fn address(&self) -> Result<BrokerAddress, String> {
        let url = url::Url::parse(&self.broker).map_err(|e| format!("{:?}: {e}", self.broker))?;
        let (tls, default_port) = match url.scheme() {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            other => {
                return Err(format!(
                    "{:?}: the scheme is {other:?}; use mqtt:// or mqtts://",
                    self.broker
                ));
            }
        };
        if url.password().is_some() {
            return Err(
                "a password in the broker URL is refused: keep it in one of the function's \
                 secrets and name it in `password_secret`"
                    .into(),
            );
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{:?}: a broker URL has no path, query or fragment",
                self.broker
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("{:?}: no host", self.broker)),
        };
        let username = (!url.username().is_empty()).then(|| url.username().to_owned());
        Ok(BrokerAddress {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            username,
        })
    }

    fn validate(&self, key: &str, secrets: &BTreeSet<&str>) -> Result<(), String> {
        self.address()?;
        if let Some(id) = &self.client_id
            && (id.is_empty() || id.len() > 256 || id.chars().any(char::is_control))
        {
            return Err(format!(
                "{key}: client_id is 1 to 256 characters, no control characters"
            ));
        }
        if let Some(user) = &self.username
            && (user.len() > 1024 || user.chars().any(char::is_control))
        {
            return Err(format!(
                "{key}: username is too long or has control characters"
            ));
        }
        if let Some(secret) = &self.password_secret
            && !secrets.contains(secret.as_str())
        {
            return Err(format!(
                "{key}: password_secret {secret:?} is not one of the function's secrets \
                 (set it first with `--secret {secret}=@FILE`)"
            ));
        }
        Ok(())
    }
}

/// Whether `topic` is a topic a message may be published to.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 65_535 {
        return Err("a topic is 1 to 65,535 bytes".into());
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(format!(
            "{topic:?}: a published topic has no wildcard (`+`, `#`) and no NUL"
        ));
    }
    Ok(())
}

/// Whether `filter` is a topic filter MQTT accepts: `+` alone in a level,
/// `#` alone in the last level.
pub fn check_topic_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() || filter.len() > 65_535 || filter.contains('\0') {
        return Err("a topic filter is 1 to 65,535 bytes, without NUL".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wild = level.contains(['+', '#']);
        if wild && *level != "+" && *level != "#" {
            return Err(format!(
                "{filter:?}: a wildcard (`+`, `#`) must be a whole level"
            ));
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(format!("{filter:?}: `#` must be the last level"));
        }
    }
    Ok(())
}

/// A parsed cron schedule.
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(schedule)
        .map_err(|e| format!("{schedule:?} is not a cron expression: {e}"))
}

/// A time zone by its IANA name.
pub fn parse_time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|e| format!("{name:?} is not a time zone: {e}"))
}

/// Checks a function's triggers and publish broker: names, schedules,
/// URLs, topics and the secrets they name. The message names the trigger.
pub(super) fn validate_triggers(
    triggers: &[TriggerSpec],
    publish: Option<&BrokerSpec>,
    secrets: &BTreeMap<String, super::SealedSecret>,
    limits: &EventsConfig,
) -> Result<(), (String, String)> {
    let secret_names: BTreeSet<&str> = secrets.keys().map(String::as_str).collect();
    if triggers.len() > limits.max_triggers as usize {
        return Err((
            "triggers".into(),
            format!(
                "{} triggers are more than {} (events.max_triggers)",
                triggers.len(),
                limits.max_triggers
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for trigger in triggers {
        let name = trigger.name();
        let key = format!("triggers.{name}");
        if !valid_variable_name(name) {
            return Err((
                "triggers".into(),
                format!(
                    "trigger name {name:?}: 1 to 128 ASCII letters, digits, `_`, `-` and `.`, \
                     starting with a letter or `_`"
                ),
            ));
        }
        if !names.insert(name) {
            return Err((key, "two triggers have this name".into()));
        }
        match trigger {
            TriggerSpec::Cron(c) => {
                parse_schedule(&c.schedule).map_err(|e| (key.clone(), e))?;
                parse_time_zone(&c.time_zone).map_err(|e| (key.clone(), e))?;
            }
            TriggerSpec::Mqtt(m) => {
                m.broker
                    .validate(&key, &secret_names)
                    .map_err(|e| (key.clone(), e))?;
                if m.topics.is_empty() || m.topics.len() > limits.max_topics as usize {
                    return Err((
                        key,
                        format!(
                            "an MQTT trigger has 1 to {} topic filters (events.max_topics)",
                            limits.max_topics
                        ),
                    ));
                }
                for topic in &m.topics {
                    check_topic_filter(topic).map_err(|e| (key.clone(), e))?;
                }
                if m.qos > 1 {
                    return Err((key, "qos is 0 or 1".into()));
                }
            }
        }
    }
    if let Some(publish) = publish {
        publish
            .validate("publish", &secret_names)
            .map_err(|e| ("publish".to_owned(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(url: &str) -> BrokerSpec {
        BrokerSpec {
            broker: url.into(),
            client_id: None,
            username: None,
            password_secret: None,
        }
    }

    #[test]
    fn broker_urls() {
        let a = broker("mqtt://127.0.0.1").address().unwrap();
        assert_eq!((a.host.as_str(), a.port, a.tls), ("127.0.0.1", 1883, false));
        let a = broker("mqtts://user@[::1]:9000").address().unwrap();
        assert_eq!((a.host.as_str(), a.port, a.tls), ("::1", 9000, true));
        assert_eq!(a.username.as_deref(), Some("user"));
        for bad in [
            "http://127.0.0.1",
            "mqtt://u:p@127.0.0.1",
            "mqtt://127.0.0.1/x",
            "not a url",
            "mqtt://",
        ] {
            assert!(broker(bad).address().is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_and_filters() {
        for ok in ["a", "a/b/c", "+", "#", "a/+/c", "a/#", "+/+/#"] {
            check_topic_filter(ok).unwrap();
        }
        for bad in ["", "a/b#", "a+/b", "#/a", "a/#/b"] {
            assert!(check_topic_filter(bad).is_err(), "{bad}");
        }
        check_topic("sensors/1/alert").unwrap();
        for bad in ["", "a/+", "a/#"] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_and_zones() {
        parse_schedule("* * * * * *").unwrap();
        parse_schedule("*/5 * * * *").unwrap();
        parse_schedule("@hourly").unwrap();
        assert!(parse_schedule("61 * * * *").is_err());
        assert!(parse_schedule("every minute").is_err());
        parse_time_zone("Europe/Berlin").unwrap();
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn triggers_are_checked_together() {
        let limits = EventsConfig::default();
        let cron = |name: &str| {
            TriggerSpec::Cron(CronSpec {
                name: name.into(),
                schedule: "* * * * * *".into(),
                time_zone: utc(),
                missed: Missed::Skip,
            })
        };
        let none = BTreeMap::new();
        validate_triggers(&[cron("a"), cron("b")], None, &none, &limits).unwrap();
        let (key, _) =
            validate_triggers(&[cron("a"), cron("a")], None, &none, &limits).unwrap_err();
        assert_eq!(key, "triggers.a");
        let mqtt = TriggerSpec::Mqtt(MqttSpec {
            name: "m".into(),
            broker: BrokerSpec {
                password_secret: Some("pw".into()),
                ..broker("mqtt://127.0.0.1:1")
            },
            topics: vec!["a/#".into()],
            qos: 1,
        });
        let (_, why) = validate_triggers(&[mqtt], None, &none, &limits).unwrap_err();
        assert!(why.contains("password_secret"), "{why}");
    }

    #[test]
    fn trigger_json() {
        let t: TriggerSpec = serde_json::from_str(
            r#"{"kind":"mqtt","name":"in","broker":"mqtt://127.0.0.1:1883","topics":["s/+"]}"#,
        )
        .unwrap();
        let TriggerSpec::Mqtt(m) = &t else { panic!() };
        assert_eq!(m.qos, 1);
        let t: TriggerSpec =
            serde_json::from_str(r#"{"kind":"cron","name":"c","schedule":"* * * * *"}"#).unwrap();
        assert_eq!(
            t,
            TriggerSpec::Cron(CronSpec {
                name: "c".into(),
                schedule: "* * * * *".into(),
                time_zone: "UTC".into(),
                missed: Missed::Skip,
            })
        );
        assert!(
            serde_json::from_str::<TriggerSpec>(
                r#"{"kind":"cron","name":"c","schedule":"* * * * *","bogus":1}"#
            )
            .is_err()
        );
    }
}
