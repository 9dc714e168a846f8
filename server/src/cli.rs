//! The `floe` command line: run a server, and manage its functions.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this is the command line's output"
)]

use crate::client::{ClientError, ControlClient};
use crate::config::env;
use crate::scaffold;
use crate::{Config, Floe};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "An edge function server for WebAssembly components"
)]
struct Cli {
    /// Configuration file (default: the embedded config/floe.toml).
    #[arg(long, global = true, env = env::CONFIG)]
    config: Option<PathBuf>,
    /// Data directory of the server to talk to (default: from the configuration).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Deploy a component at startup: NAME=FILE (repeatable).
        #[arg(long = "deploy", value_name = "NAME=FILE", value_parser = parse_pair)]
        deploys: Vec<(String, String)>,
    },
    /// Deploy a component as a new version of a function.
    Deploy {
        /// The function's name.
        name: String,
        /// The component file (.wasm).
        file: PathBuf,
        /// A setting, e.g. memory=64MiB, timeout=5s, reuse=false (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
        settings: Vec<(String, String)>,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List functions.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one function: versions, settings, instances.
    Info {
        /// The function's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a function.
    Rm {
        /// The function's name.
        name: String,
    },
    /// Make the previous version (or --version N) active.
    Rollback {
        /// The function's name.
        name: String,
        /// The version to make active.
        #[arg(long)]
        version: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a function project from a template, ready to build.
    New {
        /// The function's name (also the project's directory, unless --dir).
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// The kind of function.
        #[arg(long, value_enum, default_value = "http")]
        kind: scaffold::Kind,
        /// Where to make the project (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The sdk/ folder of a floe checkout (default: the one floe was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Change a function's settings.
    Config {
        /// The function's name.
        name: String,
        /// A setting, e.g. memory=64MiB (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair, required = true)]
        settings: Vec<(String, String)>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Runs the command line with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("floe: error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe: error: {e:#}");
            if let Some(ClientError::Api {
                details: Some(d), ..
            }) = e.downcast_ref::<ClientError>()
            {
                eprintln!("{}", serde_json::to_string_pretty(d).unwrap_or_default());
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { deploys } => {
            let mut config = load_config(cli.config.as_deref())?;
            if let Some(dir) = cli.data_dir {
                config.server.data_dir = dir;
            }
            serve(config, deploys).await
        }
        Command::New {
            name,
            lang,
            kind,
            dir,
            sdk,
        } => {
            let project = scaffold::create(&scaffold::Request {
                name,
                lang,
                kind,
                dir,
                sdk,
            })?;
            println!("created {}", project.dir.display());
            for file in &project.files {
                println!("  {}", file.display());
            }
            println!(
                "build it in {} with: {}",
                project.dir.display(),
                project.build
            );
            Ok(())
        }
        command => {
            let data_dir = match cli.data_dir {
                Some(dir) => dir,
                None => load_config(cli.config.as_deref())?.server.data_dir,
            };
            let client = ControlClient::discover(&data_dir)?;
            manage(&client, command).await
        }
    }
}

async fn serve(config: Config, deploys: Vec<(String, String)>) -> Result<()> {
    let data_dir = config.server.data_dir.clone();
    let floe = Floe::new(config).await?;
    for (name, file) in deploys {
        let d = floe.deploy_file(&name, Path::new(&file)).await?;
        let what = if d.created {
            "deployed"
        } else {
            "already active"
        };
        println!(
            "floe: {what}: {} version {} ({})",
            d.name, d.version, d.digest
        );
    }
    let listening = floe.bind().await?;
    println!(
        "floe: data plane listening on http://{}",
        listening.data_addr()
    );
    println!(
        "floe: control plane listening on http://{}",
        listening.control_addr()
    );
    let token_file = data_dir.join("token");
    if floe.token_was_created() {
        println!(
            "floe: control-plane token (saved in {}): {}",
            token_file.display(),
            floe.token()
        );
    } else {
        println!("floe: control-plane token is in {}", token_file.display());
    }
    wait_for_signal().await?;
    println!("floe: shutting down");
    listening.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}

async fn manage(client: &ControlClient, command: Command) -> Result<()> {
    match command {
        Command::Serve { .. } | Command::New { .. } => {
            bail!("not a management command")
        }
        Command::Deploy {
            name,
            file,
            settings,
            json,
        } => {
            let bytes = tokio::fs::read(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let (status, body) = client.deploy(&name, Bytes::from(bytes), &settings).await?;
            if json {
                return print_json(&body);
            }
            let verb = if status == 201 {
                "deployed"
            } else {
                "unchanged"
            };
            println!(
                "{verb} {} version {} ({}, {} bytes, compiled in {} ms)",
                body["name"].as_str().unwrap_or(&name),
                body["version"],
                body["digest"].as_str().unwrap_or(""),
                body["size"],
                body["compile_ms"],
            );
        }
        Command::Ls { json } => {
            let body = client.list().await?;
            if json {
                return print_json(&body);
            }
            let functions = body["functions"].as_array().cloned().unwrap_or_default();
            if functions.is_empty() {
                println!("no functions deployed");
                return Ok(());
            }
            println!(
                "{:<24} {:>7} {:<12} {:>5} {:>5} {:<19}",
                "NAME", "VERSION", "STATUS", "LIVE", "IDLE", "DIGEST"
            );
            for f in functions {
                println!(
                    "{:<24} {:>7} {:<12} {:>5} {:>5} {:<19}",
                    f["name"].as_str().unwrap_or(""),
                    f["active_version"],
                    f["status"].as_str().unwrap_or(""),
                    f["instances"]["live"],
                    f["instances"]["idle"],
                    short_digest(&f["digest"]),
                );
            }
        }
        Command::Info { name, json } => {
            let f = client.info(&name).await?;
            if json {
                return print_json(&f);
            }
            println!(
                "{} ({})",
                f["name"].as_str().unwrap_or(&name),
                f["status"].as_str().unwrap_or("")
            );
            println!(
                "  active version: {} ({})",
                f["active_version"],
                f["digest"].as_str().unwrap_or("")
            );
            println!(
                "  instances: {} live, {} idle, {} busy",
                f["instances"]["live"], f["instances"]["idle"], f["instances"]["busy"]
            );
            if let Some(settings) = f["settings"].as_object() {
                println!("  settings:");
                for (k, v) in settings {
                    println!("    {k} = {v}");
                }
            }
            println!("  versions:");
            for v in f["versions"].as_array().cloned().unwrap_or_default() {
                println!(
                    "    {:>4}  {}  {} bytes",
                    v["version"],
                    v["digest"].as_str().unwrap_or(""),
                    v["size"]
                );
            }
        }
        Command::Rm { name } => {
            client.delete(&name).await?;
            println!("deleted {name}");
        }
        Command::Rollback {
            name,
            version,
            json,
        } => {
            let body = client.rollback(&name, version).await?;
            if json {
                return print_json(&body);
            }
            println!(
                "{name} is now at version {} ({})",
                body["version"],
                body["digest"].as_str().unwrap_or("")
            );
        }
        Command::Config {
            name,
            settings,
            json,
        } => {
            let body = client.configure(&name, &settings).await?;
            if json {
                return print_json(&body);
            }
            println!("{name}: settings updated");
            if let Some(settings) = body["settings"].as_object() {
                for (k, v) in settings {
                    println!("  {k} = {v}");
                }
            }
        }
    }
    Ok(())
}

fn short_digest(v: &Value) -> String {
    v.as_str()
        .map(|d| d.chars().take(19).collect())
        .unwrap_or_default()
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
