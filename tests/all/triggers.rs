//! Event sources against a real Mosquitto broker: MQTT triggers (QoS 0 and
//! 1, durable before the acknowledgement), publishing through the durable
//! outbox (across a broker outage, in order, bounded), cron triggers (on
//! time, never twice, `skip` and `once` after downtime), and triggers that
//! are refused or reported.

use crate::broker::Broker;
use crate::harness::{Collector, Server, eventually, get};
use anyhow::Result;
use bytes::Bytes;
use floe_cli::client::ClientError;
use floe_tests::fixtures::{HELLO, SENSOR_ALERTS, TRIGGER_PROBE};
use http::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

async fn metrics(server: &Server) -> Result<String> {
    Ok(get(&server.control_url("/metrics")).await?.text())
}

/// A control-plane request whose answer may not be JSON.
async fn control_text(
    server: &Server,
    method: http::Method,
    path: &str,
    body: &'static str,
) -> Result<crate::harness::Reply> {
    crate::harness::send(
        http::Request::builder()
            .method(method)
            .uri(server.control_url(path))
            .header("authorization", format!("Bearer {}", server.token))
            .body(http_body_util::Full::new(Bytes::from_static(
                body.as_bytes(),
            )))?,
    )
    .await
}

/// Invokes `function` over the API with `payload`; its JSON answer.
async fn invoke(server: &Server, function: &str, payload: &str) -> Result<Value> {
    let path = format!("/v1/functions/{function}/invoke");
    Ok(server
        .client()
        .send(Method::POST, &path, Bytes::from(payload.to_owned()))
        .await?
        .1)
}

/// What the function answered for the stored invocation `record`.
async fn result_of(server: &Server, record: &Value) -> Result<Value> {
    let id = record["id"].as_str().unwrap_or_default();
    api(server, &format!("/v1/invocations/{id}/result")).await
}

async fn api(server: &Server, path: &str) -> Result<Value> {
    Ok(server
        .client()
        .send(Method::GET, path, Bytes::new())
        .await?
        .1)
}

async fn configure(
    server: &Server,
    name: &str,
    settings: &[(&str, String)],
) -> Result<Value, ClientError> {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    server.client().configure(name, &settings).await
}

