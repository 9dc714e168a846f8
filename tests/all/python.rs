//! Python functions built with the Python SDK (`floe-py build`, on
//! componentize-py), deployed to a real server like any other component.

use crate::harness::{Server, send};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_owned)
}

/// `floe-py`, installed by `scripts/setup` into `target/py-sdk`.
fn floe_py() -> PathBuf {
    repo().join("target/py-sdk/bin/floe-py")
}

/// Runs `floe-py build` on `source`; the output status and stderr.
fn floe_py_build(source: &Path, output: &Path) -> Result<(bool, String)> {
    let done = Command::new(floe_py())
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(output)
        .output()
        .context("running floe-py (scripts/setup installs it)")?;
    Ok((
        done.status.success(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    ))
}

/// Builds `functions-examples/python/{name}/app.py` with the SDK; the
/// component's path.
fn build_example(name: &str) -> Result<String> {
    let source = repo().join(format!("functions-examples/python/{name}/app.py"));
    let output = repo().join(format!("target/py-examples/{name}.wasm"));
    let (ok, stderr) = floe_py_build(&source, &output)?;
    if !ok {
        bail!("floe-py build of {name} failed:\n{stderr}");
    }
    Ok(output.display().to_string())
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
    let deployed = server.deploy("py-index", &index, &[]).await?;
    let mode = deployed["init"].as_str().unwrap_or_default().to_owned();
    assert!(mode == "snapshot" || mode == "instance", "{deployed}");
    if mode == "instance" {
        assert!(deployed["init_reason"].is_string(), "{deployed}");
    }
    let r = server.get("/py-index/?word=Floe").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["word"], "floe");
    assert_eq!(body["init_runs"], 1);
    assert!(body["count"].as_u64() > Some(1_000), "{body}");
    assert_eq!(body["words_indexed"], 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_event_functions_keep_bytes_and_type_their_errors() -> Result<()> {
    let component = build_example("event-echo")?;
    let server = Server::start()?;
    server.deploy("py-event", &component, &[]).await?;
    let post = |body: &'static [u8]| {
        Request::post(server.url("/py-event"))
            .header("content-type", "application/x-test")
            .body(Full::new(Bytes::from_static(body)))
    };
    let r = send(post(b"ab\xff\x00c")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.body.as_ref()),
        (200, &b"c\x00\xffba"[..])
    );
    let r = send(post(b"")?).await?;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input".into()));
    assert_eq!(r.json()["message"], "empty payload");
    let r = send(post(b"fail")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (500, "function_error".into())
    );
    assert_eq!(r.json()["message"], "RuntimeError: asked to fail");
    let r = send(post(b"context")?).await?;
    assert_eq!(r.json()["function"], "py-event");
    assert_eq!(r.json()["content_type"], "application/x-test");
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
    let (ok, stderr) = floe_py_build(&source, &dir.path().join("broken.wasm"))?;
    assert!(!ok);
    assert!(
        stderr.contains("broken.py:4:") && stderr.contains("SyntaxError"),
        "{stderr}"
    );
    assert!(!dir.path().join("broken.wasm").exists());
    Ok(())
}
