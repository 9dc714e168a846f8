//! # floe-cli: the `floe` command line
//!
//! The `floe` binary runs a server (`floe serve`, over the [`floe`] library),
//! manages a running server's functions through its control plane (`deploy`,
//! `ls`, `info`, `rm`, `rollback`, `config`) and its scoped tokens (`token
//! create`, `token ls`, `token revoke`), and starts function projects from
//! templates (`floe new`).
//!
//! Modules, by responsibility:
//!
//! | module | owns |
//! | --- | --- |
//! | [`client`] | a client for the control plane, found from the data directory or `FLOE_URL`/`FLOE_TOKEN` |
//! | [`tls`] | HTTPS to the control plane: the certificates trusted, the connector |
//! | [`scaffold`] | `floe new`: projects from the templates in `cli/templates/` |
//! | `args` | the command line's commands and flags (clap) |
//! | `run` | the entry point: parse, log, run a command, report its error |
//! | `log` | the server's log lines: text, or for journald under systemd |
//! | `serve` | `floe serve` |
//! | `manage` | the management commands and what they print |
//! | `table` | plain text tables for the listings |
#![deny(missing_docs)]

mod args;
pub mod client;
mod log;
mod manage;
mod run;
pub mod scaffold;
mod serve;
mod table;
pub mod tls;

pub use run::main;
