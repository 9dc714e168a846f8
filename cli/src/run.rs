//! The entry point: parse the command line, set up logging and the runtime,
//! run the command, and report its error.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this is the command line's output"
)]

use crate::args::{Cli, Command};
use crate::client::{ClientError, ControlClient};
use crate::{manage, scaffold, serve};
use anyhow::Result;
use clap::Parser;
use floe::Config;
use std::path::Path;
use std::process::ExitCode;

/// Runs the command line with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held to the end: dropping it flushes the lines still queued.
    let _log = crate::log::init();
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
            serve::serve(config, deploys).await
        }
        Command::New {
            name,
            lang,
            kind,
            wasi,
            dir,
            sdk,
        } => new(scaffold::Request {
            name,
            lang,
            kind,
            wasi,
            dir,
            sdk,
        }),
        command => {
            let data_dir = match cli.data_dir {
                Some(dir) => dir,
                None => load_config(cli.config.as_deref())?.server.data_dir,
            };
            let client = ControlClient::discover(&data_dir, cli.ca.as_deref())?;
            manage::manage(&client, command).await
        }
    }
}

/// `floe new`: makes the project and says what it wrote.
fn new(request: scaffold::Request) -> Result<()> {
    let project = scaffold::create(&request)?;
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
