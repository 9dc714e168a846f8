//! `floe new`: every template makes a project that builds with its SDK as it
//! is, deploys, and answers.

use crate::harness::{FLOE, Server, post};
use crate::sdk::{Sdk, repo};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `floe new` for `lang` and `kind` in `parent`; the project's directory.
fn scaffold(parent: &Path, lang: &str, kind: &str) -> Result<PathBuf> {
    let name = format!("new-{lang}-{kind}");
    let done = Command::new(FLOE)
        .current_dir(parent)
        .args(["new", "--lang", lang, "--kind", kind, &name])
        .output()?;
    if !done.status.success() {
        bail!("floe new failed: {}", String::from_utf8_lossy(&done.stderr));
    }
    Ok(parent.join(name))
}

/// Builds the project in `dir` as its README says; the component's path.
fn build(dir: &Path, lang: &str) -> Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("project name")?
        .to_owned();
    match lang {
        "rust" => {
            // The examples' lock and target directory: the same dependency
            // versions, already compiled.
            std::fs::copy(
                repo().join("functions-examples/rust/Cargo.lock"),
                dir.join("Cargo.lock"),
            )?;
            let target = repo().join("target/wasm-examples");
            let done = Command::new("cargo")
                .current_dir(dir)
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .arg("--target-dir")
                .arg(&target)
                .output()?;
            if !done.status.success() {
                bail!(
                    "cargo build failed: {}",
                    String::from_utf8_lossy(&done.stderr)
                );
            }
            let artifact = target.join(format!(
                "wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ));
            Ok(artifact.display().to_string())
        }
        "js" => Sdk::Js.build_ok(&dir.join("app.js"), &dir.join(format!("{name}.wasm"))),
        "python" => Sdk::Python.build_ok(&dir.join("app.py"), &dir.join(format!("{name}.wasm"))),
        other => bail!("no such language: {other}"),
    }
}

async fn check_language(lang: &str) -> Result<()> {
    let parent = tempfile::tempdir()?;
    let http = scaffold(parent.path(), lang, "http")?;
    let event = scaffold(parent.path(), lang, "event")?;
    for file in ["README.md", ".gitignore"] {
        assert!(http.join(file).is_file(), "{file}");
    }
    let (http_wasm, event_wasm) =
        tokio::task::block_in_place(|| anyhow::Ok((build(&http, lang)?, build(&event, lang)?)))?;
    let server = Server::start()?;
    let http_name = format!("new-{lang}-http");
    server.deploy(&http_name, &http_wasm, &[]).await?;
    let r = server.get(&format!("/{http_name}/x")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("hello from {http_name}, path=/x\n"));

    let event_name = format!("new-{lang}-event");
    server.deploy(&event_name, &event_wasm, &[]).await?;
    let r = post(&server.url(&format!("/{event_name}")), "four").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("{event_name} got 4 bytes\n"));
    let r = post(&server.url(&format!("/{event_name}")), "").await?;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_input".into()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_templates_build_and_answer() -> Result<()> {
    check_language("rust").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_wasi_p3_template_builds_and_serves_concurrently() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let name = "new-rust-p3";
    let done = Command::new(FLOE)
        .current_dir(parent.path())
        .args(["new", "--lang", "rust", "--wasi", "p3", name])
        .output()?;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let dir = parent.path().join(name);
    let wasm = tokio::task::block_in_place(|| build(&dir, "rust"))?;
    let server = Server::start()?;
    server.deploy(name, &wasm, &[]).await?;
    let r = server.get(&format!("/{name}/x")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("hello from {name}, path=/x\n"));
    let info = server.client().info(name).await?;
    assert_eq!(
        (info["wasi"].clone(), info["instance_concurrency"].clone()),
        ("0.3".into(), 16.into())
    );
    // Event functions and the other languages stay on WASI 0.2.
    let refused = Command::new(FLOE)
        .current_dir(parent.path())
        .args(["new", "--lang", "js", "--wasi", "p3", "new-js-p3"])
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Rust HTTP functions only"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn js_templates_build_and_answer() -> Result<()> {
    check_language("js").await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_templates_build_and_answer() -> Result<()> {
    check_language("python").await
}

#[test]
fn floe_new_refuses_an_existing_project_and_a_bad_name() -> Result<()> {
    let parent = tempfile::tempdir()?;
    scaffold(parent.path(), "js", "http")?;
    let again = scaffold(parent.path(), "js", "http").unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let bad = Command::new(FLOE)
        .current_dir(parent.path())
        .args(["new", "--lang", "python", "Not_A_Name"])
        .output()?;
    assert!(!bad.status.success());
    Ok(())
}
