//! What started an invocation (feature `trigger`): a cron schedule or an
//! MQTT message, through floe's `floe:function/trigger` interface.
//!
//! Triggers are declared per function (`floe config NAME --set
//! 'triggers=[...]'`) and invoke event functions; invocations that came
//! over HTTP or the API have no trigger.
//!
//! ```ignore
//! use floe_sdk::event::{Context, Error};
//! use floe_sdk::trigger::Trigger;
//!
//! async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
//!     match context.trigger() {
//!         Some(Trigger::Mqtt(message)) => { /* message.topic, message.qos, ... */ }
//!         Some(Trigger::Cron(run)) => { /* run.scheduled_ms */ }
//!         None => { /* HTTP or API */ }
//!     }
//!     Ok(payload)
//! }
//! ```

#[allow(missing_docs, reason = "generated; the WIT documents the interface")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "floe:function/trigger-imports",
        generate_all,
    });
}

use bindings::floe::function::trigger as wit;

/// A cron run: the trigger's name, schedule, time zone, and the time the
/// run was due (`scheduled_ms`, ms since the Unix epoch).
pub use wit::CronRun;
/// An MQTT message: the trigger's name, the topic, the QoS it came with,
/// the retain flag and the MQTT 5 user properties (the payload is the
/// event's payload).
pub use wit::MqttMessage;

/// What started an invocation.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// A cron schedule fired.
    Cron(CronRun),
    /// An MQTT message arrived.
    Mqtt(MqttMessage),
}

/// The trigger of the invocation `request_id` (the event context's), or
/// `None` when it was not started by one.
pub fn of(request_id: &str) -> Option<Trigger> {
    wit::get(request_id).map(|fired| match fired {
        wit::Fired::Cron(run) => Trigger::Cron(run),
        wit::Fired::Mqtt(message) => Trigger::Mqtt(message),
    })
}

impl crate::event::Context {
    /// The trigger that started this invocation, if one did.
    pub fn trigger(&self) -> Option<Trigger> {
        of(&self.request_id)
    }
}
