//! Python event functions and event sources: the Python `trigger-probe`
//! (built with the SDK) reads its MQTT and cron triggers with
//! `ctx.trigger` and publishes through the durable outbox with
//! `floe.publish`, against a real Mosquitto; functions that cannot have
//! triggers (HTTP, WASI 0.3) are told so clearly.

use crate::broker::Broker;
use crate::harness::{Server, eventually};
use crate::python::build_example;
use crate::sdk::Sdk;
use crate::triggers::wait_for_state;
use anyhow::Result;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

/// The Python `trigger-probe`, built once for the tests that share it
/// (two builds at once would write the same file).
fn probe() -> Result<String> {
    static BUILT: Mutex<Option<String>> = Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let path = build_example("trigger-probe")?;
    *built = Some(path.clone());
    Ok(path)
}

async fn api(server: &Server, method: Method, path: &str, body: &str) -> Result<Value> {
    Ok(server
        .client()
        .send(method, path, Bytes::from(body.to_owned()))
        .await?
        .1)
}

/// The stored invocations of `function` (newest first).
async fn invocations(server: &Server, function: &str) -> Result<Vec<Value>> {
    let listing = api(
        server,
        Method::GET,
        &format!("/v1/invocations?function={function}&limit=1000"),
        "",
    )
    .await?;
    Ok(listing["invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// What the function answered for the stored invocation `record`.
async fn result_of(server: &Server, record: &Value) -> Result<Value> {
    let id = record["id"].as_str().unwrap_or_default();
    api(
        server,
        Method::GET,
        &format!("/v1/invocations/{id}/result"),
        "",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_event_functions_read_their_mqtt_trigger_and_publish_in_order() -> Result<()> {
    let component = probe()?;
    let broker = Broker::start().await?;
    let server = Server::start()?;
    let triggers = json!([{
        "kind": "mqtt",
        "name": "in",
        "broker": broker.url(),
        "topics": ["py/in"],
        "qos": 1,
    }]);
    server
        .deploy(
            "py-probe",
            &component,
            &[
                ("triggers", &triggers.to_string()),
                ("publish", &broker.url()),
            ],
        )
        .await?;
    wait_for_state(&server, "py-probe", "in", "connected").await?;

    // A message invokes the function, which sees the trigger behind it.
    broker.publish("py/in", "21.5", 1, &[("unit", "C"), ("site", "north")])?;
    eventually(WITHIN, "the message's invocation to succeed", || async {
        let list = invocations(&server, "py-probe").await?;
        Ok(list.len() == 1 && list[0]["status"] == "succeeded")
    })
    .await?;
    let record = invocations(&server, "py-probe").await?.remove(0);
    let result = result_of(&server, &record).await?;
    assert_eq!(result["payload"], "21.5", "{result}");
    assert_eq!(result["request_id"], record["id"], "{result}");
    assert_eq!(
        result["trigger"],
        json!({
            "kind": "mqtt",
            "name": "in",
            "topic": "py/in",
            "qos": 1,
            "retain": false,
            "user_properties": [["unit", "C"], ["site", "north"]],
        }),
        "{result}"
    );
    assert!(
        server.log().contains("probe saw {"),
        "the probe prints what it saw:\n{}",
        server.log()
    );

    // An invocation over the API has no trigger.
    let direct = api(&server, Method::POST, "/v1/functions/py-probe/invoke", "hi").await?;
    assert_eq!(direct["trigger"], Value::Null, "{direct}");
    assert_eq!(direct["payload"], "hi", "{direct}");

    // floe.publish queues through the outbox, and the messages arrive in
    // order (a message sent again after a lost connection may repeat,
    // never go missing or out of order).
    let subscriber = broker.subscribe("py/out/#", None).await?;
    let report = api(
        &server,
        Method::POST,
        "/v1/functions/py-probe/invoke",
        "publish 5 py/out/x",
    )
    .await?;
    assert_eq!(report, json!({"published": 5, "error": null}));
    eventually(WITHIN, "the five messages to arrive", || async {
        Ok(subscriber.messages().len() >= 5)
    })
    .await?;
    let mut got = subscriber.messages();
    got.dedup();
    let expected: Vec<(String, String)> = (0..5)
        .map(|i| ("py/out/x".to_owned(), i.to_string()))
        .collect();
    assert_eq!(got, expected);

    // A wildcard topic is refused: a PublishError of kind `invalid`.
    let report = api(
        &server,
        Method::POST,
        "/v1/functions/py-probe/invoke",
        "publish 1 py/out/#",
    )
    .await?;
    assert_eq!(report["published"], 0, "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid message: ")),
        "{report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_event_functions_see_their_cron_trigger_and_a_missing_broker() -> Result<()> {
    let component = probe()?;
    let server = Server::start()?;
    let triggers = json!([{"kind": "cron", "name": "tick", "schedule": "* * * * * *"}]);
    server
        .deploy(
            "py-cron",
            &component,
            &[("triggers", &triggers.to_string())],
        )
        .await?;
    let cron_run = |list: &[Value]| {
        list.iter()
            .find(|r| r["fired"]["kind"] == "cron" && r["status"] == "succeeded")
            .cloned()
    };
    eventually(WITHIN, "a cron run to succeed", || async {
        Ok(cron_run(&invocations(&server, "py-cron").await?).is_some())
    })
    .await?;
    let record = cron_run(&invocations(&server, "py-cron").await?).unwrap_or_default();
    let result = result_of(&server, &record).await?;
    let trigger = &result["trigger"];
    assert_eq!(trigger["kind"], "cron", "{result}");
    assert_eq!(trigger["name"], "tick", "{result}");
    assert_eq!(trigger["schedule"], "* * * * * *", "{result}");
    assert_eq!(trigger["time_zone"], "UTC", "{result}");
    assert_eq!(
        trigger["scheduled_ms"], record["fired"]["scheduled_ms"],
        "{result} {record}"
    );
    assert!(
        trigger["scheduled_ms"]
            .as_u64()
            .is_some_and(|t| t > 0 && t % 1000 == 0),
        "{result}"
    );
    assert_eq!(result["request_id"], record["id"], "{result}");

    // No `publish` setting and no MQTT trigger: nowhere to publish to.
    server
        .client()
        .configure("py-cron", &[("triggers".into(), "[]".into())])
        .await?;
    let report = api(
        &server,
        Method::POST,
        "/v1/functions/py-cron/invoke",
        "publish 1 py/out",
    )
    .await?;
    assert_eq!(report["published"], 0, "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no broker to publish to: ")),
        "{report}"
    );
    Ok(())
}

/// What a function that cannot have triggers answers when it asks for
/// them: the kind of `PublishError`, and both messages.
const ASK: &str = r#"
def ask(request_id):
    out = []
    try:
        floe.publish("a/b", b"x")
        out.append("publish: queued")
    except floe.PublishError as e:
        out.append(f"publish: {e.kind}: {e}")
    try:
        floe.trigger(request_id)
        out.append("trigger: read")
    except RuntimeError as e:
        out.append(f"trigger: {e}")
    return "\n".join(out)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn python_http_and_p3_functions_are_told_triggers_are_for_event_functions() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let http_source = dir.path().join("web.py");
    std::fs::write(
        &http_source,
        format!(
            "import floe\n{ASK}\n@floe.http\ndef handle(request: floe.Request) -> str:\n    return ask(\"r1\")\n"
        ),
    )?;
    let web = Sdk::Python.build_ok(&http_source, &dir.path().join("web.wasm"))?;
    // A WASI 0.3 event function builds without the (WASI 0.2) trigger and
    // mqtt interfaces, and says so.
    let p3_source = dir.path().join("ev3.py");
    std::fs::write(
        &p3_source,
        format!(
            "import floe\n{ASK}\n@floe.event\nasync def handle(payload: bytes, ctx: floe.Context) -> str:\n    return ask(ctx.request_id)\n"
        ),
    )?;
    let p3 = dir.path().join("ev3.wasm");
    let (ok, stderr) = Sdk::Python.build_with(&p3_source, &p3, &["--wasi", "p3"])?;
    assert!(ok, "{stderr}");

    let server = Server::start()?;
    server.deploy("py-web", &web, &[]).await?;
    server
        .deploy("py-ev3", &p3.display().to_string(), &[])
        .await?;
    let r = server.get("/py-web/").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains("publish: not_configured: no broker to publish to: floe.publish works only in event functions (@floe.event)"),
        "{text}"
    );
    assert!(
        text.contains("trigger: floe.trigger works only in event functions (@floe.event)"),
        "{text}"
    );
    let r = crate::harness::post(&server.url("/py-ev3"), "x").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains("publish: not_configured: no broker to publish to: floe.publish is not available in a WASI 0.3 build"),
        "{text}"
    );
    assert!(
        text.contains("trigger: floe.trigger is not available in a WASI 0.3 build"),
        "{text}"
    );
    Ok(())
}
