//! Python event functions and event sources: the Python `trigger-probe`
//! (built with the SDK) reads its MQTT and cron triggers with
//! `ctx.trigger` and publishes through the durable outbox with
//! `floe.publish`, against a real Mosquitto; functions that cannot have
//! triggers (HTTP, WASI 0.3) are told so clearly.

use crate::harness::Server;
use crate::python::build_example;
use crate::sdk::Sdk;
use anyhow::Result;

#[tokio::test(flavor = "multi_thread")]
async fn python_event_functions_read_their_triggers_and_publish_in_order() -> Result<()> {
    let component = build_example("trigger-probe")?;
    crate::triggers::check_trigger_probe(&component, "py").await
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

/// The Python `sensor-alerts` passes the checks of the Rust one: one alert
/// over MQTT (QoS 1) when a sensor's rolling average crosses the threshold,
/// summaries POSTed on a cron schedule with the secret token, which is in no
/// answer and no log line.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sensor_alerts_example_alerts_and_posts_summaries() -> Result<()> {
    let component = crate::python::build_example("sensor-alerts")?;
    crate::triggers::check_sensor_alerts(&component).await
}
