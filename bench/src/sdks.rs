//! The hello example of each SDK (Rust, JavaScript, Python): component size,
//! build time, deploy time (first compile, and again for bytes deployed
//! before) and first response after deploy, floe against `wasmtime serve -S
//! cli=y`'s start to first response on the same component. Their warm
//! requests/s are in the `warm` scenario.

use crate::prepare::{Tools, eprintln_status};
use crate::report::median;
use crate::warm::SdkComponents;
use crate::{Cli, Floe, http_get, start_to_first_response, wasmtime_cold};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// One language's hello component.
pub(crate) struct Hello {
    language: &'static str,
    component: PathBuf,
    /// Time the SDK's build command took (none for Rust, which cargo builds
    /// with the other examples).
    build_ms: Option<f64>,
}

/// What was measured for one language in one round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SdkSample {
    pub(crate) language: &'static str,
    pub(crate) size_bytes: u64,
    pub(crate) build_ms: Option<f64>,
    /// Upload -> 201 on a fresh server: validate, compile, store.
    pub(crate) deploy_first_ms: f64,
    /// Upload -> 201 of the same bytes as another function: nothing to
    /// compile.
    pub(crate) deploy_cached_ms: f64,
    /// The first request after the first deploy's 201.
    pub(crate) first_request_ms: f64,
    /// wasmtime serve: process start (compile cache off) to first 200.
    pub(crate) wasmtime_start_to_first_response_ms: Option<f64>,
}

fn timed(command: &mut Command) -> Result<f64> {
    let t0 = Instant::now();
    let out = command.output().with_context(|| format!("{command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// Builds the JavaScript and Python hello examples with their SDKs.
pub(crate) fn build(tools: &Tools) -> Result<Vec<Hello>> {
    let out = tools.root.join("target/bench-sdks");
    std::fs::create_dir_all(&out)?;
    let examples = tools.root.join("functions-examples");
    let js = out.join("js-hello.wasm");
    eprintln_status("building the JavaScript hello (floe-js)");
    let js_ms = timed(
        Command::new("node")
            .arg(tools.root.join("sdk/js/src/cli.js"))
            .arg("build")
            .arg(examples.join("js/hello/app.js"))
            .arg("-o")
            .arg(&js),
    )?;
    let py = out.join("python-hello.wasm");
    eprintln_status("building the Python hello (floe-py)");
    let py_ms = timed(
        Command::new(tools.root.join("target/py-sdk/bin/floe-py"))
            .arg("build")
            .arg(examples.join("python/hello/app.py"))
            .arg("-o")
            .arg(&py),
    )?;
    Ok(vec![
        Hello {
            language: "Rust",
            component: tools.hello.clone(),
            build_ms: None,
        },
        Hello {
            language: "JavaScript",
            component: js,
            build_ms: Some(js_ms),
        },
        Hello {
            language: "Python",
            component: py,
            build_ms: Some(py_ms),
        },
    ])
}

/// The JavaScript and Python components among `hellos`.
pub(crate) fn components(hellos: &[Hello]) -> Result<SdkComponents> {
    let of = |language: &str| {
        hellos
            .iter()
            .find(|h| h.language == language)
            .map(|h| h.component.clone())
            .with_context(|| format!("no {language} hello was built"))
    };
    Ok(SdkComponents {
        js: of("JavaScript")?,
        python: of("Python")?,
    })
}

fn measure(tools: &Tools, hello: &Hello, round: usize) -> Result<SdkSample> {
    let bytes = bytes::Bytes::from(std::fs::read(&hello.component)?);
    let runtime = tokio::runtime::Runtime::new()?;
    // No compile cache: the first deploy compiles.
    let floe = Floe::start(
        tools,
        &format!("sdk-{}-{round}", hello.language),
        &[("FLOE_ENGINE__COMPILE_CACHE", String::new())],
    )?;
    let t0 = Instant::now();
    runtime.block_on(floe.deploy("hello", bytes.clone(), &[]))?;
    let deploy_first = t0.elapsed();
    let url = format!("{}/hello/", floe.server.base);
    let t1 = Instant::now();
    let (status, _) = http_get(&url)?;
    let first = t1.elapsed();
    if status != 200 {
        bail!("{} hello answered {status}", hello.language);
    }
    let t2 = Instant::now();
    runtime.block_on(floe.deploy("hello-again", bytes.clone(), &[]))?;
    let deploy_cached = t2.elapsed();
    drop(floe);

    let wasmtime_start = match &tools.wasmtime {
        Some(_) => Some(
            start_to_first_response(wasmtime_cold(tools, &hello.component)?, "/")?.as_secs_f64()
                * 1e3,
        ),
        None => None,
    };
    Ok(SdkSample {
        language: hello.language,
        size_bytes: bytes.len() as u64,
        build_ms: hello.build_ms,
        deploy_first_ms: deploy_first.as_secs_f64() * 1e3,
        deploy_cached_ms: deploy_cached.as_secs_f64() * 1e3,
        first_request_ms: first.as_secs_f64() * 1e3,
        wasmtime_start_to_first_response_ms: wasmtime_start,
    })
}

/// Runs the scenario.
pub(crate) fn sdks(cli: &Cli, tools: &Tools, hellos: &[Hello]) -> Result<Vec<SdkSample>> {
    let mut samples = Vec::new();
    for round in 0..cli.runs {
        for hello in hellos {
            eprintln_status(&format!(
                "sdk round {}/{}: {}",
                round + 1,
                cli.runs,
                hello.language
            ));
            samples.push(measure(tools, hello, round)?);
        }
    }
    Ok(samples)
}

fn med(samples: &[&SdkSample], f: impl Fn(&SdkSample) -> Option<f64>) -> String {
    let values: Vec<f64> = samples.iter().filter_map(|s| f(s)).collect();
    if values.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.1}", median(&values))
    }
}

/// Prints the table.
pub(crate) fn print(cli: &Cli, samples: &[SdkSample]) {
    println!("\nhello per SDK, {} round(s), medians", cli.runs);
    println!(
        "{:<11} {:>8} {:>9} {:>10} {:>10} {:>9} {:>10}",
        "language", "size MB", "build s", "deploy ms", "cached ms", "first ms", "wt 1st ms",
    );
    for language in ["Rust", "JavaScript", "Python"] {
        let of: Vec<&SdkSample> = samples.iter().filter(|s| s.language == language).collect();
        if of.is_empty() {
            continue;
        }
        println!(
            "{:<11} {:>8.1} {:>9} {:>10} {:>10} {:>9} {:>10}",
            language,
            of[0].size_bytes as f64 / 1e6,
            med(&of, |s| s.build_ms.map(|ms| ms / 1e3)),
            med(&of, |s| Some(s.deploy_first_ms)),
            med(&of, |s| Some(s.deploy_cached_ms)),
            med(&of, |s| Some(s.first_request_ms)),
            med(&of, |s| s.wasmtime_start_to_first_response_ms),
        );
    }
    println!(
        "deploy: upload -> 201 with compilation; cached: the same bytes as another \
         function; first: the first request after the 201; wt 1st: wasmtime serve \
         start -> first 200 with its compile cache off"
    );
}
