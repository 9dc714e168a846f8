//! End-to-end tests: each starts a real floe server on 127.0.0.1 (ports
//! chosen by the OS), deploys components built from `functions-examples/`,
//! and talks to it over HTTP.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers fail loudly, and print the server's log when a test fails"
)]

mod harness;

mod asynch;

mod broker;

mod cli;
mod cluster;
mod connections;
mod core_set;
mod deploy;
mod durability;
mod embed;
mod event;
mod examples;
mod gpu;
mod hostile;
mod invoke;
mod js;
mod js_events;
mod lifecycle;
mod limits;
mod observe;
mod outbound;
mod p3;
mod p3_events;
mod package;
mod python;
mod python_events;
mod python_p3;
mod scaffold;
mod scaling;
mod sdk;
mod services;
mod tls;
mod tokens;
mod triggers;
mod variables;
