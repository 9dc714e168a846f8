//! JavaScript functions built with the JavaScript SDK (`floe-js build`, on
//! componentize-js), deployed to a real server like any other component.

use crate::examples::{
    check_config_reader, check_event_echo, check_init_index, check_json_api, check_metrics_flush,
};
use crate::harness::Server;
use crate::sdk::{Sdk, repo};
use anyhow::Result;

/// Builds `functions-examples/js/{name}/app.js` with the SDK; the
/// component's path.
pub(crate) fn build_example(name: &str) -> Result<String> {
    Sdk::Js.build_ok(
        &repo().join(format!("functions-examples/js/{name}/app.js")),
        &repo().join(format!("target/js-examples/{name}.wasm")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn js_http_functions_build_deploy_and_answer_on_reused_instances() -> Result<()> {
    let hello = build_example("hello")?;
    let server = Server::start()?;
    server
        .deploy("js-hello", &hello, &[("max_instances", "1")])
        .await?;
    let r = server.get("/js-hello/some/path?x=1").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from javascript, path=/some/path?x=1\n");
    assert!(
        r.headers["content-type"]
            .to_str()?
            .starts_with("text/plain")
    );
    // One instance answers request after request.
    for _ in 0..5 {
        let r = server.get("/js-hello/again").await?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let instances = server.client().instances("js-hello").await?;
    let list = instances["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 1, "{instances}");

    // init runs once, before the first request, and the deploy says how.
    let index = build_example("init-index")?;
    let body = check_init_index(&server, "js-index", &index).await?;
    assert!(body["words_indexed"].as_u64() > Some(400), "{body}");
    Ok(())
}

/// Builds `functions-examples/js/plain-fetch` with componentize-js itself
/// (no floe SDK): a fetch-event component as other JS toolchains make it.
fn build_plain_fetch() -> Result<String> {
    let example = repo().join("functions-examples/js/plain-fetch");
    let work = repo().join("target/js-examples/plain-fetch");
    let wit = work.join("wit");
    std::fs::create_dir_all(&wit)?;
    std::fs::copy(example.join("plain.wit"), wit.join("plain.wit"))?;
    let deps = wit.join("deps");
    if !deps.exists() {
        std::os::unix::fs::symlink(repo().join("sdk/js/wit/deps"), &deps)?;
    }
    let output = repo().join("target/js-examples/plain-fetch.wasm");
    let script = "import { componentize } from '@bytecodealliance/componentize-js';\n\
        import { readFile, writeFile } from 'node:fs/promises';\n\
        const [source, wit, out] = process.argv.slice(1);\n\
        const { component } = await componentize(await readFile(source, 'utf8'), \
        { sourceName: 'app.js', witPath: wit, worldName: 'plain' });\n\
        await writeFile(out, component);\n";
    let status = std::process::Command::new("node")
        .current_dir(repo().join("sdk/js"))
        .args(["--input-type=module", "-e", script])
        .arg(example.join("app.js"))
        .arg(&wit)
        .arg(&output)
        .status()?;
    anyhow::ensure!(status.success(), "componentize-js failed: {status}");
    Ok(output.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_componentize_js_component_is_switched_to_fresh_instances() -> Result<()> {
    let component = build_plain_fetch()?;
    let server = Server::start()?;
    server
        .deploy("plain", &component, &[("max_instances", "1")])
        .await?;
    // Its instances answer their first request only; floe serves the
    // second on a fresh instance, and every one after it.
    for i in 0..4 {
        let r = server.get(&format!("/plain/call-{i}")).await?;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(
            r.text(),
            format!("hello from plain componentize-js, /call-{i}\n")
        );
    }
    let info = server.client().info("plain").await?;
    let reason = info["fresh_instances"].as_str().unwrap_or_default();
    assert!(reason.contains("one request per instance"), "{info}");
    assert!(info["instances"]["started"].as_u64() >= Some(4), "{info}");
    let metrics = crate::harness::get(&server.control_url("/metrics")).await?;
    assert!(
        metrics
            .text()
            .contains("floe_fresh_instances{function=\"plain\",version=\"1\"} 1"),
        "{}",
        metrics.text()
    );
    assert!(
        server
            .log()
            .contains("switched to a fresh instance per request")
    );
    // An operator who sets `reuse` decides: the second request on the
    // reused instance answers no_response.
    server
        .deploy(
            "reused",
            &component,
            &[("max_instances", "1"), ("reuse", "true")],
        )
        .await?;
    assert_eq!(server.get("/reused/").await?.status, 200);
    let r = server.get("/reused/").await?;
    assert_eq!((r.status.as_u16(), r.code()), (500, "no_response".into()));
    let info = server.client().info("reused").await?;
    assert!(info.get("fresh_instances").is_none(), "{info}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn js_event_functions_keep_bytes_and_type_their_errors() -> Result<()> {
    let component = build_example("event-echo")?;
    let server = Server::start()?;
    server.deploy("js-event", &component, &[]).await?;
    let context = check_event_echo(&server, "js-event", "Error: asked to fail").await?;
    assert_eq!(context["version"], 1);
    assert_eq!(context["remaining_ms_positive"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn js_json_api_routes_and_answers_each_status() -> Result<()> {
    let component = build_example("json-api")?;
    let server = Server::start()?;
    server
        .deploy("js-notes", &component, &[("max_instances", "1")])
        .await?;
    check_json_api(&server, "js-notes").await
}

#[tokio::test(flavor = "multi_thread")]
async fn js_hooks_flush_buffered_metrics_over_outbound_http() -> Result<()> {
    let component = build_example("metrics-flush")?;
    let server = Server::start()?;
    server
        .deploy("js-metrics", &component, &[("max_instances", "1")])
        .await?;
    check_metrics_flush(&server, "js-metrics").await
}

#[test]
fn a_js_syntax_error_names_file_and_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("broken.js");
    std::fs::write(
        &source,
        "export function fetch(request) {\n  return new Response('x';\n}\n",
    )?;
    let output = dir.path().join("broken.wasm");
    let (ok, stderr) = Sdk::Js.build(&source, &output)?;
    assert!(!ok);
    assert!(stderr.contains("broken.js:2:"), "{stderr}");
    assert!(!output.exists());

    // A module with no handler is refused with what to export.
    std::fs::write(&source, "export const answer = 42;\n")?;
    let (ok, stderr) = Sdk::Js.build(&source, &output)?;
    assert!(!ok);
    assert!(stderr.contains("exports no handler"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_function_does_gpu_frame_work_through_the_sdk() -> Result<()> {
    use crate::gpu::{clip, decode, thumbnails};
    let component = build_example("video-scenes")?;
    let server = Server::start()?;
    server.deploy("js-video", &component, &[]).await?;
    let r = thumbnails(&server, "js-video", "", clip(643, 361, 4, 3)).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["scenes"],
        serde_json::json!([0, 3, 6, 9]),
        "{}",
        body["scores"]
    );
    let thumbs = body["thumbnails"].as_array().cloned().unwrap_or_default();
    assert_eq!(thumbs.len(), 4);
    for thumb in &thumbs {
        let (w, h, pixels) = decode(&thumb["png"])?;
        assert_eq!((w, h, pixels.len()), (320, 180, 320 * 180 * 4));
    }
    // A bad clip is the function's 400; an over-large fit is the GPU's typed
    // error, answered 400 by the function.
    let r = thumbnails(&server, "js-video", "", b"nope".to_vec()).await?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = thumbnails(&server, "js-video", "fit=0x0", clip(16, 16, 1, 1)).await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("bad-dimensions"), "{}", r.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn js_functions_read_variables_and_secrets() -> Result<()> {
    let component = build_example("config-reader")?;
    let server = Server::start()?;
    check_config_reader(&server, "js-cfg", &component).await
}
