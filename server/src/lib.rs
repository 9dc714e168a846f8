//! # floe: an edge function server
//!
//! floe runs WebAssembly components (`wasi:http/incoming-handler`) in
//! isolated wasmtime instances, keeps a pool of them per function, and reuses
//! an instance across requests. Functions are deployed by HTTP upload,
//! compiled once, stored durably and versioned.
//!
//! The server is a library first: [`Floe`] can serve requests in-process
//! ([`Floe::handle`]) for an embedder that owns its own listener, or bind its
//! own data and control planes ([`Floe::bind`]). The `floe` binary is a thin
//! command line over it.
//!
//! Modules, in layers: each imports only from the layers below it
//! (`scripts/check-layers` fails on an upward import or a cycle).
//!
//! | layer | module | owns |
//! | --- | --- | --- |
//! | wiring | `server` | [`Floe`]: the pieces built once, in order; listeners (HTTP, HTTPS) |
//! | front ends | [`api`] | the control plane: endpoints, tokens and their scopes |
//! | | [`dataplane`] | routing requests to functions |
//! | event sources | [`triggers`] | cron and MQTT triggers: they invoke event functions, and tell each outbox its broker |
//! | | [`invocations`] | async invocations; events that arrive over HTTP |
//! | serving | [`invoke`] | one request or event on a function: deadline, limits, the call, the outcome, metering |
//! | | [`cluster`] | cluster mode: etcd records, OCI registry bytes, convergence, the node list |
//! | functions | [`registry`] | functions and versions: deploy, rollback, configure, delete; the [`registry::Storage`] boundary |
//! | | [`preinit`] | running `init` at deploy, and snapshotting it |
//! | | [`scaling`] | the autoscaler: a pure policy and its driver |
//! | instances | [`pool`] | per-function instance pools: lease, reuse, retire, budget |
//! | | [`runtime`] | an instance's store, deadline and failed-call classification |
//! | wasmtime | [`engine`] | the wasmtime engine: compile, load artifacts, link, locate exports |
//! | | [`host`] | what functions may import, and per-instance store data |
//! | | [`bindings`] | host-side types of the `floe:function` WIT package |
//! | | [`gpu`] | the server's GPU device for `floe:function/gpu` |
//! | | [`outbox`] | store-and-forward MQTT publishing for `floe:function/mqtt` |
//! | leaves | [`store`] | durable files: components, artifacts, function records, token hashes |
//! | | [`metrics`] | counters, histograms, Prometheus output |
//! | | [`mqtt`] | connecting to MQTT brokers |
//! | | [`config`] | configuration types, defaults, loading, validation |
//! | | [`clock`] | wall-clock time as floe records it |
//! | | [`status`] | error codes: status, string, message, log level |
//!
//! The `floe` command line (with its control-plane client and project
//! templates) is the `floe-cli` crate, built on this library.
#![deny(missing_docs)]
// Proving the GPU device types Send and Sync goes deep (wgpu-core).
#![recursion_limit = "256"]

pub mod api;
pub mod bindings;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dataplane;
pub mod engine;
pub mod gpu;
pub mod host;
pub mod invocations;
pub mod invoke;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod pool;
pub mod preinit;
pub mod registry;
pub mod runtime;
pub mod scaling;
mod server;
pub mod status;
pub mod store;
pub mod triggers;

pub use config::Config;
pub use server::{Floe, Listening, StartError, TlsError};
