//! JavaScript event functions and event sources: the JavaScript
//! `trigger-probe` (built with the SDK) reads its MQTT and cron triggers
//! with `floe-sdk/trigger` and publishes through the durable outbox with
//! `floe-sdk/mqtt`, against a real Mosquitto; an HTTP function that imports
//! either is refused at build.

use crate::js::build_example;
use crate::sdk::Sdk;
use anyhow::Result;

#[tokio::test(flavor = "multi_thread")]
async fn js_event_functions_read_their_triggers_and_publish_in_order() -> Result<()> {
    let component = build_example("trigger-probe")?;
    crate::triggers::check_trigger_probe(&component, "js").await
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

/// The JavaScript `sensor-alerts` passes the checks of the Rust one: one
/// alert over MQTT (QoS 1) when a sensor's rolling average crosses the
/// threshold, summaries POSTed on a cron schedule with the secret token,
/// which is in no answer and no log line.
#[tokio::test(flavor = "multi_thread")]
async fn the_js_sensor_alerts_example_alerts_and_posts_summaries() -> Result<()> {
    let component = crate::js::build_example("sensor-alerts")?;
    crate::triggers::check_sensor_alerts(&component).await
}
