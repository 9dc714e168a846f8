//! An event function that says what started it, and publishes on demand:
//! the fixture of the trigger and outbox tests.
//!
//! - Every invocation answers (and prints, as `probe saw {json}`) a JSON
//!   document: the request id, the trigger (`null` over HTTP or the API,
//!   else `{"kind": "cron" | "mqtt", ...}`) and the payload as text.
//! - The payload `publish N TOPIC [QOS]` publishes `N` messages to `TOPIC`
//!   (payloads `0` to `N-1`, QoS 1 unless `QOS` is 0) and answers how many
//!   were queued, and the first error, if one stopped it.
//! - The payload `fail` fails the invocation (so it is retried);
//!   `sleep:N` answers after N milliseconds.

use floe_sdk::event::{Context, Error};
use floe_sdk::mqtt::{self, Qos};
use floe_sdk::trigger::Trigger;

floe_sdk::event_function!(handle);

fn trigger_json(trigger: Option<Trigger>) -> floe_sdk::serde_json::Value {
    use floe_sdk::serde_json::json;
    match trigger {
        None => json!(null),
        Some(Trigger::Cron(run)) => json!({
            "kind": "cron",
            "name": run.name,
            "schedule": run.schedule,
            "time_zone": run.time_zone,
            "scheduled_ms": run.scheduled_ms,
        }),
        Some(Trigger::Mqtt(message)) => json!({
            "kind": "mqtt",
            "name": message.name,
            "topic": message.topic,
            "qos": message.qos,
            "retain": message.retain,
            "user_properties": message.user_properties,
        }),
    }
}

fn publish_many(command: &str) -> floe_sdk::serde_json::Value {
    let mut words = command.split_whitespace();
    let n: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let topic = words.next().unwrap_or("probe/out");
    let qos = match words.next() {
        Some("0") => Qos::AtMostOnce,
        _ => Qos::AtLeastOnce,
    };
    let mut published = 0;
    let mut error = None;
    for i in 0..n {
        match mqtt::publish(topic, i.to_string().as_bytes(), qos, false) {
            Ok(()) => published += 1,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    floe_sdk::serde_json::json!({ "published": published, "error": error })
}

async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    let text = String::from_utf8_lossy(&payload).into_owned();
    if text == "fail" {
        return Err(Error::failed("asked to fail"));
    }
    if let Some(ms) = text
        .strip_prefix("sleep:")
        .and_then(|n| n.parse::<u64>().ok())
    {
        floe_sdk::time::sleep(std::time::Duration::from_millis(ms).into()).await;
    }
    if let Some(command) = text.strip_prefix("publish ") {
        let report = publish_many(command);
        return Ok(report.to_string().into_bytes());
    }
    let seen = floe_sdk::serde_json::json!({
        "request_id": context.request_id,
        "trigger": trigger_json(context.trigger()),
        "payload": text,
        "content_type": context.content_type,
    });
    println!("probe saw {seen}");
    Ok(seen.to_string().into_bytes())
}
