//! Python functions built with the Python SDK (`floe-py build`, on
//! componentize-py), deployed to a real server like any other component.

use crate::examples::{
    check_config_reader, check_event_echo, check_init_index, check_json_api, check_metrics_flush,
};
use crate::harness::{Collector, Server, send};
use crate::sdk::{Sdk, repo};
use anyhow::Result;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

/// Builds `functions-examples/python/{name}/app.py` with the SDK; the
/// component's path.
pub(crate) fn build_example(name: &str) -> Result<String> {
    Sdk::Python.build_ok(
        &repo().join(format!("functions-examples/python/{name}/app.py")),
        &repo().join(format!("target/py-examples/{name}.wasm")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn python_http_functions_build_deploy_and_answer() -> Result<()> {
    let hello = build_example("hello")?;
    let server = Server::start()?;
    server.deploy("py-hello", &hello, &[]).await?;
    let r = server.get("/py-hello/some/path?x=1").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from python, path=/some/path?x=1\n");
    assert!(
        r.headers["content-type"]
            .to_str()?
            .starts_with("text/plain")
    );
    // A reused instance answers again.
    assert_eq!(server.get("/py-hello/").await?.status, 200);

    // init runs once, before the first request, and the deploy says how.
    let index = build_example("init-index")?;
    let body = check_init_index(&server, "py-index", &index).await?;
    assert_eq!(body["words_indexed"], 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_event_functions_keep_bytes_and_type_their_errors() -> Result<()> {
    let component = build_example("event-echo")?;
    let server = Server::start()?;
    server.deploy("py-event", &component, &[]).await?;
    check_event_echo(&server, "py-event", "RuntimeError: asked to fail").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_json_api_routes_by_path_and_method() -> Result<()> {
    let component = build_example("json-api")?;
    let server = Server::start()?;
    server
        .deploy("py-notes", &component, &[("max_instances", "1")])
        .await?;
    check_json_api(&server, "py-notes").await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_hooks_flush_metrics_with_fetch() -> Result<()> {
    let component = build_example("metrics-flush")?;
    let server = Server::start()?;
    server
        .deploy("py-metrics", &component, &[("max_instances", "1")])
        .await?;
    check_metrics_flush(&server, "py-metrics").await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_event_functions_fetch_and_see_fetch_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("fetcher.py");
    std::fs::write(
        &source,
        r#"import floe

@floe.event
def handle(payload: bytes, ctx: floe.Context) -> bytes:
    url, _, timeout = payload.decode().partition(" ")
    try:
        reply = floe.fetch(url, method="post", body=b"x" * 10000, timeout=float(timeout or 5))
    except floe.FetchError as e:
        return f"FetchError: {e}".encode()
    return f"{reply.status} {reply.header('content-length')} {reply.text()}".encode()
"#,
    )?;
    let component = dir.path().join("fetcher.wasm");
    let (ok, stderr) = Sdk::Python.build(&source, &component)?;
    assert!(ok, "{stderr}");
    let server = Server::start()?;
    server
        .deploy(
            "fetcher",
            &component.display().to_string(),
            &[("allowed_outbound_hosts", "http://127.0.0.1:*")],
        )
        .await?;
    let collector = Collector::start().await?;
    let post =
        |body: String| Request::post(server.url("/fetcher")).body(Full::new(Bytes::from(body)));

    // The body goes out in several writes, and the answer comes back whole.
    let r = send(post(collector.url.clone())?).await?;
    assert_eq!((r.status.as_u16(), r.text()), (200, "200 2 ok".into()));
    assert_eq!(collector.lines(), vec!["x".repeat(10_000)]);

    // No one listens on a port just given back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let r = send(post(format!("http://127.0.0.1:{port}/"))?).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("FetchError: POST http://127.0.0.1:"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("connection refused"), "{}", r.text());
    // One that listens but never answers: the timeout bounds the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/ 0.5", silent.local_addr()?);
    let r = send(post(url)?).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("FetchError: timed out"),
        "{}",
        r.text()
    );
    let r = send(post("ftp://example.com/".into())?).await?;
    assert!(
        r.text().contains("not an http:// or https:// URL"),
        "{}",
        r.text()
    );
    Ok(())
}

#[test]
fn a_python_syntax_error_names_file_and_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("broken.py");
    std::fs::write(
        &source,
        "import floe\n\n@floe.http\ndef handle(request)\n    return 'x'\n",
    )?;
    let (ok, stderr) = Sdk::Python.build(&source, &dir.path().join("broken.wasm"))?;
    assert!(!ok);
    assert!(
        stderr.contains("broken.py:4:") && stderr.contains("SyntaxError"),
        "{stderr}"
    );
    assert!(!dir.path().join("broken.wasm").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_functions_read_variables_and_secrets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("cfg.py");
    std::fs::write(
        &source,
        r#"import floe

@floe.http
async def handle(request: floe.Request) -> floe.Response:
    token = floe.config("api_token") or ""
    return floe.Response(
        f"greeting={floe.config('greeting', 'none')} token_len={len(token)} "
        f"keys={','.join(sorted(floe.config_all()))}\n"
    )
"#,
    )?;
    // The same source as a WASI 0.3 build (the handler is `async def`).
    let component = dir.path().join("cfg.wasm");
    let (ok, stderr) = Sdk::Python.build_with(&source, &component, &["--wasi", "p3"])?;
    assert!(ok, "{stderr}");
    let server = Server::start()?;
    server
        .deploy("py-cfg", &component.display().to_string(), &[])
        .await?;
    let r = server.get("/py-cfg/").await?;
    assert_eq!(r.text(), "greeting=none token_len=0 keys=\n");
    server
        .client()
        .configure(
            "py-cfg",
            &[
                ("var.greeting".into(), "hi".into()),
                ("secret.api_token".into(), "twelve chars".into()),
            ],
        )
        .await?;
    let r = server.get("/py-cfg/").await?;
    assert_eq!(
        r.text(),
        "greeting=hi token_len=12 keys=api_token,greeting\n"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_config_reader_example_reads_variables_and_secrets() -> Result<()> {
    let component = build_example("config-reader")?;
    let server = Server::start()?;
    check_config_reader(&server, "py-cfg-reader", &component).await
}
