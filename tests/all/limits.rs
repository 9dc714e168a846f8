//! Limits: time, memory, instances, queue, and sizes.

use crate::harness::{Server, eventually, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::{ECHO, HELLO, MEMORY_HOG, SLOW, SPIN};
use http::Request;
use http_body_util::Full;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_times_out_while_other_functions_keep_answering() -> Result<()> {
    let server = Server::start()?;
    server.deploy("spin", SPIN, &[("timeout", "1s")]).await?;
    server.deploy("hello", HELLO, &[]).await?;

    let started = Instant::now();
    let spin_url = server.url("/spin/");
    let spinning = tokio::spawn(async move { crate::harness::get(&spin_url).await });
    // While one instance spins, the other function answers.
    for _ in 0..20 {
        let r = server.get("/hello/").await?;
        assert_eq!(r.status, 200);
    }
    let r = spinning.await??;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "timeout");
    // The timeout plus one epoch tick, with room for a loaded test machine.
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    // Waiting in a host call (a timer) is bounded too.
    let r = server.get("/spin/wait").await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (504, "timeout"));
    let info = server.client().info("spin").await?;
    assert_eq!(
        info["instances"]["live"], 0,
        "timed-out instances are never reused"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_hog_fails_with_memory_limit_and_its_instance_is_gone() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("hog", MEMORY_HOG, &[("memory", "32MiB")])
        .await?;
    let r = server.get("/hog/?mb=4").await?;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "held 4 MiB\n")
    );

    let r = server.get("/hog/?mb=64").await?;
    assert_eq!(r.status, 500);
    assert_eq!(r.code(), "memory_limit");
    eventually(
        Duration::from_secs(5),
        "the hog's instance to be gone",
        || async { Ok(server.client().info("hog").await?["instances"]["live"] == 0) },
    )
    .await?;

    let r = server.get("/hog/?mb=4").await?;
    assert_eq!(r.status, 200, "a fresh instance serves the next request");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_requests_against_four_instances_get_200_or_503() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy(
            "slow",
            SLOW,
            &[
                ("max_instances", "4"),
                ("queue_timeout", "500ms"),
                ("max_queue", "100"),
            ],
        )
        .await?;
    let url = server.url("/slow/?ms=100");
    let requests = (0..200).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(30), crate::harness::get(&url)).await
        })
    });
    let (mut ok, mut overloaded) = (0, 0);
    for r in futures::future::join_all(requests).await {
        let r = r?.map_err(|_| anyhow::anyhow!("a request hung"))??;
        match r.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(r.code(), "overloaded");
                assert!(r.headers.contains_key("retry-after"));
                overloaded += 1;
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert_eq!(ok + overloaded, 200);
    assert!(ok >= 4, "{ok} succeeded");
    assert!(
        overloaded > 0,
        "4 instances at 100 ms each cannot serve 200 requests in 500 ms"
    );
    let info = server.client().info("slow").await?;
    assert!(info["instances"]["started"].as_u64() <= Some(4), "{info}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_over_the_limit_get_413() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("echo", ECHO, &[("max_request_body", "1KiB")])
        .await?;
    let r = crate::harness::post(&server.url("/echo/"), vec![b'a'; 500]).await?;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 500));

    let r = crate::harness::post(&server.url("/echo/"), vec![b'a'; 2048]).await?;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "body_too_large");

    // Without Content-Length, the body is counted as it arrives.
    let chunks = futures::stream::iter((0..8).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'a'; 512])))
    }));
    let request =
        Request::post(server.url("/echo/")).body(http_body_util::StreamBody::new(chunks))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client.request(request).await?;
    assert_eq!(response.status(), 413);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_over_the_limit_are_cut() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("echo", ECHO, &[("max_response_body", "64KiB")])
        .await?;
    let r = server.get("/echo/bytes?n=1000").await?;
    assert!(r.complete && r.body.len() == 1000);
    let r = server.get("/echo/bytes?n=500000").await?;
    assert!(!r.complete, "an over-long response must not look complete");
    assert!(r.body.len() <= 128 * 1024, "{}", r.body.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_and_targets_are_refused() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let big = "x".repeat(100 * 1024);
    let r = send(
        Request::get(server.url("/hello/"))
            .header("x-big", big)
            .body(Full::<Bytes>::default())?,
    )
    .await;
    match r {
        Ok(r) => assert_eq!(r.status, 431),
        // hyper may also close the connection after answering 431.
        Err(e) => panic!("expected 431, got {e:#}"),
    }
    let long = format!("/hello/{}", "a".repeat(10 * 1024));
    let r = server.get(&long).await?;
    assert_eq!(r.status, 414);
    assert_eq!(r.code(), "uri_too_long");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_instances_do_not_accumulate_resources_or_memory() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("echo", ECHO, &[("max_instances", "1")])
        .await?;
    let url = server.url("/echo/");
    let body = Bytes::from(vec![b'z'; 1024]);
    let mut after_warmup = serde_json::Value::Null;
    for i in 0..3000 {
        let r = if i % 2 == 0 {
            crate::harness::post(&url, body.clone()).await?
        } else {
            crate::harness::get(&format!("{url}x")).await?
        };
        assert_eq!(r.status, 200);
        if i == 200 {
            after_warmup = instance(&server).await?;
        }
    }
    let inst = instance(&server).await?;
    assert_eq!(inst["requests"], 3000, "one instance served everything");
    // What the guest keeps between requests (its stdout handle, say) stays
    // put; nothing accumulates per request.
    assert_eq!(
        inst["resources"], after_warmup["resources"],
        "host resources stay flat"
    );
    assert!(inst["resources"].as_u64() <= Some(4), "{inst}");
    assert_eq!(
        inst["memory_bytes"], after_warmup["memory_bytes"],
        "linear memory stays flat"
    );
    Ok(())
}

