//! Python WASI 0.3 functions (`floe-py build --wasi p3`): `async def`
//! handlers and hooks whose awaits let an instance serve many requests at
//! once.

use crate::harness::{Server, eventually, post};
use crate::sdk::{Sdk, repo};
use anyhow::{Result, bail};
use floe_tests::fixtures::P3_RAW;
use futures::future::join_all;

/// Builds `functions-examples/python/{name}/app.py` for WASI 0.3; the
/// component's path.
fn build_p3(name: &str) -> Result<String> {
    let source = repo().join(format!("functions-examples/python/{name}/app.py"));
    let output = repo().join(format!("target/py-examples/{name}.wasm"));
    let (ok, stderr) = Sdk::Python.build_with(&source, &output, &["--wasi", "p3"])?;
    if !ok {
        bail!("the WASI 0.3 build of {name} failed:\n{stderr}");
    }
    Ok(output.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_p3_http_functions_serve_sixteen_requests_on_one_instance() -> Result<()> {
    let component = build_p3("fan-out-p3")?;
    let server = Server::builder()
        .env("FLOE_OUTBOUND__ALLOW_DATA_PLANE", "true")
        .start()?;
    let data = server.data.port();
    server.deploy("upstream", P3_RAW, &[]).await?;
    server
        .deploy(
            "py",
            &component,
            &[
                ("max_instances", "1"),
                ("timeout", "3s"),
                (
                    "allowed_outbound_hosts",
                    &format!("http://127.0.0.1:{data}"),
                ),
            ],
        )
        .await?;
    let i = server.client().info("py").await?;
    assert_eq!(
        (i["wasi"].clone(), i["kind"].clone()),
        ("0.3".into(), "http".into()),
        "{i}"
    );
    let r = post(&server.url("/py/"), "twelve bytes").await?;
    assert_eq!(r.text(), "got 12 bytes\n");
    // 16 requests awaiting 400 ms each: 6.4 s one after the other, past the
    // timeout; on one instance at once, well within it.
    let replies = join_all((0..16).map(|_| server.get("/py/?ms=400"))).await;
    for r in replies {
        let r = r?;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "hello from python (WASI 0.3), slept 400 ms\n".into())
        );
    }
    // The same with an outbound call each, awaited with fetch_async.
    let path = format!("/py/?url=http://127.0.0.1:{data}/upstream/sleep?ms=400");
    let replies = join_all((0..16).map(|_| server.get(&path))).await;
    for r in replies {
        let r = r?;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "status=200 bytes=13\n".into())
        );
    }
    let i = server.client().info("py").await?;
    assert_eq!(i["instances"]["started"], 1, "{i}");
    // A refused connection is a FetchError the function answers with.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let r = server
        .get(&format!("/py/?url=http://127.0.0.1:{port}/"))
        .await?;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().starts_with("fetch failed: GET http://127.0.0.1:"),
        "{}",
        r.text()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_p3_event_functions_await_in_handler_and_hooks() -> Result<()> {
    let component = build_p3("event-p3")?;
    let server = Server::start()?;
    let deployed = server
        .deploy(
            "pyev",
            &component,
            &[("max_instances", "1"), ("timeout", "3s")],
        )
        .await?;
    // The async init ran at deploy. Python's runtime takes random bytes
    // there, so floe may fall back to running it per instance, and says so.
    let mode = deployed["init"].as_str().unwrap_or_default();
    assert!(mode == "snapshot" || mode == "instance", "{deployed}");
    if mode == "instance" {
        assert!(deployed["init_reason"].is_string(), "{deployed}");
    }
    let url = server.url("/pyev");
    let replies = join_all((0..16).map(|_| post(&url, r#"{"sleep_ms": 400}"#))).await;
    for r in replies {
        let r = r?;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json(),
            serde_json::json!({"slept_ms": 400, "words": 9, "freezes": 0})
        );
    }
    let i = server.client().info("pyev").await?;
    assert_eq!(i["instances"]["started"], 1, "{i}");
    eventually(
        std::time::Duration::from_secs(5),
        "pre-freeze to run",
        || async {
            let detail = server.client().instances("pyev").await?;
            Ok(detail["instances"][0]["hooks"]["pre_freeze"]["calls"] == 1)
        },
    )
    .await?;
    let r = post(&url, r#"{"sleep_ms": 0}"#).await?;
    assert_eq!(r.json()["freezes"], 1, "{}", r.text());
    let r = post(&url, "not json").await?;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input".into()));
    let r = post(&url, r#"{"fail": true}"#).await?;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("RuntimeError: asked to fail"),
        "{}",
        r.text()
    );
    server.client().delete("pyev").await?;
    eventually(
        std::time::Duration::from_secs(5),
        "pre-stop to run",
        || async { Ok(server.log().contains("py-event-p3 pre-stop after")) },
    )
    .await?;
    Ok(())
}

#[test]
fn async_def_handlers_need_a_wasi_p3_build() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("early.py");
    std::fs::write(
        &source,
        "import floe\n\n@floe.http\nasync def handle(request):\n    return 'x'\n",
    )?;
    let (ok, stderr) = Sdk::Python.build(&source, &dir.path().join("early.wasm"))?;
    assert!(!ok);
    assert!(
        stderr.contains("early.py:4:") && stderr.contains("--wasi p3"),
        "{stderr}"
    );
    Ok(())
}
