//! `floe new`: every template makes a project that builds with its SDK as it
//! is, deploys, and answers.

use crate::harness::{FLOE, Server, post};
use crate::sdk::{Sdk, repo};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `floe new` for `lang` and `kind` in `parent`; the project's directory.
fn scaffold(parent: &Path, lang: &str, kind: &str) -> Result<PathBuf> {
    scaffold_for(parent, lang, kind, "p2")
}

/// Runs `floe new` for `lang`, `kind` and a WASI release in `parent`; the
/// project's directory.
fn scaffold_for(parent: &Path, lang: &str, kind: &str, wasi: &str) -> Result<PathBuf> {
    let name = format!("new-{lang}-{kind}-{wasi}");
    let done = Command::new(FLOE)
        .current_dir(parent)
        .args(["new", "--lang", lang, "--kind", kind, "--wasi", wasi, &name])
        .output()?;
    if !done.status.success() {
        bail!("floe new failed: {}", String::from_utf8_lossy(&done.stderr));
    }
    Ok(parent.join(name))
}

/// Builds the project in `dir` for a WASI release as its README says; the
/// component's path.
fn build_for(dir: &Path, lang: &str, wasi: &str) -> Result<String> {
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
        "python" => {
            let (ok, stderr) = Sdk::Python.build_with(
                &dir.join("app.py"),
                &dir.join(format!("{name}.wasm")),
                &["--wasi", wasi],
            )?;
            if !ok {
                bail!("floe-py build failed:\n{stderr}");
            }
            Ok(dir.join(format!("{name}.wasm")).display().to_string())
        }
        other => bail!("no such language: {other}"),
    }
}

async fn check_language(lang: &str) -> Result<()> {
    check_language_for(lang, "p2").await
}

/// `floe new` for both kinds of `lang` and `wasi`: each builds as its README
/// says, deploys as that WASI release, and answers.
async fn check_language_for(lang: &str, wasi: &str) -> Result<()> {
    let parent = tempfile::tempdir()?;
    let http = scaffold_for(parent.path(), lang, "http", wasi)?;
    let event = scaffold_for(parent.path(), lang, "event", wasi)?;
    for file in ["README.md", ".gitignore"] {
        assert!(http.join(file).is_file(), "{file}");
    }
    if wasi == "p3" {
        let readme = std::fs::read_to_string(http.join("README.md"))?;
        assert!(readme.contains("WASI 0.3 HTTP function"), "{readme}");
    }
    let (http_wasm, event_wasm) = tokio::task::block_in_place(|| {
        anyhow::Ok((
            build_for(&http, lang, wasi)?,
            build_for(&event, lang, wasi)?,
        ))
    })?;
    let server = Server::start()?;
    let http_name = format!("new-{lang}-http-{wasi}");
    server.deploy(&http_name, &http_wasm, &[]).await?;
    let r = server.get(&format!("/{http_name}/x")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("hello from {http_name}, path=/x\n"));

    let event_name = format!("new-{lang}-event-{wasi}");
    server.deploy(&event_name, &event_wasm, &[]).await?;
    let (release, concurrency) = match wasi {
        "p3" => ("0.3", 16),
        _ => ("0.2", 1),
    };
    for name in [&http_name, &event_name] {
        let info = server.client().info(name).await?;
        assert_eq!(
            (info["wasi"].clone(), info["instance_concurrency"].clone()),
            (release.into(), concurrency.into()),
            "{info}"
        );
    }
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
async fn the_rust_wasi_p3_templates_build_and_serve_concurrently() -> Result<()> {
    check_language_for("rust", "p3").await?;
    // JavaScript stays on WASI 0.2.
    let parent = tempfile::tempdir()?;
    let refused = Command::new(FLOE)
        .current_dir(parent.path())
        .args(["new", "--lang", "js", "--wasi", "p3", "new-js-p3"])
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Rust and Python functions only"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_wasi_p3_templates_build_and_serve_concurrently() -> Result<()> {
    check_language_for("python", "p3").await
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
