//! The command line's grammar: commands, arguments and flags.

use crate::scaffold;
use clap::{Parser, Subcommand, ValueEnum};
use floe::config::env;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "An edge function server for WebAssembly components"
)]
pub(crate) struct Cli {
    /// Configuration file (default: the embedded config/floe.toml).
    #[arg(long, global = true, env = env::CONFIG)]
    pub(crate) config: Option<PathBuf>,
    /// Data directory of the server to talk to (default: from the configuration).
    #[arg(long, global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// PEM file of certificates to trust for an https control plane, beside
    /// the public roots and the certificate the server records in its data
    /// directory.
    #[arg(long, global = true, env = env::CA, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// The component file (.wasm), or a component in the cluster's
        /// registry: oci://HOST/REPOSITORY@sha256:... or oci://HOST/REPOSITORY:TAG.
        file: PathBuf,
        /// A setting, e.g. memory=64MiB, timeout=5s, reuse=false (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
        settings: Vec<(String, String)>,
        /// In a cluster: answer once every live node serves the new version,
        /// waiting at most this long (e.g. 5s).
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Store a component in the cluster's registry without deploying it;
    /// prints the oci:// reference `floe deploy` takes.
    Push {
        /// The function it belongs to (its repository).
        name: String,
        /// The component file (.wasm).
        file: PathBuf,
        /// A tag for it in the registry.
        #[arg(long)]
        tag: Option<String>,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List the cluster's live nodes and the version each serves.
    Nodes {
        /// Print JSON.
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
        /// The WASI release: p2, or p3 (Rust and Python: many requests at
        /// once per instance).
        #[arg(long, value_enum, default_value = "p2")]
        wasi: scaffold::Wasi,
        /// Where to make the project (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The sdk/ folder of a floe checkout (default: the one floe was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Create, list and revoke scoped control-plane tokens (needs an admin token).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Change a function's settings.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["settings", "vars", "secrets", "unset"])))]
    Config {
        /// The function's name.
        name: String,
        /// A setting, e.g. memory=64MiB (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
        settings: Vec<(String, String)>,
        /// A variable the function reads with wasi:config/store (repeatable).
        #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_pair)]
        vars: Vec<(String, String)>,
        /// A secret, read the same way but sealed at rest and never shown:
        /// KEY=@FILE reads the value from FILE (a trailing newline is
        /// dropped), KEY=VALUE takes it as given (repeatable).
        #[arg(long = "secret", value_name = "KEY=@FILE", value_parser = parse_pair)]
        secrets: Vec<(String, String)>,
        /// Removes a variable or secret (repeatable).
        #[arg(long = "unset", value_name = "KEY")]
        unset: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `floe token ...`.
#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token; it is printed once and cannot be shown again.
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        scope: Scope,
        /// For deploy tokens: the start of the names of the functions it may
        /// manage ("" for every function).
        #[arg(long)]
        prefix: Option<String>,
        /// A label for people, e.g. ci.
        #[arg(long)]
        name: Option<String>,
        /// Print the server's JSON answer (the token included).
        #[arg(long)]
        json: bool,
    },
    /// List the created tokens (never their secrets).
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it is refused from the next request on.
    Revoke {
        /// The token's id (the ID column of `floe token ls`).
        id: String,
    },
}

/// What a token may do.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Scope {
    /// Everything, tokens included.
    Admin,
    /// Deploy, configure, roll back, delete and invoke functions with the
    /// token's prefix.
    Deploy,
    /// Read everything: lists, views, invocations, metrics.
    Read,
}

impl Scope {
    /// The scope as the server spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Deploy => "deploy",
            Self::Read => "read",
        }
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}