/// The invocations of `function` (newest first).
async fn invocations(server: &Server, function: &str) -> Result<Vec<Value>> {
    let listing = api(
        server,
        &format!("/v1/invocations?function={function}&limit=1000"),
    )
    .await?;
    Ok(listing["invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The state of `function`'s trigger `name` in its view.
pub(crate) async fn trigger_state(server: &Server, function: &str, name: &str) -> Result<Value> {
    let info = server.client().info(function).await?;
    Ok(info["triggers"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name).cloned())
        .unwrap_or(Value::Null))
}

pub(crate) async fn wait_for_state(
    server: &Server,
    function: &str,
    name: &str,
    state: &str,
) -> Result<()> {
    eventually(WITHIN, &format!("trigger {name} to be {state}"), || async {
        Ok(trigger_state(server, function, name).await?["state"] == state)
    })
    .await
}

/// What the probe printed for each invocation it saw, in order.
fn seen(server: &Server) -> Vec<Value> {
    server
        .log()
        .lines()
        .filter_map(|l| l.split_once("probe saw ").map(|(_, json)| json.to_owned()))
        .filter_map(|json| {
            // The log line may quote it; take the JSON object.
            let start = json.find('{')?;
            let end = json.rfind('}')?;
            serde_json::from_str(&json[start..=end].replace("\\\"", "\"")).ok()
        })
        .collect()
}

fn mqtt_trigger(broker: &Broker, name: &str, topics: &[&str], qos: u8) -> Value {
    json!({
        "kind": "mqtt",
        "name": name,
        "broker": broker.url(),
        "topics": topics,
        "qos": qos,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_messages_invoke_the_function_once_each_with_their_trigger() -> Result<()> {
    let broker = Broker::start().await?;
    let server = Server::start()?;
    let triggers = json!([
        mqtt_trigger(&broker, "readings", &["sensors/+/temp"], 1),
        mqtt_trigger(&broker, "pings", &["pings/#"], 0),
    ]);
    server
        .deploy(
            "probe",
            TRIGGER_PROBE,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    wait_for_state(&server, "probe", "readings", "connected").await?;
    wait_for_state(&server, "probe", "pings", "connected").await?;

    // QoS 1: a durable invocation, with the trigger kept beside it.
    broker.publish(
        "sensors/s1/temp",
        "21.5",
        1,
        &[("unit", "C"), ("site", "north")],
    )?;
    eventually(
        WITHIN,
        "the QoS 1 message's invocation to succeed",
        || async {
            let list = invocations(&server, "probe").await?;
            Ok(list.len() == 1 && list[0]["status"] == "succeeded")
        },
    )
    .await?;
    let record = invocations(&server, "probe").await?.remove(0);
    assert_eq!(record["fired"]["kind"], "mqtt", "{record}");
    assert_eq!(record["fired"]["topic"], "sensors/s1/temp", "{record}");
    let id = record["id"].as_str().unwrap_or_default().to_owned();
    let result = api(&server, &format!("/v1/invocations/{id}/result")).await?;
    assert_eq!(result["payload"], "21.5", "{result}");
    assert_eq!(result["request_id"], id.as_str(), "{result}");
    let trigger = &result["trigger"];
    assert_eq!(trigger["kind"], "mqtt", "{result}");
    assert_eq!(trigger["name"], "readings", "{result}");
    assert_eq!(trigger["topic"], "sensors/s1/temp", "{result}");
    assert_eq!(trigger["qos"], 1, "{result}");
    assert_eq!(trigger["retain"], false, "{result}");
    assert_eq!(
        trigger["user_properties"],
        json!([["unit", "C"], ["site", "north"]]),
        "{result}"
    );

    // QoS 0: invoked at once, no durable record.
    broker.publish("pings/a/b", "ping", 0, &[])?;
    eventually(WITHIN, "the QoS 0 message to be invoked", || async {
        Ok(seen(&server).iter().any(|s| s["payload"] == "ping"))
    })
    .await?;
    let ping = seen(&server)
        .into_iter()
        .find(|s| s["payload"] == "ping")
        .unwrap_or_default();
    assert_eq!(ping["trigger"]["name"], "pings", "{ping}");
    assert_eq!(ping["trigger"]["qos"], 0, "{ping}");
    assert_eq!(ping["trigger"]["topic"], "pings/a/b", "{ping}");
    assert_eq!(
        invocations(&server, "probe").await?.len(),
        1,
        "QoS 0 is not stored"
    );

    // Once each: nothing more arrives, and the view counts both.
    let view = trigger_state(&server, "probe", "readings").await?;
    assert_eq!(view["fired"], 1, "{view}");
    let view = trigger_state(&server, "probe", "pings").await?;
    assert_eq!(view["fired"], 1, "{view}");
    assert_eq!(
        seen(&server).len(),
        2,
        "each message ran once: {:?}",
        seen(&server)
    );
    // An invocation over the API has no trigger.
    let direct = invoke(&server, "probe", "hi").await?;
    assert_eq!(direct["trigger"], Value::Null, "{direct}");

    let metrics = metrics(&server).await?;
    for series in [
        "floe_trigger_state{function=\"probe\",trigger=\"readings\",kind=\"mqtt\",state=\"connected\"} 1",
        "floe_trigger_fired_total{function=\"probe\",trigger=\"pings\"} 1",
        "floe_trigger_messages_total{function=\"probe\",trigger=\"readings\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_mqtt_message_runs_after_a_sigkill() -> Result<()> {
    let broker = Broker::start().await?;
    let mut server = Server::start()?;
    let triggers = json!([mqtt_trigger(&broker, "in", &["jobs"], 1)]);
    server
        .deploy(
            "probe",
            TRIGGER_PROBE,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    wait_for_state(&server, "probe", "in", "connected").await?;
    // The message is acknowledged once its invocation is on disk; the
    // function is slow, so the server dies while it runs.
    configure(&server, "probe", &[("timeout", "20s".into())]).await?;
    wait_for_state(&server, "probe", "in", "connected").await?;
    broker.publish("jobs", "sleep:3000", 1, &[])?;
    eventually(WITHIN, "the invocation to be running", || async {
        let list = invocations(&server, "probe").await?;
        Ok(list.iter().any(|r| r["status"] == "running"))
    })
    .await?;
    server.kill();
    server.restart()?;
    eventually(
        WITHIN,
        "the message's invocation to succeed after the restart",
        || async {
            let list = invocations(&server, "probe").await?;
            Ok(list.iter().any(|r| r["status"] == "succeeded"))
        },
    )
    .await?;
    // At least once: the stored invocation ran again after the restart. Had
    // the acknowledgement not reached the broker before the kill, the broker
    // sends the message again and it is a second invocation (never a lost
    // one).
    wait_for_state(&server, "probe", "in", "connected").await?;
    let list = invocations(&server, "probe").await?;
    assert!((1..=2).contains(&list.len()), "{list:?}");
    assert!(
        list.iter().all(|r| r["fired"]["topic"] == "jobs"),
        "{list:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn published_messages_wait_out_a_broker_outage_and_arrive_in_order() -> Result<()> {
    let mut broker = Broker::start().await?;
    let server = Server::start()?;
    server
        .deploy("probe", TRIGGER_PROBE, &[("publish", &broker.url())])
        .await?;
    // A subscriber whose session outlives the outage.
    let subscriber = broker.subscribe("out/#", Some("watcher")).await?;
    eventually(WITHIN, "the outbox to connect", || async {
        let info = server.client().info("probe").await?;
        Ok(info["outbox"]["link"]["state"] == "connected")
    })
    .await?;
    broker.stop();
    let report = invoke(&server, "probe", "publish 1000 out/a").await?;
    assert_eq!(report["published"], 1000, "{report}");
    assert_eq!(report["error"], Value::Null, "{report}");
    let report = invoke(&server, "probe", "publish 10 out/b").await?;
    assert_eq!(report["published"], 10, "{report}");
    let info = server.client().info("probe").await?;
    assert_eq!(info["outbox"]["depth"], 1010, "{info}");
    assert_ne!(info["outbox"]["link"]["state"], "connected", "{info}");
    let metrics = metrics(&server).await?;
    assert!(
        metrics.contains("floe_outbox_depth{function=\"probe\"} 1010"),
        "{metrics}"
    );

    broker.restart().await?;
    eventually(
        Duration::from_secs(90),
        "all 1010 messages to arrive",
        || async { Ok(subscriber.messages().len() >= 1010) },
    )
    .await?;
    let mut by_topic: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (topic, payload) in subscriber.messages() {
        by_topic.entry(topic).or_default().push(payload.parse()?);
    }
    // In order per topic; a message sent again after a lost connection may
    // repeat, but never out of order and never missing.
    for (topic, n) in [("out/a", 1000u64), ("out/b", 10)] {
        let got = &by_topic[topic];
        let mut deduped = got.clone();
        deduped.dedup();
        assert_eq!(deduped, (0..n).collect::<Vec<_>>(), "{topic}: {got:?}");
    }
    eventually(WITHIN, "the outbox to be empty", || async {
        let info = server.client().info("probe").await?;
        Ok(info["outbox"]["depth"] == 0 && info["outbox"]["link"]["state"] == "connected")
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_outbox_is_an_error_to_the_function_and_drops_nothing() -> Result<()> {
    let mut broker = Broker::start().await?;
    let server = Server::builder()
        .env("FLOE_EVENTS__OUTBOX_MAX_MESSAGES", "100")
        .start()?;
    server
        .deploy("probe", TRIGGER_PROBE, &[("publish", &broker.url())])
        .await?;
    broker.stop();
    let report = invoke(&server, "probe", "publish 150 full/t").await?;
    assert_eq!(report["published"], 100, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("outbox full"), "{report}");
    assert!(error.contains("outbox_max_messages"), "{report}");
    let info = server.client().info("probe").await?;
    assert_eq!(info["outbox"]["refused_full"], 1, "{info}");
    // The 100 it took all go out once the broker is back.
    broker.restart().await?;
    eventually(Duration::from_secs(60), "the outbox to drain", || async {
        let info = server.client().info("probe").await?;
        Ok(info["outbox"]["depth"] == 0)
    })
    .await?;
    let info = server.client().info("probe").await?;
    assert_eq!(info["outbox"]["sent"], 100, "{info}");
    Ok(())
}

/// The scheduled times of `function`'s cron runs of `trigger`, oldest
/// first.
async fn cron_runs(server: &Server, function: &str, trigger: &str) -> Result<Vec<u64>> {
    let mut runs: Vec<u64> = invocations(server, function)
        .await?
        .iter()
        .filter(|r| r["fired"]["kind"] == "cron" && r["fired"]["name"] == trigger)
        .filter_map(|r| r["fired"]["scheduled_ms"].as_u64())
        .collect();
    runs.sort_unstable();
    Ok(runs)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn cron_fires_on_time_never_twice_and_skips_or_catches_up_after_downtime() -> Result<()> {
    let mut server = Server::start()?;
    let triggers = json!([
        {"kind": "cron", "name": "skip", "schedule": "* * * * * *"},
        {"kind": "cron", "name": "once", "schedule": "* * * * * *", "missed": "once",
         "time_zone": "Europe/Berlin"},
    ]);
    server
        .deploy(
            "probe",
            TRIGGER_PROBE,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    eventually(WITHIN, "three runs of each schedule", || async {
        Ok(cron_runs(&server, "probe", "skip").await?.len() >= 3
            && cron_runs(&server, "probe", "once").await?.len() >= 3)
    })
    .await?;
    for trigger in ["skip", "once"] {
        let runs = cron_runs(&server, "probe", trigger).await?;
        // Whole seconds, one second apart, each once.
        for pair in runs.windows(2) {
            assert_eq!(pair[1] - pair[0], 1000, "{trigger}: {runs:?}");
        }
        assert!(runs.iter().all(|t| t % 1000 == 0), "{runs:?}");
    }
    let list = invocations(&server, "probe").await?;
    let done = list
        .iter()
        .find(|r| r["status"] == "succeeded")
        .and_then(|r| r["id"].as_str())
        .unwrap_or_default();
    let result = api(&server, &format!("/v1/invocations/{done}/result")).await?;
    assert_eq!(result["trigger"]["kind"], "cron", "{result}");
    assert_eq!(result["content_type"], "application/json", "{result}");
    let once_view = trigger_state(&server, "probe", "once").await?;
    assert_eq!(once_view["state"], "scheduled", "{once_view}");
    let metrics = metrics(&server).await?;
    assert!(
        metrics.contains("floe_cron_lateness_seconds_count"),
        "{metrics}"
    );

    // Down for more than two scheduled times.
    server.kill();
    let down_at = now_ms();
    eventually(
        WITHIN,
        "three seconds to pass while the server is down",
        || async { Ok(now_ms() >= down_at + 3000) },
    )
    .await?;
    server.restart()?;
    eventually(WITHIN, "both schedules to run again", || async {
        let fresh = |runs: Vec<u64>| runs.iter().any(|t| *t > down_at + 3000);
        Ok(fresh(cron_runs(&server, "probe", "skip").await?)
            && fresh(cron_runs(&server, "probe", "once").await?))
    })
    .await?;
    let skip = cron_runs(&server, "probe", "skip").await?;
    let once = cron_runs(&server, "probe", "once").await?;
    // Times surely missed: from the kill to two seconds after it (the server
    // was down for three). Only the restarted server can have fired them.
    let missed = |runs: &[u64]| {
        runs.iter()
            .filter(|t| **t > down_at && **t <= down_at + 2000)
            .count()
    };
    assert_eq!(
        missed(&skip),
        0,
        "skip ran none of the missed: {skip:?} (down at {down_at})"
    );
    assert!(missed(&once) <= 1, "{once:?}");
    let skip_view = trigger_state(&server, "probe", "skip").await?;
    assert_eq!(
        (
            skip_view["skipped"].as_u64(),
            skip_view["caught_up"].as_u64()
        ),
        (Some(1), Some(0)),
        "{skip_view}"
    );
    let once_view = trigger_state(&server, "probe", "once").await?;
    assert_eq!(
        (
            once_view["skipped"].as_u64(),
            once_view["caught_up"].as_u64()
        ),
        (Some(0), Some(1)),
        "{once_view}"
    );
    // The run made up for the missed ones carries the last missed time: a
    // run between the last one before the kill and the first regular one
    // after the restart.
    assert!(
        once.iter().any(|t| *t > down_at),
        "once ran for the missed times: {once:?} (down at {down_at})"
    );
    for runs in [&skip, &once] {
        let mut unique = runs.clone();
        unique.dedup();
        assert_eq!(&unique, runs, "never twice for one time");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_triggers_are_refused_or_reported_and_break_nothing() -> Result<()> {
    let server = Server::start()?;
    server.deploy("probe", TRIGGER_PROBE, &[]).await?;
    server.deploy("web", HELLO, &[]).await?;
    let refused = [
        json!([{"kind": "cron", "name": "c", "schedule": "every minute"}]),
        json!([{"kind": "cron", "name": "c", "schedule": "61 * * * *"}]),
        json!([{"kind": "cron", "name": "c", "schedule": "* * * * *", "time_zone": "Mars/Base"}]),
        json!([{"kind": "mqtt", "name": "m", "broker": "http://127.0.0.1:1", "topics": ["a"]}]),
        json!([{"kind": "mqtt", "name": "m", "broker": "mqtt://u:pw@127.0.0.1:1", "topics": ["a"]}]),
        json!([{"kind": "mqtt", "name": "m", "broker": "mqtt://127.0.0.1:1", "topics": ["a/#/b"]}]),
        json!([{"kind": "mqtt", "name": "m", "broker": "mqtt://127.0.0.1:1", "topics": []}]),
        json!([{"kind": "mqtt", "name": "m", "broker": "mqtt://127.0.0.1:1", "topics": ["a"], "qos": 2}]),
        json!([{"kind": "mqtt", "name": "m", "broker": "mqtt://127.0.0.1:1", "topics": ["a"],
                "password_secret": "nope"}]),
        json!([{"kind": "cron", "name": "c", "schedule": "* * * * *"},
               {"kind": "cron", "name": "c", "schedule": "* * * * *"}]),
        json!([{"kind": "cron", "name": "bad name!", "schedule": "* * * * *"}]),
        json!([{"kind": "webhook", "name": "w"}]),
        json!({"kind": "cron"}),
    ];
    for triggers in &refused {
        let e = configure(&server, "probe", &[("triggers", triggers.to_string())])
            .await
            .expect_err(&format!("{triggers} should be refused"));
        assert!(
            matches!(&e, ClientError::Api { status, .. } if *status == 400),
            "{triggers}: {e}"
        );
    }
    // An HTTP function takes no triggers.
    let e = configure(
        &server,
        "web",
        &[(
            "triggers",
            json!([{"kind": "cron", "name": "c", "schedule": "* * * * *"}]).to_string(),
        )],
    )
    .await
    .expect_err("an HTTP function takes no triggers");
    assert!(e.to_string().contains("floe:function/event"), "{e}");
    // Nothing changed.
    let info = server.client().info("probe").await?;
    assert_eq!(info["settings"]["triggers"], Value::Null, "{info}");

    // A broker nobody answers at: accepted, and reported in the view.
    let dead_port = crate::services::free_port()?;
    let triggers = json!([{"kind": "mqtt", "name": "m", "broker": format!("mqtt://127.0.0.1:{dead_port}"),
                          "topics": ["a"]}]);
    configure(&server, "probe", &[("triggers", triggers.to_string())]).await?;
    eventually(
        WITHIN,
        "the trigger to report its connection error",
        || async {
            let t = trigger_state(&server, "probe", "m").await?;
            Ok(t["state"] == "connecting" && t["error"].as_str().is_some_and(|e| !e.is_empty()))
        },
    )
    .await?;
    // The server still serves.
    let r = server.get("/web").await?;
    assert_eq!(r.status, 200);
    // Removing the triggers stops it.
    configure(&server, "probe", &[("triggers", "[]".into())]).await?;
    eventually(WITHIN, "the trigger to be gone", || async {
        Ok(trigger_state(&server, "probe", "m").await?.is_null())
    })
    .await?;
    Ok(())
}

/// The `sensor-alerts` example end to end: readings over MQTT, an alert
/// published when the rolling average crosses the threshold (a variable),
/// and a summary posted on a schedule with a secret token.
#[tokio::test(flavor = "multi_thread")]
async fn the_sensor_alerts_example_alerts_over_mqtt_and_posts_summaries() -> Result<()> {
    check_sensor_alerts(SENSOR_ALERTS).await
}

/// The checks every language's `sensor-alerts` example passes: `component`
/// is its built `.wasm`.
pub(crate) async fn check_sensor_alerts(component: &str) -> Result<()> {
    const TOKEN: &str = "tok-PLAINTEXT-8812";
    let broker = Broker::start().await?;
    let collector = Collector::start().await?;
    let server = Server::start()?;
    let triggers = json!([
        mqtt_trigger(&broker, "readings", &["sensors/+/temperature"], 1),
        {"kind": "cron", "name": "summary", "schedule": "*/2 * * * * *"},
    ]);
    server
        .deploy("alerts", component, &[("max_instances", "1")])
        .await?;
    configure(
        &server,
        "alerts",
        &[
            ("var.threshold", "30".into()),
            ("var.window", "3".into()),
            ("var.summary_url", collector.url.clone()),
            ("secret.token", TOKEN.into()),
            ("allowed_outbound_hosts", collector.allow()),
            ("triggers", triggers.to_string()),
        ],
    )
    .await?;
    wait_for_state(&server, "alerts", "readings", "connected").await?;
    let alerts = broker.subscribe("alerts/#", None).await?;
    // s1 averages 20, 30, 40 → 30 (not over), then 50 → 40: one alert.
    // s2 stays low. QoS 1 messages become async invocations, which several
    // workers may run at once: each reading goes after the one before it
    // was handled, so that the window sees them in order.
    let readings = [
        ("s1", "20"),
        ("s2", "10"),
        ("s1", "30"),
        ("s1", "40"),
        ("s1", "50"),
        ("s2", "12"),
        ("s1", "60"),
    ];
    for (n, (sensor, value)) in readings.iter().enumerate() {
        broker.publish(&format!("sensors/{sensor}/temperature"), value, 1, &[])?;
        eventually(WITHIN, "the reading to be handled", || async {
            let list = invocations(&server, "alerts").await?;
            Ok(list
                .iter()
                .filter(|r| r["fired"]["kind"] == "mqtt" && r["status"] == "succeeded")
                .count()
                == n + 1)
        })
        .await?;
    }
    eventually(WITHIN, "the alert for s1", || async {
        Ok(!alerts.messages().is_empty())
    })
    .await?;
    let messages = alerts.messages();
    assert_eq!(
        messages.len(),
        1,
        "one alert until it goes back under: {messages:?}"
    );
    let (topic, body) = &messages[0];
    assert_eq!(topic, "alerts/s1");
    let alert: Value = serde_json::from_str(body)?;
    assert_eq!(alert["sensor"], "s1", "{alert}");
    assert_eq!(alert["threshold"], 30.0, "{alert}");
    assert_eq!(alert["average"], 40.0, "{alert}");

    let complete = |collector: &Collector| {
        collector
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|s| s["sensors"]["s2"]["readings"] == 2 && s["sensors"]["s1"]["readings"] == 3)
    };
    eventually(WITHIN, "a summary after every reading", || async {
        Ok(complete(&collector).is_some())
    })
    .await?;
    let summary = complete(&collector).unwrap_or_default();
    assert_eq!(summary["sensors"]["s1"]["alerting"], true, "{summary}");
    assert_eq!(summary["sensors"]["s2"]["readings"], 2, "{summary}");
    assert!(
        collector
            .authorizations()
            .iter()
            .all(|a| a == &format!("Bearer {TOKEN}")),
        "{:?}",
        collector.authorizations()
    );
    // The token is a secret: in no answer and no log line.
    let info = server.client().info("alerts").await?;
    assert!(!info.to_string().contains(TOKEN), "{info}");
    assert!(!server.log().contains(TOKEN), "the token is not logged");
    Ok(())
}

/// A broker that speaks only TLS (with the gateway's own CA) and wants a
/// password: the password is one of the function's secrets, and is in no
/// answer, no log line and no file of the data directory.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_broker_with_a_password_from_a_secret() -> Result<()> {
    const PASSWORD: &str = "broker-PLAINTEXT-5150";
    let broker = Broker::start_secured("gateway", PASSWORD).await?;
    let server = Server::builder()
        .env(
            "FLOE_EVENTS__BROKER_CA_FILE",
            &broker.ca_file().display().to_string(),
        )
        .start()?;
    server.deploy("probe", TRIGGER_PROBE, &[]).await?;
    let endpoint = json!({
        "broker": broker.url(), "username": "gateway", "password_secret": "broker_password",
    });
    let mut trigger = mqtt_trigger(&broker, "in", &["secure/in"], 1);
    trigger["username"] = json!("gateway");
    trigger["password_secret"] = json!("broker_password");
    configure(
        &server,
        "probe",
        &[
            ("secret.broker_password", PASSWORD.into()),
            ("triggers", json!([trigger]).to_string()),
            ("publish", endpoint.to_string()),
        ],
    )
    .await?;
    wait_for_state(&server, "probe", "in", "connected").await?;
    broker.publish("secure/in", "over tls", 1, &[])?;
    eventually(WITHIN, "the message over TLS to run", || async {
        let list = invocations(&server, "probe").await?;
        Ok(list.iter().any(|r| r["status"] == "succeeded"))
    })
    .await?;
    let subscriber = broker.subscribe("secure/out/#", None).await?;
    let report = invoke(&server, "probe", "publish 3 secure/out/x").await?;
    assert_eq!(report["published"], 3, "{report}");
    eventually(WITHIN, "the three messages", || async {
        Ok(subscriber.messages().len() == 3)
    })
    .await?;

    // A wrong password is reported, and retried.
    let mut wrong = mqtt_trigger(&broker, "wrong", &["secure/in"], 1);
    wrong["username"] = json!("gateway");
    configure(
        &server,
        "probe",
        &[("triggers", json!([wrong]).to_string())],
    )
    .await?;
    eventually(WITHIN, "the refused connection to be reported", || async {
        let t = trigger_state(&server, "probe", "wrong").await?;
        Ok(t["state"] == "connecting" && t["error"].as_str().is_some_and(|e| !e.is_empty()))
    })
    .await?;

    let info = server.client().info("probe").await?;
    assert!(!info.to_string().contains(PASSWORD), "{info}");
    assert!(
        !server.log().contains(PASSWORD),
        "the password is not logged"
    );
    let found = crate::variables::files_containing(&server.data_dir(), PASSWORD.as_bytes());
    assert!(found.is_empty(), "the password in plain text in {found:?}");
    Ok(())
}

/// A full invocation queue holds MQTT messages unacknowledged (the broker
/// keeps them) instead of dropping them; they all run once there is room.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_holds_mqtt_messages_and_loses_none() -> Result<()> {
    let broker = Broker::start().await?;
    let server = Server::builder()
        .env("FLOE_INVOCATIONS__MAX_QUEUED", "3")
        .env("FLOE_INVOCATIONS__WORKERS", "1")
        .start()?;
    let triggers = json!([mqtt_trigger(&broker, "in", &["held/in"], 1)]);
    server
        .deploy(
            "probe",
            TRIGGER_PROBE,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    wait_for_state(&server, "probe", "in", "connected").await?;
    for i in 0..12 {
        broker.publish("held/in", "sleep:200", 1, &[("n", &i.to_string())])?;
    }
    eventually(WITHIN, "the trigger to hold messages", || async {
        Ok(trigger_state(&server, "probe", "in").await?["state"] == "held")
    })
    .await?;
    eventually(Duration::from_secs(60), "every message to run", || async {
        let list = invocations(&server, "probe").await?;
        Ok(list.iter().filter(|r| r["status"] == "succeeded").count() >= 12)
    })
    .await?;
    let mut payloads: Vec<String> = Vec::new();
    for record in invocations(&server, "probe").await? {
        let id = record["id"].as_str().unwrap_or_default();
        let result = api(&server, &format!("/v1/invocations/{id}/result")).await?;
        payloads.push(result["trigger"]["user_properties"].to_string());
    }
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 12, "every message ran: {payloads:?}");
    wait_for_state(&server, "probe", "in", "connected").await?;
    Ok(())
}

/// A WASI 0.3 event function reads its trigger (across an await, with other
/// invocations on the instance) and publishes through the outbox.
#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_p3_function_reads_its_trigger_and_publishes() -> Result<()> {
    let broker = Broker::start().await?;
    let server = Server::start()?;
    let triggers = json!([mqtt_trigger(&broker, "in", &["p3/in"], 1)]);
    server
        .deploy(
            "p3",
            floe_tests::fixtures::EVENT_P3,
            &[
                ("triggers", &triggers.to_string()),
                ("publish", &broker.url()),
            ],
        )
        .await?;
    wait_for_state(&server, "p3", "in", "connected").await?;
    for _ in 0..3 {
        broker.publish("p3/in", "trigger", 1, &[])?;
    }
    eventually(WITHIN, "the three invocations to succeed", || async {
        let list = invocations(&server, "p3").await?;
        Ok(list.iter().filter(|r| r["status"] == "succeeded").count() == 3)
    })
    .await?;
    for record in invocations(&server, "p3").await? {
        let id = record["id"].as_str().unwrap_or_default();
        let path = format!("/v1/invocations/{id}/result");
        let r = control_text(&server, http::Method::GET, &path, "").await?;
        assert!(r.text().contains("mqtt in p3/in"), "{}", r.text());
    }
    let subscriber = broker.subscribe("p3/out", None).await?;
    let path = "/v1/functions/p3/invoke";
    let r = control_text(&server, http::Method::POST, path, "publish:p3/out").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(WITHIN, "the published message", || async {
        Ok(subscriber.messages() == [("p3/out".to_owned(), "hello".to_owned())])
    })
    .await?;
    Ok(())
}

/// The checks every language's `trigger-probe` example passes (`component`
/// is its built `.wasm`; `lang` names its functions and topics): an MQTT
/// message invokes it with its trigger, the API does without, published
/// messages arrive in order, the outbox's errors reach it as errors, and a
/// cron run carries its schedule.
pub(crate) async fn check_trigger_probe(component: &str, lang: &str) -> Result<()> {
    let broker = Broker::start().await?;
    let server = Server::start()?;
    let triggers = json!([{
        "kind": "mqtt",
        "name": "in",
        "broker": broker.url(),
        "topics": [format!("{lang}/in")],
        "qos": 1,
    }]);
    server
        .deploy(
            &format!("{lang}-probe"),
            component,
            &[
                ("triggers", &triggers.to_string()),
                ("publish", &broker.url()),
            ],
        )
        .await?;
    wait_for_state(&server, &format!("{lang}-probe"), "in", "connected").await?;

    // An MQTT message invokes it, and it reads the trigger.
    broker.publish(
        &format!("{lang}/in"),
        "hello from mqtt",
        1,
        &[("unit", "C"), ("site", "north")],
    )?;
    eventually(WITHIN, "the message's invocation to succeed", || async {
        let list = invocations(&server, &format!("{lang}-probe")).await?;
        Ok(list.len() == 1 && list[0]["status"] == "succeeded")
    })
    .await?;
    let record = invocations(&server, &format!("{lang}-probe"))
        .await?
        .remove(0);
    assert_eq!(record["fired"]["kind"], "mqtt", "{record}");
    let result = result_of(&server, &record).await?;
    assert_eq!(result["request_id"], record["id"], "{result}");
    assert_eq!(result["payload"], "hello from mqtt", "{result}");
    assert_eq!(result["content_type"], Value::Null, "{result}");
    assert_eq!(
        result["trigger"],
        json!({
            "kind": "mqtt",
            "name": "in",
            "topic": format!("{lang}/in"),
            "qos": 1,
            "retain": false,
            "user_properties": [["unit", "C"], ["site", "north"]],
        }),
        "{result}"
    );
    assert!(server.log().contains("probe saw {"), "{}", server.log());

    // Over the API there is no trigger.
    let direct = invoke(&server, &format!("{lang}-probe"), "hi").await?;
    assert_eq!(direct["payload"], "hi", "{direct}");
    assert_eq!(direct["trigger"], Value::Null, "{direct}");

    // Published messages arrive, in order.
    let subscriber = broker.subscribe(&format!("{lang}/out/#"), None).await?;
    let report = invoke(
        &server,
        &format!("{lang}-probe"),
        &format!("publish 5 {lang}/out/x"),
    )
    .await?;
    assert_eq!(report, json!({"published": 5, "error": null}), "{report}");
    eventually(WITHIN, "the 5 published messages to arrive", || async {
        Ok(subscriber.messages().len() >= 5)
    })
    .await?;
    let mut got = subscriber.messages();
    // At least once: a message sent again after a lost connection may
    // repeat, never out of order.
    got.dedup();
    let want: Vec<(String, String)> = (0..5)
        .map(|i| (format!("{lang}/out/x"), i.to_string()))
        .collect();
    assert_eq!(got, want);

    // The outbox's errors are `PublishError`s: a wildcard topic is invalid,
    // and nothing is queued.
    let report = invoke(
        &server,
        &format!("{lang}-probe"),
        &format!("publish 2 {lang}/out/#"),
    )
    .await?;
    assert_eq!(report["published"], 0, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("invalid message: "), "{report}");

    // A function with no broker may not publish.
    server
        .deploy(&format!("{lang}-nowhere"), component, &[])
        .await?;
    let report = invoke(
        &server,
        &format!("{lang}-nowhere"),
        &format!("publish 1 {lang}/out/y"),
    )
    .await?;
    assert_eq!(report["published"], 0, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("no broker to publish to: "), "{report}");

    // A cron schedule invokes it with its run.
    let triggers = json!([{
        "kind": "cron",
        "name": "tick",
        "schedule": "* * * * * *",
        "time_zone": "Europe/Berlin",
    }]);
    server
        .deploy(
            &format!("{lang}-cron"),
            component,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    eventually(WITHIN, "a cron run to succeed", || async {
        let list = invocations(&server, &format!("{lang}-cron")).await?;
        Ok(list.iter().any(|r| r["status"] == "succeeded"))
    })
    .await?;
    let record = invocations(&server, &format!("{lang}-cron"))
        .await?
        .into_iter()
        .find(|r| r["status"] == "succeeded")
        .unwrap_or_default();
    let result = result_of(&server, &record).await?;
    let run = &result["trigger"];
    assert_eq!(result["content_type"], "application/json", "{result}");
    assert_eq!(run["kind"], "cron", "{result}");
    assert_eq!(run["name"], "tick", "{result}");
    assert_eq!(run["schedule"], "* * * * * *", "{result}");
    assert_eq!(run["time_zone"], "Europe/Berlin", "{result}");
    assert_eq!(
        run["scheduled_ms"], record["fired"]["scheduled_ms"],
        "{result}"
    );
    assert_eq!(
        run["scheduled_ms"].as_u64().map(|t| t % 1000),
        Some(0),
        "{result}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_trigger_probe_reads_its_triggers_and_publishes_in_order() -> Result<()> {
    check_trigger_probe(TRIGGER_PROBE, "rust").await
}
