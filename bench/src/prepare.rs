//! Building and finding what the benchmarks run: the floe binary, the hyper
//! ceiling, the example components, wasmtime-cli 48 and wrk.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasmtime release the project embeds, and compares against.
pub(crate) const WASMTIME_VERSION: &str = "48.0.8";

/// Paths of everything a benchmark run needs.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// The repository root.
    pub(crate) root: PathBuf,
    /// `target/release/floe`.
    pub(crate) floe: PathBuf,
    /// `target/release/hyper-hello`.
    pub(crate) hyper: PathBuf,
    /// The Rust hello component.
    pub(crate) hello: PathBuf,
    /// The echo example (answers a `POST` with its body).
    pub(crate) echo: PathBuf,
    /// The compute example (~1 ms of CPU per request).
    pub(crate) compute: PathBuf,
    /// The init-heavy example (~200 ms of `init`).
    pub(crate) init_table: PathBuf,
    /// The example that answers after `?ms=N` on a host timer.
    pub(crate) slow: PathBuf,
    /// `wasmtime` 48, if it is to be measured.
    pub(crate) wasmtime: Option<PathBuf>,
}

/// The repository root (this crate lives in `bench/`).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// `cargo`, without what `cargo run` set in this process's environment for
/// the benchmark itself (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, ...): build
/// scripts that watch those variables would otherwise be rerun, and their
/// crates rebuilt, on every run.
fn cargo_command(cargo: &std::ffi::OsStr) -> Command {
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Builds the floe binary, the hyper ceiling and the example components,
/// installs the SDK toolchains and wrk where missing, and finds (or
/// installs) wasmtime.
pub(crate) fn prepare(with_wasmtime: bool) -> Result<Tools> {
    let root = repo_root();
    let target = target_dir(&root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln_status("building floe and hyper-hello (release)");
    run(cargo_command(&cargo).current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "floe-cli",
        "--bin",
        "floe",
        "-p",
        "floe-bench",
        "--bin",
        "hyper-hello",
    ]))?;
    eprintln_status("building the example components (wasm32-wasip2)");
    run(cargo_command(&cargo)
        .current_dir(root.join("functions-examples/rust"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "hello",
            "-p",
            "init-table",
            "-p",
            "slow",
            "-p",
            "echo",
            "-p",
            "compute",
            "--target-dir",
        ])
        .arg(target.join("wasm-examples")))?;
    eprintln_status("making sure the SDK toolchains are installed (scripts/setup)");
    run(Command::new("bash")
        .arg(root.join("scripts/setup"))
        .current_dir(&root))?;
    ensure_wrk()?;
    let wasmtime = if with_wasmtime {
        Some(wasmtime(&target, &cargo)?)
    } else {
        None
    };
    Ok(Tools {
        floe: target.join("release/floe"),
        hyper: target.join("release/hyper-hello"),
        hello: target.join("wasm-examples/wasm32-wasip2/release/hello.wasm"),
        echo: target.join("wasm-examples/wasm32-wasip2/release/echo.wasm"),
        compute: target.join("wasm-examples/wasm32-wasip2/release/compute.wasm"),
        init_table: target.join("wasm-examples/wasm32-wasip2/release/init_table.wasm"),
        slow: target.join("wasm-examples/wasm32-wasip2/release/slow.wasm"),
        wasmtime,
        root,
    })
}

fn has_wrk() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Installs wrk, the load generator, with apt-get when it is missing.
fn ensure_wrk() -> Result<()> {
    if has_wrk() {
        return Ok(());
    }
    eprintln_status("wrk is not installed: installing Debian's wrk package with apt-get");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).status().is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "--no-install-recommends", "wrk"]) {
        apt(&["update"]);
        apt(&["install", "-y", "--no-install-recommends", "wrk"]);
    }
    if !has_wrk() {
        bail!(
            "wrk is needed and could not be installed: install it (`apt-get install wrk`, or build it from https://github.com/wg/wrk) and run again"
        );
    }
    Ok(())
}

/// `wasmtime` 48 from PATH, or from `target/bench-tools`, installing it there
/// when missing.
fn wasmtime(target: &Path, cargo: &std::ffi::OsStr) -> Result<PathBuf> {
    let wanted = format!("wasmtime {WASMTIME_VERSION}");
    let version_of = |bin: &Path| {
        Command::new(bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if version_of(Path::new("wasmtime")).is_some_and(|v| v.starts_with(&wanted)) {
        return Ok(PathBuf::from("wasmtime"));
    }
    let tools = target.join("bench-tools");
    let local = tools.join("bin/wasmtime");
    if version_of(&local).is_some_and(|v| v.starts_with(&wanted)) {
        return Ok(local);
    }
    eprintln_status(&format!(
        "wasmtime {WASMTIME_VERSION} is not on PATH: installing it into {} (cargo install; about 20 minutes on 2 cores)",
        tools.display()
    ));
    run(cargo_command(cargo)
        .args([
            "install",
            "--locked",
            &format!("wasmtime-cli@{WASMTIME_VERSION}"),
            "--root",
        ])
        .arg(&tools))?;
    Ok(local)
}

/// Progress notes go to stderr, so stdout carries only the report.
pub(crate) fn eprintln_status(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "floe-bench: {msg}");
}
