//! Outbound HTTP from functions under the server's and the function's
//! policy. Every request here goes to loopback: refusals are shown with
//! loopback targets, and the classification of private, link-local and
//! metadata ranges is unit-tested in `host::outbound` without sending
//! anything.

use crate::harness::{Collector, Reply, Server, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::FETCH;
use http::Request;
use http_body_util::Full;

/// What `fetch` answers when asked to GET `url`.
async fn fetch(server: &Server, path: &str, url: &str) -> Result<Reply> {
    send(
        Request::get(server.url(&format!("/fetch{path}")))
            .header("x-fetch-url", url)
            .body(Full::<Bytes>::default())?,
    )
    .await
}

async fn metric(server: &Server, series: &str) -> Result<Option<String>> {
    let text = crate::harness::get(&server.control_url("/metrics"))
        .await?
        .text();
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned)))
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_in_every_form_is_refused_unless_the_allow_list_names_it() -> Result<()> {
    let server = Server::start()?;
    let collector = Collector::start().await?;
    server.deploy("fetch", FETCH, &[]).await?;
    let control = server.control.port();
    let collector_port = collector
        .allow()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let forms = [
        format!("http://127.0.0.1:{control}/v1/functions"),
        format!("http://localhost:{control}/v1/functions"),
        format!("http://[::1]:{control}/v1/functions"),
        format!("http://2130706433:{control}/v1/functions"),
        format!("http://[::ffff:127.0.0.1]:{control}/v1/functions"),
        format!("http://127.1:{control}/v1/functions"),
        format!("http://0.0.0.0:{control}/v1/functions"),
        collector.url.clone(),
        format!("http://localhost:{collector_port}/collect"),
        format!("http://2130706433:{collector_port}/collect"),
        format!("http://[::ffff:7f00:1]:{collector_port}/collect"),
    ];
    for url in &forms {
        let r = fetch(&server, "/", url).await?;
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        assert_eq!(r.text(), "error=ErrorCode::HttpRequestDenied\n", "{url}");
    }
    assert!(collector.lines().is_empty(), "{:?}", collector.lines());
    assert_eq!(
        metric(
            &server,
            "floe_outbound_requests_total{function=\"fetch\",outcome=\"denied\"}"
        )
        .await?,
        Some(forms.len().to_string())
    );
    assert!(server.log().contains("outbound request denied"));

    // Named, the collector is reached, by name or address; the control plane
    // stays closed even when named.
    let allow = format!(
        "{},http://localhost:{collector_port},http://127.0.0.1:{control}",
        collector.allow()
    );
    server
        .client()
        .configure("fetch", &[("allowed_outbound_hosts".into(), allow)])
        .await?;
    let r = fetch(&server, "/", &collector.url).await?;
    assert_eq!(r.text(), "status=200\nok", "{}", r.text());
    let by_name = format!("http://localhost:{collector_port}/collect");
    let r = fetch(&server, "/", &by_name).await?;
    assert_eq!(r.text(), "status=200\nok", "{}", r.text());
    assert_eq!(collector.lines().len(), 2);
    let r = fetch(&server, "/", &format!("http://127.0.0.1:{control}/healthz")).await?;
    assert_eq!(r.text(), "error=ErrorCode::HttpRequestDenied\n");
    // Another port of the same host is not named.
    let r = fetch(
        &server,
        "/",
        &format!("http://127.0.0.1:{}/", server.data.port()),
    )
    .await?;
    assert_eq!(r.text(), "error=ErrorCode::HttpRequestDenied\n");
    assert_eq!(
        metric(
            &server,
            "floe_outbound_requests_total{function=\"fetch\",outcome=\"sent\"}"
        )
        .await?,
        Some("2".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_allow_lists_are_refused_with_400() -> Result<()> {
    let server = Server::start()?;
    for bad in ["example.com", "ftp://x", "http://a/b", "*://*"] {
        let refused = server
            .client()
            .deploy(
                "fetch",
                crate::harness::fixture(FETCH),
                &[("allowed_outbound_hosts".into(), bad.into())],
            )
            .await;
        match refused {
            Err(floe_cli::client::ClientError::Api { status, code, .. }) => {
                assert_eq!(
                    (status.as_u16(), code.as_str()),
                    (400, "bad_request"),
                    "{bad}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    server
        .deploy(
            "fetch",
            FETCH,
            &[(
                "allowed_outbound_hosts",
                r#"["https://api.example.com","http://*.internal:8080"]"#,
            )],
        )
        .await?;
    let info = server.client().info("fetch").await?;
    assert_eq!(
        info["settings"]["allowed_outbound_hosts"],
        serde_json::json!(["https://api.example.com", "http://*.internal:8080"]),
        "{info}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn function_to_function_calls_stop_at_the_hop_limit() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_OUTBOUND__ALLOW_DATA_PLANE", "true")
        .env("FLOE_OUTBOUND__HOP_LIMIT", "3")
        .start()?;
    let data = server.data.port();
    server
        .deploy(
            "fetch",
            FETCH,
            &[(
                "allowed_outbound_hosts",
                &format!("http://127.0.0.1:{data}"),
            )],
        )
        .await?;
    // The URL reaches the function again, which fetches it again: a loop
    // that the hop count ends.
    let r = fetch(&server, "/", &format!("http://127.0.0.1:{data}/fetch/")).await?;
    let text = r.text();
    assert_eq!(r.status, 200, "{text}");
    assert_eq!(text.matches("status=200").count(), 2, "{text}");
    assert!(text.contains("status=508"), "{text}");
    assert!(text.contains("loop_detected"), "{text}");
    // A client that sends the header itself is held to it too.
    let r = send(
        Request::get(server.url("/fetch/"))
            .header("floe-hops", "3")
            .header("x-fetch-url", "http://127.0.0.1:1/")
            .body(Full::<Bytes>::default())?,
    )
    .await?;
    assert_eq!(r.status, 508);
    assert_eq!(r.code(), "loop_detected");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_requests_per_call_are_capped() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_OUTBOUND__MAX_REQUESTS_PER_CALL", "3")
        .start()?;
    let collector = Collector::start().await?;
    server
        .deploy(
            "fetch",
            FETCH,
            &[("allowed_outbound_hosts", &collector.allow())],
        )
        .await?;
    let r = fetch(&server, "/many?n=5", &collector.url).await?;
    // The guest sees the refusal as the request failing (how its SDK words
    // it varies); the collector saw three.
    let text = r.text();
    assert!(text.starts_with("answered=3 errors="), "{text}");
    assert!(!text.ends_with("errors=\n"), "{text}");
    assert_eq!(collector.lines().len(), 3);
    // The next call starts afresh.
    let r = fetch(&server, "/many?n=2", &collector.url).await?;
    assert_eq!(r.text(), "answered=2 errors=\n");
    assert_eq!(collector.lines().len(), 5);
    Ok(())
}
