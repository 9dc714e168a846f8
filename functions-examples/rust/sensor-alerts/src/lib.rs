//! Sensor alerts on a gateway: readings arrive over MQTT, alerts go out over
//! MQTT, and a summary goes to an HTTP endpoint on a schedule.
//!
//! Deploy it with two triggers (see the README):
//! - an MQTT trigger on `sensors/+/temperature`: each message is a reading,
//!   its payload a number (`21.5`). The function keeps the last `window`
//!   readings of each sensor (state that lives in the reused instance) and,
//!   when their average crosses `threshold` upwards, publishes
//!   `{"sensor": ..., "average": ..., "threshold": ...}` to
//!   `alerts/{sensor}` (QoS 1, through the durable outbox). It publishes
//!   again only after the average went back under the threshold.
//! - a cron trigger: it POSTs `{"sensors": {id: {"readings": n, "average":
//!   a, "alerting": bool}}}` to `summary_url` with `Authorization: Bearer
//!   {token}`, the `token` being a secret.
//!
//! Variables: `threshold` (default 40), `window` (default 5), `summary_url`.
//! Secret: `token`. Keep `max_instances=1` so that one instance sees every
//! reading (the window is per instance).

use floe_sdk::event::{Context, Error};
use floe_sdk::http::{Body, Client, Request};
use floe_sdk::mqtt::{self, Qos};
use floe_sdk::serde_json::{self, json};
use floe_sdk::trigger::Trigger;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

floe_sdk::event_function!(handle);

#[derive(Default)]
struct Sensor {
    readings: VecDeque<f64>,
    alerting: bool,
}

impl Sensor {
    fn average(&self) -> f64 {
        if self.readings.is_empty() {
            return 0.0;
        }
        self.readings.iter().sum::<f64>() / self.readings.len() as f64
    }
}

thread_local! {
    static SENSORS: RefCell<BTreeMap<String, Sensor>> = const { RefCell::new(BTreeMap::new()) };
}

fn setting<T: std::str::FromStr>(key: &str, default: T) -> T {
    floe_sdk::config::get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `sensors/{id}/temperature` → `id`.
fn sensor_of(topic: &str) -> Option<&str> {
    let mut levels = topic.split('/');
    match (levels.next(), levels.next()) {
        (Some("sensors"), Some(id)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

fn reading(topic: &str, payload: &[u8]) -> Result<Vec<u8>, Error> {
    let sensor = sensor_of(topic)
        .ok_or_else(|| Error::invalid_input(format!("{topic}: not sensors/{{id}}/...")))?;
    let value: f64 = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::invalid_input("a reading is a number"))?;
    let threshold: f64 = setting("threshold", 40.0);
    let window: usize = setting("window", 5usize).max(1);
    let alert = SENSORS.with(|sensors| {
        let mut sensors = sensors.borrow_mut();
        let state = sensors.entry(sensor.to_owned()).or_default();
        state.readings.push_back(value);
        while state.readings.len() > window {
            state.readings.pop_front();
        }
        let average = state.average();
        let crossed = average > threshold && !state.alerting;
        state.alerting = average > threshold;
        crossed.then_some(average)
    });
    if let Some(average) = alert {
        let body = json!({ "sensor": sensor, "average": average, "threshold": threshold });
        mqtt::publish(
            &format!("alerts/{sensor}"),
            body.to_string().as_bytes(),
            Qos::AtLeastOnce,
            false,
        )
        .map_err(|e| Error::failed(e.to_string()))?;
        return Ok(format!("alert {sensor} {average}").into_bytes());
    }
    Ok(b"ok".to_vec())
}

async fn summary() -> Result<Vec<u8>, Error> {
    let url = floe_sdk::config::get("summary_url")
        .ok_or_else(|| Error::failed("the summary_url variable is not set"))?;
    let token = floe_sdk::config::get("token")
        .ok_or_else(|| Error::failed("the token secret is not set"))?;
    let sensors = SENSORS.with(|sensors| {
        sensors
            .borrow()
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    json!({
                        "readings": s.readings.len(),
                        "average": s.average(),
                        "alerting": s.alerting,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    });
    let body = json!({ "sensors": sensors }).to_string();
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .map_err(|e| Error::failed(e.to_string()))?;
    let response = Client::new()
        .send(request)
        .await
        .map_err(|e| Error::failed(format!("posting the summary: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::failed(format!(
            "the summary endpoint answered {}",
            response.status()
        )));
    }
    Ok(b"summary sent".to_vec())
}

async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    match context.trigger() {
        Some(Trigger::Mqtt(message)) => reading(&message.topic, &payload),
        Some(Trigger::Cron(_)) => summary().await,
        // Invoked by hand: `{"topic": "sensors/s1/temperature", "value": 41}`
        // is a reading; anything else sends the summary now.
        None => match serde_json::from_slice::<serde_json::Value>(&payload) {
            Ok(v) if v.get("topic").is_some() => {
                let topic = v["topic"].as_str().unwrap_or_default().to_owned();
                reading(&topic, v["value"].to_string().as_bytes())
            }
            _ => summary().await,
        },
    }
}
