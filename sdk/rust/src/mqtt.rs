//! Publishing MQTT messages (feature `mqtt`), through floe's
//! `floe:function/mqtt` interface: store-and-forward.
//!
//! [`publish`] returns once the message is in the function's durable
//! outbox; floe sends it to the broker (the function's `publish` setting,
//! else the broker of its first MQTT trigger) as soon as the broker takes
//! it, in order per topic, across outages and restarts. A full outbox is an
//! error ([`PublishError::OutboxFull`]), never a silent drop.
//!
//! ```ignore
//! floe_sdk::mqtt::publish("alerts/s1", b"too hot", floe_sdk::mqtt::Qos::AtLeastOnce, false)?;
//! ```

#[allow(missing_docs, reason = "generated; the WIT documents the interface")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "floe:function/mqtt-imports",
        generate_all,
    });
}

use bindings::floe::function::mqtt as wit;

/// The quality of service asked of the broker.
pub use wit::Qos;

/// Why a message was not queued (nothing was stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The function has no broker to publish to.
    NotConfigured(String),
    /// A wildcard or empty topic, or a payload over the server's limit.
    Invalid(String),
    /// The outbox is full (the broker has been away): try later.
    OutboxFull(String),
    /// Storing the message failed.
    Failed(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotConfigured(m) => write!(f, "no broker to publish to: {m}"),
            Self::Invalid(m) => write!(f, "invalid message: {m}"),
            Self::OutboxFull(m) => write!(f, "outbox full: {m}"),
            Self::Failed(m) => write!(f, "publishing failed: {m}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Queues `payload` for `topic`; returns once it is on disk.
pub fn publish(topic: &str, payload: &[u8], qos: Qos, retain: bool) -> Result<(), PublishError> {
    wit::publish(topic, payload, qos, retain).map_err(|e| match e {
        wit::PublishError::NotConfigured(m) => PublishError::NotConfigured(m),
        wit::PublishError::Invalid(m) => PublishError::Invalid(m),
        wit::PublishError::OutboxFull(m) => PublishError::OutboxFull(m),
        wit::PublishError::Failed(m) => PublishError::Failed(m),
    })
}
