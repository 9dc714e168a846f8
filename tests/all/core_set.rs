//! The core end-to-end set, for a floe started some other way than the
//! tests' own build: deploy, invoke, a trap, a timeout, a memory limit, a
//! snapshotted init, a hook, and a restart. The Debian package's test runs
//! it against the installed binary under its unit's system-call filter.

use crate::harness::{Collector, Server, eventually, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::{HELLO, HOOKS, INIT_TABLE, MEMORY_HOG, SPIN, TRAP};
use http::Request;
use http_body_util::Full;
use std::time::Duration;

/// Runs the set against `server`, which it restarts once; returns it.
pub(crate) async fn run(mut server: Server) -> Result<Server> {
    server.deploy("hello", HELLO, &[]).await?;
    let r = server.get("/hello/").await?;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "hello from floe, path=/\n")
    );

    server.deploy("trap", TRAP, &[]).await?;
    let r = server.get("/trap/trap").await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (500, "trap"));
    assert_eq!(server.get("/trap/ok").await?.text(), "ok\n");

    server.deploy("spin", SPIN, &[("timeout", "1s")]).await?;
    let r = server.get("/spin/").await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (504, "timeout"));

    server
        .deploy("hog", MEMORY_HOG, &[("memory", "32MiB")])
        .await?;
    assert_eq!(server.get("/hog/?mb=4").await?.text(), "held 4 MiB\n");
    let r = server.get("/hog/?mb=64").await?;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (500, "memory_limit")
    );

    let deployed = server.deploy("table", INIT_TABLE, &[]).await?;
    assert_eq!(deployed["init"], "snapshot", "{deployed}");
    let stats: serde_json::Value = serde_json::from_str(&server.get("/table/stats").await?.text())?;
    assert_eq!(
        (stats["init_runs"].as_u64(), stats["primes"].as_u64()),
        (Some(1), Some(3_001_134))
    );

    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[
                ("idle_ttl", "1s"),
                ("allowed_outbound_hosts", &collector.allow()),
            ],
        )
        .await?;
    let r = send(
        Request::get(server.url("/hooks/"))
            .header("x-collector", collector.url.as_str())
            .body(Full::<Bytes>::default())?,
    )
    .await?;
    assert_eq!(r.status, 200);
    eventually(
        Duration::from_secs(20),
        "pre-stop after idle_ttl",
        || async { Ok(collector.starting("stop").len() == 1) },
    )
    .await?;

    server.restart()?;
    assert_eq!(server.get("/hello/").await?.status, 200);
    let stats: serde_json::Value = serde_json::from_str(&server.get("/table/stats").await?.text())?;
    assert_eq!(
        stats["init_runs"], 1,
        "the snapshot is used after a restart"
    );
    Ok(server)
}
