//! # floe: an edge function server
//!
//! floe runs WebAssembly components (`wasi:http/incoming-handler`) in
//! isolated wasmtime instances, keeps a pool of them per function, and reuses
//! an instance across requests. Functions are deployed by HTTP upload,
//! compiled once, stored durably and versioned.
//!
//! The server is a library first: [`Floe`] can serve requests in-process
//! ([`Floe::handle`]) for an embedder that owns its own listener, or bind its
//! own data and control planes ([`Floe::bind`]). The `floe` command line, with
//! its control-plane client and project templates, is the `floe-cli` crate,
//! a thin layer over this one.
//!
//! Modules, by responsibility:
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | configuration types, defaults, loading, validation |
//! | [`store`] | durable storage: components, artifacts, function records |
//! | [`engine`] | the wasmtime engine: compile, load artifacts, link, locate exports |
//! | [`bindings`] | host-side types of the `floe:function` WIT package |
//! | [`preinit`] | running `init` at deploy, and snapshotting it |
//! | [`host`] | what functions may import, and per-instance state |
//! | [`pool`] | per-function instance pools: lease, reuse, retire |
//! | [`registry`] | functions and versions: deploy, rollback, configure, delete |
//! | [`dataplane`] | routing requests to functions |
//! | [`api`] | the control plane |
//! | [`metrics`] | counters, histograms, Prometheus output |
//! | [`status`] | errors to HTTP statuses, in one place |
#![deny(missing_docs)]
// Proving the GPU device types Send and Sync goes deep (wgpu-core).
#![recursion_limit = "256"]

pub mod api;
pub mod bindings;
pub mod config;
pub mod dataplane;
pub mod engine;
pub mod gpu;
pub mod host;
pub mod invocations;
pub mod metrics;
pub mod pool;
pub mod preinit;
pub mod registry;
pub mod scaling;
mod server;
pub mod status;
pub mod store;

pub use config::Config;
pub use server::{Floe, Listening, StartError};
