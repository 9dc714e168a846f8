//! Metrics, logs and the instance view.

use crate::harness::Server;
use anyhow::Result;
use floe_tests::fixtures::{ECHO, HELLO, TRAP};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_errors_and_instances() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    server.deploy("trap", TRAP, &[]).await?;
    for _ in 0..3 {
        server.get("/hello/").await?;
    }
    server.get("/trap/trap").await?;
    server.get("/nobody/").await?;
    let metrics = crate::harness::get(&server.control_url("/metrics")).await?;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for line in [
        "floe_requests_total{function=\"hello\",status=\"2xx\"} 3",
        "floe_requests_total{function=\"trap\",status=\"5xx\"} 1",
        "floe_request_errors_total{function=\"trap\",code=\"trap\"} 1",
        "floe_request_duration_seconds_count{function=\"hello\"} 3",
        "floe_instances{function=\"hello\",version=\"1\",state=\"idle\"} 1",
        "floe_functions 2",
        "floe_deploys_total 2",
        "floe_unrouted_requests_total 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    Ok(())
}

/// `/metrics` is one OpenMetrics document: its content type, one `# EOF` at
/// the end, the async invocation figures in it, counters described without
/// `_total`, and each family described once.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_one_openmetrics_document() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    server.get("/hello/").await?;
    let metrics = crate::harness::get(&server.control_url("/metrics")).await?;
    assert_eq!(metrics.status, 200);
    let content_type = metrics
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = metrics.text();
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    for line in [
        "# TYPE floe_requests counter",
        "# TYPE floe_request_duration_seconds histogram",
        "# TYPE floe_async_queue_depth gauge",
        "floe_async_queue_depth 0",
        "floe_async_invocations_total{event=\"accepted\"} 0",
        "floe_request_duration_seconds_bucket{le=\"+Inf\",function=\"hello\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let described = families.len();
    families.sort_unstable();
    families.dedup();
    assert_eq!(
        families.len(),
        described,
        "a family described twice in\n{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_output_is_logged_with_its_function() -> Result<()> {
    let server = Server::start()?;
    server.deploy("echo", ECHO, &[]).await?;
    server.get("/echo/logged-line").await?;
    crate::harness::eventually(
        std::time::Duration::from_secs(5),
        "the guest's line in the log",
        || async {
            Ok(server.log().lines().any(|l| {
                l.contains("echo: method=GET path=/logged-line")
                    && l.contains("function=echo")
                    && l.contains("stream=\"stdout\"")
            }))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_instance_view_shows_each_instance() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    for _ in 0..5 {
        server.get("/hello/").await?;
    }
    let info = server.client().info("hello").await?;
    let list = info["instance_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["requests"], 5);
    assert_eq!(list[0]["state"], "idle");
    assert!(list[0]["memory_bytes"].as_u64() > Some(0));
    Ok(())
}

/// Per-instance series are capped; the instance view still lists every
/// instance.
#[tokio::test(flavor = "multi_thread")]
async fn per_instance_series_are_capped() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__MAX_INSTANCE_SERIES", "2")
        .start()?;
    server
        .deploy("hello", HELLO, &[("min_instances", "4")])
        .await?;
    crate::harness::eventually(
        std::time::Duration::from_secs(20),
        "four warm instances",
        || async { Ok(server.client().info("hello").await?["instances"]["live"] == 4) },
    )
    .await?;
    let text = crate::harness::get(&server.control_url("/metrics"))
        .await?
        .text();
    let series = text
        .lines()
        .filter(|l| l.starts_with("floe_instance_invocations_total{"))
        .count();
    assert_eq!(series, 2, "{text}");
    let view = server.client().instances("hello").await?;
    assert_eq!(view["instances"].as_array().map_or(0, Vec::len), 4);
    Ok(())
}
