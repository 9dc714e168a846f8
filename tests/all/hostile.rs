//! Guests that try to make the host hold memory for them: header fields,
//! pollables and outgoing requests created in a loop, resources leaked
//! across requests.

use crate::harness::Server;
use anyhow::Result;
use floe_tests::fixtures::{HELLO, HOST_HOG};

/// The server's peak resident memory so far (`VmHWM`), in KiB.
fn peak_rss_kib(server: &Server) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_bombs_answer_resource_limit_and_the_server_stays_small() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("hog", HOST_HOG, &[("memory", "64MiB")])
        .await?;
    server.deploy("hello", HELLO, &[]).await?;
    assert_eq!(server.get("/hog/").await?.status, 200);
    let before = peak_rss_kib(&server);
    for bomb in ["/hog/fields", "/hog/pollables", "/hog/requests"] {
        for _ in 0..3 {
            let r = server.get(bomb).await?;
            assert_eq!(r.status, 500, "{bomb}: {}", r.text());
            assert_eq!(r.code(), "resource_limit", "{bomb}");
            // Other functions are served meanwhile.
            assert_eq!(server.get("/hello/").await?.status, 200);
        }
    }
    if let (Some(before), Some(after)) = (before, peak_rss_kib(&server)) {
        let grown_mib = after.saturating_sub(before) / 1024;
        eprintln!("peak RSS grew by {grown_mib} MiB under nine resource bombs");
        // The function's memory limit plus a small constant.
        assert!(grown_mib < 64 + 48, "peak RSS grew by {grown_mib} MiB");
    }
    let metrics = crate::harness::get(&server.control_url("/metrics"))
        .await?
        .text();
    assert!(
        metrics.contains("floe_request_errors_total{function=\"hog\",code=\"resource_limit\"} 9"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_keeps_resources_after_its_call_is_not_reused() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("hog", HOST_HOG, &[("max_instances", "1")])
        .await?;
    let instance = |server: &Server| {
        let client = server.client();
        async move {
            let view = client.instances("hog").await?;
            anyhow::Ok(view["instances"][0]["id"].as_u64())
        }
    };
    // Well-behaved calls reuse one instance.
    for _ in 0..3 {
        assert_eq!(server.get("/hog/").await?.status, 200);
    }
    let first = instance(&server).await?;
    assert!(first.is_some());
    assert_eq!(instance(&server).await?, first);
    // A call that leaves more fields behind than `max_kept_resources` (128)
    // retires it.
    assert_eq!(server.get("/hog/leak?n=200").await?.status, 200);
    crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "the leaking instance to be gone",
        || async { Ok(instance(&server).await? != first) },
    )
    .await?;
    assert_eq!(server.get("/hog/").await?.status, 200);
    assert_ne!(instance(&server).await?, first);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_output_past_its_rate_is_dropped_and_counted() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__GUEST_LOG_RATE", "1")
        .env("FLOE_LIMITS__GUEST_LOG_BURST", "10")
        .start()?;
    server
        .deploy("hog", HOST_HOG, &[("reuse", "false")])
        .await?;
    assert_eq!(server.get("/hog/log?n=5000").await?.status, 200);
    crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "the dropped lines reported",
        || async { Ok(server.log().contains("lines dropped (guest_log_rate)")) },
    )
    .await?;
    let log = server.log();
    let kept = log.lines().filter(|l| l.contains("line ")).count();
    assert!((10..=12).contains(&kept), "{kept} guest lines logged");
    assert!(
        log.contains("dropped=4989") || log.contains("dropped=499"),
        "{log}"
    );
    Ok(())
}
