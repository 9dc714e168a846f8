//! `floe serve`: the server, from the [`floe`] library, until a signal.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this is the command line's output"
)]

use anyhow::{Context, Result};
use floe::{Config, Floe};
use std::path::Path;

/// Opens the server, deploys `deploys` (`(name, file)`), binds its planes and
/// runs until Ctrl-C or SIGTERM.
pub(crate) async fn serve(config: Config, deploys: Vec<(String, String)>) -> Result<()> {
    let data_dir = config.server.data_dir.clone();
    // Every connection is a file descriptor: take all the process may have
    // (the soft limit is often 1,024, far below `max_connections`).
    let connections = config.server.max_connections as u64;
    if let Ok(got) = rlimit::increase_nofile_limit(connections.saturating_mul(2) + 1024)
        && got < connections + 256
    {
        eprintln!(
            "floe: warning: open files are limited to {got}, too few for max_connections ({connections}); raise `ulimit -n`"
        );
    }
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
    println!("floe: data plane listening on {}", listening.data_url());
    println!(
        "floe: control plane listening on {}",
        listening.control_url()
    );
    // The token itself never goes to the output (container logs keep it).
    let token_file = data_dir.join("token");
    let made = if floe.token_was_created() {
        "created"
    } else {
        "kept"
    };
    println!(
        "floe: control-plane token {made} in {} (readable by this user only)",
        token_file.display()
    );
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
