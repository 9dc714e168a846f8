//! init (snapshotted or per instance), cold-start coalescing, pre-freeze and
//! pre-stop.

use crate::harness::{Collector, Server, eventually, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::{HELLO, HOOKS, INIT_FAILS, INIT_RANDOM, INIT_TABLE};
use http::Request;
use http_body_util::Full;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

async fn stats(server: &Server, path: &str) -> Result<serde_json::Value> {
    let r = server.get(path).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(serde_json::from_str(&r.text())?)
}

async fn instances(server: &Server, name: &str) -> Result<Vec<serde_json::Value>> {
    let r = crate::harness::send(
        Request::get(server.control_url(&format!("/v1/functions/{name}/instances")))
            .header("authorization", format!("Bearer {}", server.token))
            .body(Full::<Bytes>::default())?,
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(r.json()["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshotted_init_runs_at_deploy_and_never_per_instance() -> Result<()> {
    let server = Server::start()?;
    let deployed = server.deploy("table", INIT_TABLE, &[]).await?;
    assert_eq!(deployed["init"], "snapshot");
    assert!(deployed["init_ms"].as_u64() > Some(0), "{deployed}");

    // The first request after the deploy finds the tables built...
    let s = stats(&server, "/table/stats").await?;
    assert_eq!(s["init_runs"], 1);
    assert_eq!(s["primes"], 3_001_134);
    assert_eq!(
        server.get("/table/prime?n=49999991").await?.text(),
        "49999991 is prime\n"
    );
    // ...by an init that ran before the instance existed.
    let list = instances(&server, "table").await?;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["init"], "snapshot");
    assert_eq!(list[0]["hooks"]["init"]["calls"], 0);
    assert!(
        s["init_at_ms"].as_u64() < list[0]["started_at_ms"].as_u64(),
        "{s} {}",
        list[0]
    );

    // Fresh instances all start from the snapshot, yet none shares random
    // numbers with another.
    server
        .client()
        .configure("table", &[("reuse".into(), "false".into())])
        .await?;
    let mut seen = HashSet::new();
    for _ in 0..6 {
        let n = server.get("/table/random").await?.text();
        assert!(seen.insert(n.clone()), "random value {n} repeated");
        assert_eq!(
            stats(&server, "/table/stats").await?["init_at_ms"],
            s["init_at_ms"]
        );
    }
    let info = server.client().info("table").await?;
    assert!(info["instances"]["started"].as_u64() >= Some(12));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn with_preinit_instance_init_runs_once_in_each_instance() -> Result<()> {
    let server = Server::start()?;
    let deployed = server
        .deploy(
            "table",
            INIT_TABLE,
            &[("preinit", "instance"), ("reuse", "false")],
        )
        .await?;
    assert_eq!(deployed["init"], "instance");
    for _ in 0..3 {
        let s = stats(&server, "/table/stats").await?;
        assert_eq!(s["init_runs"], 1, "init ran once in this instance");
    }
    let info = server.client().info("table").await?;
    assert_eq!(info["init"], "instance");
    assert_eq!(info["instances"]["started"], 3);

    // Switching to snapshots takes effect without a redeploy.
    server
        .client()
        .configure("table", &[("preinit".into(), "snapshot".into())])
        .await?;
    assert_eq!(server.client().info("table").await?["init"], "snapshot");
    assert_eq!(stats(&server, "/table/stats").await?["init_runs"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_cold_requests_cause_one_initialization() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("table", INIT_TABLE, &[("preinit", "instance")])
        .await?;
    let requests = (0..2).map(|_| {
        let url = server.url("/table/stats");
        tokio::spawn(async move { crate::harness::get(&url).await })
    });
    for r in futures::future::join_all(requests).await {
        assert_eq!(r??.status, 200);
    }
    let info = server.client().info("table").await?;
    assert_eq!(
        info["instances"]["started"], 1,
        "the second request waited for the first instance"
    );
    let list = instances(&server, "table").await?;
    assert_eq!(list[0]["requests"], 2);
    assert_eq!(list[0]["hooks"]["init"]["calls"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn init_that_fails_or_overruns_fails_the_deploy_and_the_old_version_serves() -> Result<()> {
    let server = Server::start()?;
    server.deploy("f", HELLO, &[]).await?;
    let err = server.deploy("f", INIT_FAILS, &[]).await.unwrap_err();
    match err.downcast_ref::<floe_cli::client::ClientError>() {
        Some(floe_cli::client::ClientError::Api {
            status,
            code,
            message,
            ..
        }) => {
            assert_eq!((status.as_u16(), code.as_str()), (422, "init_failed"));
            assert!(
                message.contains("the configuration file config.toml is missing"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let err = server
        .deploy("f", INIT_TABLE, &[("init_timeout", "10ms")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("init_timeout"), "{err}");
    assert_eq!(server.get("/f/").await?.text(), "hello from floe, path=/\n");
    let info = server.client().info("f").await?;
    assert_eq!(info["versions"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_init_that_takes_random_bytes_is_not_snapshotted() -> Result<()> {
    let server = Server::start()?;
    let deployed = server
        .deploy("seeded", INIT_RANDOM, &[("reuse", "false")])
        .await?;
    assert_eq!(deployed["init"], "instance");
    assert!(
        deployed["init_reason"]
            .as_str()
            .unwrap_or("")
            .contains("random"),
        "{deployed}"
    );
    let seeds: HashSet<String> = futures::future::join_all((0..4).map(|_| server.get("/seeded/")))
        .await
        .into_iter()
        .map(|r| r.map(|r| r.text()))
        .collect::<Result<_>>()?;
    assert_eq!(seeds.len(), 4, "every instance seeded itself: {seeds:?}");
    Ok(())
}

/// Lines per instance id: `{kind} instance={id} ...`.
fn by_instance(lines: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        if let Some(id) = line.split(' ').find_map(|kv| kv.strip_prefix("instance=")) {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
    counts
}

async fn hooks_request(
    server: &Server,
    collector: &Collector,
    query: &str,
) -> Result<crate::harness::Reply> {
    send(
        Request::get(server.url(&format!("/hooks/{query}")))
            .header("x-collector", collector.url.as_str())
            .body(Full::<Bytes>::default())?,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_freeze_runs_after_the_last_request_not_between_queued_ones() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[
                ("max_instances", "1"),
                ("allowed_outbound_hosts", &collector.allow()),
            ],
        )
        .await?;
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let (url, to) = (server.url("/hooks/?sleep=150"), collector.url.clone());
            tokio::spawn(async move {
                send(
                    Request::get(url)
                        .header("x-collector", to)
                        .body(Full::<Bytes>::default())?,
                )
                .await
            })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await??.status, 200);
    }
    eventually(Duration::from_secs(10), "a pre-freeze report", || async {
        Ok(!collector.starting("freeze").is_empty())
    })
    .await?;
    // One freeze, after all three: they queued and were handed over directly.
    let freezes = collector.starting("freeze");
    assert_eq!(freezes.len(), 1, "{freezes:?}");
    assert!(freezes[0].contains("pending=3 served=3"), "{freezes:?}");
    let list = instances(&server, "hooks").await?;
    assert_eq!(list[0]["state"], "frozen");
    assert_eq!(list[0]["hooks"]["pre_freeze"]["calls"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_stop_runs_once_on_idle_ttl_redeploy_and_delete() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;

    // Idle TTL.
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
    hooks_request(&server, &collector, "").await?;
    eventually(
        Duration::from_secs(10),
        "pre-stop after idle_ttl",
        || async { Ok(collector.starting("stop").len() == 1) },
    )
    .await?;

    // Redeploy (a new version of the function).
    server
        .client()
        .configure("hooks", &[("idle_ttl".into(), "5m".into())])
        .await?;
    hooks_request(&server, &collector, "").await?;
    server.deploy("hooks", HELLO, &[]).await?;
    eventually(
        Duration::from_secs(10),
        "pre-stop after a redeploy",
        || async { Ok(collector.starting("stop").len() == 2) },
    )
    .await?;

    // Delete.
    server
        .deploy(
            "hooks",
            HOOKS,
            &[("allowed_outbound_hosts", &collector.allow())],
        )
        .await?;
    hooks_request(&server, &collector, "").await?;
    server.client().delete("hooks").await?;
    eventually(
        Duration::from_secs(10),
        "pre-stop after a delete",
        || async { Ok(collector.starting("stop").len() == 3) },
    )
    .await?;

    let stops = collector.starting("stop");
    assert!(
        by_instance(&stops).values().all(|n| *n == 1),
        "exactly once per instance: {stops:?}"
    );
    assert_eq!(by_instance(&stops).len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_stop_runs_at_shutdown() -> Result<()> {
    let mut server = Server::start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[("allowed_outbound_hosts", &collector.allow())],
        )
        .await?;
    hooks_request(&server, &collector, "").await?;
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(20)))?;
    assert!(status.success());
    let stops = collector.starting("stop");
    assert_eq!(stops.len(), 1, "{:?}", collector.lines());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_hook_is_cut_at_its_limit_and_the_server_carries_on() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[
                ("hook_timeout", "300ms"),
                ("allowed_outbound_hosts", &collector.allow()),
            ],
        )
        .await?;
    let r = hooks_request(&server, &collector, "?hang=freeze").await?;
    assert_eq!(r.status, 200);
    eventually(
        Duration::from_secs(10),
        "the hung instance to be discarded",
        || async { Ok(server.client().info("hooks").await?["instances"]["live"] == 0) },
    )
    .await?;
    let metrics = crate::harness::get(&server.control_url("/metrics"))
        .await?
        .text();
    assert!(
        metrics.contains("floe_hook_failures_total{function=\"hooks\",hook=\"pre-freeze\"} 1"),
        "{metrics}"
    );
    // No pre-stop for an instance whose hook overran; the next request is
    // served by a new instance.
    assert!(collector.starting("stop").is_empty());
    let r = hooks_request(&server, &collector, "").await?;
    assert_eq!(r.status, 200);
    assert_eq!(
        server.client().info("hooks").await?["instances"]["started"],
        2
    );

    // A hanging pre-stop does not hold up a delete.
    hooks_request(&server, &collector, "?hang=stop").await?;
    server.client().delete("hooks").await?;
    assert_eq!(server.get("/hooks/").await?.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_with_the_wrong_signature_are_refused_at_deploy() -> Result<()> {
    let server = Server::start()?;
    let component = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $lc (export "init" (func $f)))
            (export "floe:function/lifecycle@0.1.0" (instance $lc))
        )"#,
    )?;
    let err = server
        .client()
        .deploy("bad-hooks", Bytes::from(component), &[])
        .await
        .unwrap_err();
    match err {
        floe_cli::client::ClientError::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((status.as_u16(), code.as_str()), (422, "missing_export"));
            assert!(
                message.contains("init") && message.contains("result<_, string>"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hook_calls_are_metered() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "hooks",
            HOOKS,
            &[("allowed_outbound_hosts", &collector.allow())],
        )
        .await?;
    hooks_request(&server, &collector, "").await?;
    eventually(Duration::from_secs(10), "a pre-freeze", || async {
        Ok(!collector.starting("freeze").is_empty())
    })
    .await?;
    // The hook is counted when it returns, a moment after its report.
    let url = server.control_url("/metrics");
    eventually(Duration::from_secs(10), "the pre-freeze counted", || {
        let url = url.clone();
        async move {
            let metrics = crate::harness::get(&url).await?.text();
            Ok(metrics.contains("floe_hook_calls_total{function=\"hooks\",hook=\"pre-freeze\"} 1"))
        }
    })
    .await?;
    let metrics = crate::harness::get(&url).await?.text();
    assert!(
        metrics
            .contains("floe_hook_duration_seconds_count{function=\"hooks\",hook=\"pre-freeze\"} 1")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_deployed_before_reuse_their_compiled_snapshot_and_settings_still_count() -> Result<()>
{
    let server = Server::start()?;
    let first = server.deploy("table", INIT_TABLE, &[]).await?;
    assert_eq!(first["init"], "snapshot");
    let s = stats(&server, "/table/stats").await?;

    // The same bytes as another function: the snapshot taken for the first
    // serves it, with nothing compiled and no init run.
    let again = server.deploy("table-two", INIT_TABLE, &[]).await?;
    assert_eq!(again["init"], "snapshot", "{again}");
    assert_eq!(again["compile_ms"], 0, "{again}");
    assert_eq!(again["init_ms"], first["init_ms"], "{again}");
    let t = stats(&server, "/table-two/stats").await?;
    assert_eq!(t["init_runs"], 1);
    assert_eq!(t["init_at_ms"], s["init_at_ms"], "the one snapshot");
    assert_eq!(t["primes"], 3_001_134);

    // Back to bytes the function had before, as a new version.
    server.deploy("table", HELLO, &[]).await?;
    let back = server.deploy("table", INIT_TABLE, &[]).await?;
    assert_eq!(
        (back["version"].as_u64(), back["compile_ms"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        stats(&server, "/table/stats").await?["init_at_ms"],
        s["init_at_ms"]
    );

    // Another memory limit is another deploy: init runs again.
    let other = server
        .deploy("table-three", INIT_TABLE, &[("memory", "96MiB")])
        .await?;
    assert_eq!(other["init"], "snapshot");
    let u = stats(&server, "/table-three/stats").await?;
    assert_ne!(u["init_at_ms"], s["init_at_ms"], "{u}");

    // The reused versions survive a restart.
    let mut server = server;
    server.restart()?;
    assert_eq!(
        stats(&server, "/table-two/stats").await?["primes"],
        3_001_134
    );
    Ok(())
}
