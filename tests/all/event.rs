//! Event functions: bytes in, bytes out, on both planes.

use crate::harness::{Server, send};
use anyhow::Result;
use bytes::Bytes;
use floe_tests::fixtures::{EVENT_ECHO, HELLO};
use http::Request;
use http_body_util::Full;

fn post(url: &str, body: impl Into<Bytes>) -> Result<Request<Full<Bytes>>> {
    Ok(Request::post(url).body(Full::new(body.into()))?)
}

#[tokio::test(flavor = "multi_thread")]
async fn event_functions_round_trip_arbitrary_bytes() -> Result<()> {
    let server = Server::start()?;
    let deployed = server.deploy("echo", EVENT_ECHO, &[]).await?;
    assert_eq!(deployed["init"], "none");
    assert_eq!(server.client().info("echo").await?["kind"], "event");

    // Every byte value, invalid UTF-8 included, comes back as it went.
    let payload: Vec<u8> = (0..=255u8)
        .chain([0xff, 0xfe, 0x00, 0xc3, 0x28])
        .cycle()
        .take(70_000)
        .collect();
    let r = send(post(&server.url("/echo"), payload.clone())?).await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.body, payload);

    // The same through the control plane.
    let invoke = Request::post(server.control_url("/v1/functions/echo/invoke"))
        .header("authorization", format!("Bearer {}", server.token))
        .body(Full::new(Bytes::from(payload.clone())))?;
    let r = send(invoke).await?;
    assert_eq!(
        (r.status.as_u16(), r.body.as_ref()),
        (200, payload.as_slice())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn event_errors_carry_the_functions_message() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy("echo", EVENT_ECHO, &[("max_request_body", "1KiB")])
        .await?;

    let r = send(post(&server.url("/echo"), "")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "invalid_input")
    );
    assert_eq!(r.json()["message"], "the payload is empty");

    let r = send(post(&server.url("/echo"), "fail")?).await?;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (500, "function_error")
    );
    assert_eq!(r.json()["message"], "asked to fail");

    let r = send(post(&server.url("/echo"), vec![1u8; 2048])?).await?;
    assert_eq!(r.status, 413);

    let r = server.get("/echo").await?;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (405, "method_not_allowed")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_says_who_what_and_until_when() -> Result<()> {
    let server = Server::start()?;
    server
        .deploy(
            "echo",
            EVENT_ECHO,
            &[("memory", "64MiB"), ("timeout", "5s")],
        )
        .await?;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let request = Request::post(server.url("/echo"))
        .header("content-type", "application/x-protobuf")
        .header("x-request-id", "req-42")
        .body(Full::new(Bytes::from_static(b"context")))?;
    let r = send(request).await?;
    let text = r.text();
    let field = |key: &str| {
        text.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("request_id"), "req-42");
    assert_eq!(field("function"), "echo");
    assert_eq!(field("version"), "1");
    assert_eq!(field("memory_limit"), (64u64 << 20).to_string());
    assert_eq!(field("content_type"), "application/x-protobuf");
    let deadline: u64 = field("deadline_ms").parse()?;
    assert!(
        deadline > before && deadline <= before + 5_000 + 1_000,
        "{deadline} vs {before}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn invoking_a_function_that_is_not_an_event_function_is_refused() -> Result<()> {
    let server = Server::start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let invoke = Request::post(server.control_url("/v1/functions/hello/invoke"))
        .header("authorization", format!("Bearer {}", server.token))
        .body(Full::new(Bytes::from_static(b"x")))?;
    let r = send(invoke).await?;
    assert_eq!((r.status.as_u16(), r.code().as_str()), (400, "bad_request"));
    let unauthenticated =
        Request::post(server.control_url("/v1/functions/hello/invoke")).body(Full::default())?;
    assert_eq!(send(unauthenticated).await?.status, 401);
    Ok(())
}
