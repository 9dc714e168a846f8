//! JavaScript event functions and event sources: the JavaScript
//! `trigger-probe` (built with the SDK) reads its MQTT and cron triggers
//! with `floe-sdk/trigger` and publishes through the durable outbox with
//! `floe-sdk/mqtt`, against a real Mosquitto; an HTTP function that imports
//! either is refused at build.

use crate::broker::Broker;
use crate::harness::{Server, eventually};
use crate::js::build_example;
use crate::sdk::Sdk;
use crate::triggers::wait_for_state;
use anyhow::Result;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

async fn api(server: &Server, method: Method, path: &str, body: &str) -> Result<Value> {
    Ok(server
        .client()
        .send(method, path, Bytes::from(body.to_owned()))
        .await?
        .1)
}

/// The stored invocations of `function` (newest first).
async fn invocations(server: &Server, function: &str) -> Result<Vec<Value>> {
    let path = format!("/v1/invocations?function={function}&limit=1000");
    let listing = api(server, Method::GET, &path, "").await?;
    Ok(listing["invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// What the function answered for the stored invocation `record`.
async fn result_of(server: &Server, record: &Value) -> Result<Value> {
    let id = record["id"].as_str().unwrap_or_default();
    let path = format!("/v1/invocations/{id}/result");
    api(server, Method::GET, &path, "").await
}

/// Invokes `function` over the API with `payload`; its JSON answer.
async fn invoke(server: &Server, function: &str, payload: &str) -> Result<Value> {
    let path = format!("/v1/functions/{function}/invoke");
    api(server, Method::POST, &path, payload).await
}

#[tokio::test(flavor = "multi_thread")]
async fn js_event_functions_read_their_triggers_and_publish_in_order() -> Result<()> {
    let component = build_example("trigger-probe")?;
    let broker = Broker::start().await?;
    let server = Server::start()?;
    let triggers = json!([{
        "kind": "mqtt",
        "name": "in",
        "broker": broker.url(),
        "topics": ["js/in"],
        "qos": 1,
    }]);
    server
        .deploy(
            "js-probe",
            &component,
            &[
                ("triggers", &triggers.to_string()),
                ("publish", &broker.url()),
            ],
        )
        .await?;
    wait_for_state(&server, "js-probe", "in", "connected").await?;

    // An MQTT message invokes it, and it reads the trigger.
    broker.publish(
        "js/in",
        "hello from mqtt",
        1,
        &[("unit", "C"), ("site", "north")],
    )?;
    eventually(WITHIN, "the message's invocation to succeed", || async {
        let list = invocations(&server, "js-probe").await?;
        Ok(list.len() == 1 && list[0]["status"] == "succeeded")
    })
    .await?;
    let record = invocations(&server, "js-probe").await?.remove(0);
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
            "topic": "js/in",
            "qos": 1,
            "retain": false,
            "user_properties": [["unit", "C"], ["site", "north"]],
        }),
        "{result}"
    );
    assert!(
        server.log().contains("probe saw {\"request_id\":"),
        "{}",
        server.log()
    );

    // Over the API there is no trigger.
    let direct = invoke(&server, "js-probe", "hi").await?;
    assert_eq!(direct["payload"], "hi", "{direct}");
    assert_eq!(direct["trigger"], Value::Null, "{direct}");

    // Published messages arrive, in order.
    let subscriber = broker.subscribe("js/out/#", None).await?;
    let report = invoke(&server, "js-probe", "publish 5 js/out/x").await?;
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
        .map(|i| ("js/out/x".to_owned(), i.to_string()))
        .collect();
    assert_eq!(got, want);

    // The outbox's errors are `PublishError`s: a wildcard topic is invalid,
    // and nothing is queued.
    let report = invoke(&server, "js-probe", "publish 2 js/out/#").await?;
    assert_eq!(report["published"], 0, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("invalid message: "), "{report}");

    // A function with no broker may not publish.
    server.deploy("js-nowhere", &component, &[]).await?;
    let report = invoke(&server, "js-nowhere", "publish 1 js/out/y").await?;
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
            "js-cron",
            &component,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    eventually(WITHIN, "a cron run to succeed", || async {
        let list = invocations(&server, "js-cron").await?;
        Ok(list.iter().any(|r| r["status"] == "succeeded"))
    })
    .await?;
    let record = invocations(&server, "js-cron")
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

#[test]
fn a_js_http_function_may_not_import_event_sources() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = dir.path().join("app.wasm");
    for (module, names) in [
        ("floe-sdk/mqtt", "floe-sdk/mqtt (floe:function/mqtt)"),
        (
            "floe-sdk/trigger",
            "floe-sdk/trigger (floe:function/trigger)",
        ),
    ] {
        let source = dir.path().join("app.js");
        std::fs::write(
            &source,
            format!(
                "import * as sources from '{module}';\n\
                 export async function fetch(request) {{\n  \
                 return String(Object.keys(sources));\n}}\n"
            ),
        )?;
        let (ok, stderr) = Sdk::Js.build(&source, &output)?;
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains(&format!("an HTTP function imports {names}")),
            "{stderr}"
        );
        assert!(stderr.contains("only event functions"), "{stderr}");
        assert!(!output.exists());
    }
    Ok(())
}
