//! Routing requests to functions, instance reuse, and what a guest failure
//! costs.

use crate::harness::{Server, get, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::{COUNTER, ECHO, HELLO, NO_RESPONSE, TRAP};
use http::Request;
use http_body_util::Full;

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_routed_by_path_prefix_and_by_host() -> Result<()> {
    let server = Server::start()?;
    server.deploy("echo", ECHO, &[]).await?;

    let r = server.get("/echo/a/b?q=1").await?;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!(
            "method=GET path=/a/b query=q=1 prefix=/echo host={}\n",
            server.data
        )
    );
    assert_eq!(
        server.get("/echo").await?.text().split(' ').nth(1),
        Some("path=/")
    );

    let by_host = Request::get(server.url("/a/b"))
        .header("host", "echo.localhost:8080")
        .body(Full::<Bytes>::default())?;
    let r = send(by_host).await?;
    assert_eq!(
        r.text(),
        "method=GET path=/a/b query= prefix= host=echo.localhost:8080\n"
    );

    let r = server.get("/nobody/x").await?;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    assert!(!r.json()["request_id"].as_str().unwrap_or("").is_empty());
    assert_eq!(server.get("/").await?.status, 404);

    let r = crate::harness::post(&server.url("/echo/"), "ping").await?;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ping"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_reused_by_default_and_fresh_with_reuse_off() -> Result<()> {
    let server = Server::start()?;
    server.deploy("count", COUNTER, &[]).await?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(server.get("/count/").await?.text().trim().to_owned());
    }
    assert_eq!(seen, ["1", "2", "3"]);

    server
        .client()
        .configure("count", &[("reuse".into(), "false".into())])
        .await?;
    for _ in 0..3 {
        assert_eq!(server.get("/count/").await?.text().trim(), "1");
    }

    server
        .deploy("fresh", COUNTER, &[("reuse", "false")])
        .await?;
    for _ in 0..3 {
        assert_eq!(server.get("/fresh/").await?.text().trim(), "1");
    }

    // max_requests_per_instance retires an instance after that many requests.
    server
        .deploy("short", COUNTER, &[("max_requests_per_instance", "2")])
        .await?;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(server.get("/short/").await?.text().trim().to_owned());
    }
    assert_eq!(seen, ["1", "2", "1", "2", "1"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_fails_one_request_and_the_next_one_succeeds() -> Result<()> {
    let server = Server::start()?;
    server.deploy("trap", TRAP, &[]).await?;
    assert_eq!(server.get("/trap/ok").await?.status, 200);

    let r = server.get("/trap/trap").await?;
    assert_eq!(r.status, 500);
    assert_eq!(r.code(), "trap");
    assert_eq!(r.json()["message"], "the function trapped");

    let r = server.get("/trap/ok").await?;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok\n"));
    let info = server.client().info("trap").await?;
    assert_eq!(
        info["instances"]["started"], 2,
        "the trapped instance was replaced"
    );
    assert_eq!(info["instances"]["live"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_after_the_response_started_cuts_the_body() -> Result<()> {
    let server = Server::start()?;
    server.deploy("trap", TRAP, &[]).await?;
    let r = server.get("/trap/trap-mid-body").await?;
    assert_eq!(r.status, 200, "the head was already sent");
    assert!(r.text().starts_with("first chunk"), "{}", r.text());
    assert!(!r.complete, "a cut body must never look complete");
    assert_eq!(server.get("/trap/ok").await?.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_do_not_share_instances_or_state() -> Result<()> {
    let server = Server::start()?;
    server.deploy("a", COUNTER, &[]).await?;
    server.deploy("b", COUNTER, &[]).await?;
    assert_eq!(server.get("/a/").await?.text().trim(), "1");
    assert_eq!(server.get("/a/").await?.text().trim(), "2");
    assert_eq!(server.get("/b/").await?.text().trim(), "1");
    // A new version starts from fresh instances too.
    server.deploy("a", HELLO, &[]).await?;
    server.deploy("a", COUNTER, &[]).await?;
    assert_eq!(server.get("/a/").await?.text().trim(), "1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn http_10_requests_without_host_are_served() -> Result<()> {
    use std::io::{Read, Write};
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let mut conn = std::net::TcpStream::connect(server.data)?;
    conn.write_all(b"GET /hello/old HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    assert!(reply.ends_with("hello from floe, path=/old\n"), "{reply}");
    let _ = get(&server.url("/hello/")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_never_responds_gets_500_and_loses_its_instance() -> Result<()> {
    let server = Server::start()?;
    server.deploy("mute", NO_RESPONSE, &[]).await?;
    for _ in 0..3 {
        let r = server.get("/mute/").await?;
        assert_eq!((r.status.as_u16(), r.code().as_str()), (500, "no_response"));
    }
    let info = server.client().info("mute").await?;
    assert_eq!(
        info["instances"]["started"], 3,
        "each broken instance was replaced"
    );
    assert_eq!(info["instances"]["live"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_before_any_byte_left_is_a_500_even_after_the_head_was_set() -> Result<()> {
    let server = Server::start()?;
    server.deploy("trap", TRAP, &[]).await?;
    let r = server.get("/trap/trap-after-head").await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (500, "trap"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_after_the_whole_declared_body_still_cuts_it() -> Result<()> {
    let server = Server::start()?;
    server.deploy("trap", TRAP, &[]).await?;
    let r = server.get("/trap/trap-after-full-body").await?;
    assert_eq!(r.status, 200, "the head was already sent");
    assert_eq!(r.headers["content-length"], "5");
    assert!(
        !r.complete,
        "the client must not see a whole body: {:?}",
        r.body
    );
    assert!(r.body.len() < 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_requests_are_routed_and_keep_their_authority() -> Result<()> {
    let server = Server::start()?;
    server.deploy("echo", ECHO, &[]).await?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let response = client
        .request(Request::get(server.url("/echo/h2?x=1")).body(Full::default())?)
        .await?;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!(
            "method=GET path=/h2 query=x=1 prefix=/echo host={}\n",
            server.data
        )
    );
    Ok(())
}
