//! The host side of `floe:function/trigger` (what started an invocation)
//! and `floe:function/mqtt` (publishing through the function's outbox).

use super::StoreData;
use crate::bindings::{mqtt as wit_mqtt, trigger as wit_trigger};
use crate::outbox::PublishError;
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

/// What fired an invocation: kept with a durable invocation, and handed to
/// the guest through `floe:function/trigger`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fired {
    /// A cron schedule.
    Cron {
        /// The trigger's name.
        name: String,
        /// Its schedule.
        schedule: String,
        /// Its time zone.
        time_zone: String,
        /// The time the run was due, ms since the Unix epoch.
        scheduled_ms: u64,
    },
    /// An MQTT message.
    Mqtt {
        /// The trigger's name.
        name: String,
        /// The message's topic.
        topic: String,
        /// The QoS it was delivered with.
        qos: u8,
        /// The broker's retain flag.
        retain: bool,
        /// Its MQTT 5 user properties.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        user_properties: Vec<(String, String)>,
    },
}

impl Fired {
    /// The trigger's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Cron { name, .. } | Self::Mqtt { name, .. } => name,
        }
    }

    fn to_wit(&self) -> wit_trigger::Fired {
        match self.clone() {
            Self::Cron {
                name,
                schedule,
                time_zone,
                scheduled_ms,
            } => wit_trigger::Fired::Cron(wit_trigger::CronRun {
                name,
                schedule,
                time_zone,
                scheduled_ms,
            }),
            Self::Mqtt {
                name,
                topic,
                qos,
                retain,
                user_properties,
            } => wit_trigger::Fired::Mqtt(wit_trigger::MqttMessage {
                name,
                topic,
                qos,
                retain,
                user_properties,
            }),
        }
    }
}

impl wit_trigger::Host for StoreData {
    fn get(&mut self, request_id: String) -> Option<wit_trigger::Fired> {
        self.fired.get(&request_id).map(|f| f.to_wit())
    }
}

impl wit_mqtt::Host for StoreData {
    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        qos: wit_mqtt::Qos,
        retain: bool,
    ) -> Result<(), wit_mqtt::PublishError> {
        let Some(outbox) = self.outbox.clone() else {
            return Err(wit_mqtt::PublishError::NotConfigured(
                "the function has no broker to publish to: set `publish` (a broker URL) or \
                 give it an MQTT trigger"
                    .into(),
            ));
        };
        let qos = match qos {
            wit_mqtt::Qos::AtMostOnce => 0,
            wit_mqtt::Qos::AtLeastOnce => 1,
        };
        outbox
            .publish(topic, payload.into(), qos, retain)
            .await
            .map_err(|e| match e {
                PublishError::Invalid(m) => wit_mqtt::PublishError::Invalid(m),
                PublishError::Full(m) => wit_mqtt::PublishError::OutboxFull(m),
                e @ PublishError::Store(_) => {
                    tracing::error!(error = %e, "an outbox write failed");
                    wit_mqtt::PublishError::Failed(e.to_string())
                }
            })
    }
}

/// The `HasData` of both interfaces: the instance's state itself.
struct EventsData;

impl HasData for EventsData {
    type Data<'a> = &'a mut StoreData;
}

/// Adds `floe:function/trigger` and `floe:function/mqtt` to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    wit_trigger::add_to_linker::<StoreData, EventsData>(linker, |state| state)?;
    wit_mqtt::add_to_linker::<StoreData, EventsData>(linker, |state| state)
}