async fn instance(server: &Server) -> Result<serde_json::Value> {
    let info = server.client().info("echo").await?;
    Ok(info["instance_list"][0].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_wide_instance_budget_is_shared() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__MAX_INSTANCES_TOTAL", "2")
        .env("FLOE_FUNCTIONS__MAX_INSTANCES", "2")
        .start()?;
    server
        .deploy("impatient", HELLO, &[("queue_timeout", "200ms")])
        .await?;
    server
        .deploy("patient", HELLO, &[("queue_timeout", "10s")])
        .await?;
    server.deploy("b", SLOW, &[]).await?;
    // Two slow requests take the whole budget...
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/b/?ms=1500");
            tokio::spawn(async move { crate::harness::get(&url).await })
        })
        .collect();
    eventually(Duration::from_secs(5), "two busy instances", || async {
        Ok(server.client().info("b").await?["instances"]["busy"] == 2)
    })
    .await?;
    // ...so another function waits: past its queue timeout it is refused,
    let r = server.get("/impatient/").await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (503, "overloaded"));
    // and within it, it is served as soon as an instance of b goes idle
    // (which is then stopped to make room).
    let patient = server.get("/patient/").await?;
    assert_eq!(patient.status, 200);
    for b in busy {
        assert_eq!(b.await??.status, 200);
    }
    let r = server.get("/impatient/").await?;
    assert_eq!(
        r.status, 200,
        "an idle instance of b was stopped to make room"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_instances_are_stopped_after_idle_ttl() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[("idle_ttl", "1s")]).await?;
    let started = Instant::now();
    assert_eq!(server.get("/hello/").await?.status, 200);
    assert_eq!(server.client().info("hello").await?["instances"]["idle"], 1);
    eventually(
        Duration::from_secs(10),
        "the idle instance to be stopped",
        || async { Ok(server.client().info("hello").await?["instances"]["live"] == 0) },
    )
    .await?;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before its idle_ttl"
    );
    // The next request starts a new one.
    assert_eq!(server.get("/hello/").await?.status, 200);
    let info = server.client().info("hello").await?;
    assert_eq!(info["instances"]["started"], 2);
    Ok(())
}
