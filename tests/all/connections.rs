//! Connection limits on the listeners: sockets that send nothing, half
//! prefaces, per-client caps.

use crate::harness::Server;
use anyhow::Result;
use floe_tests::fixtures::HELLO;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server has closed `socket`: a read that ends (or fails)
/// within `within`.
pub(crate) async fn closed(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // An error response (a 408, say) before the close.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The sorted latencies of `n` sequential requests, each on a new
/// connection.
async fn latencies(server: &Server, n: usize) -> Result<Vec<Duration>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = server.get("/hello/").await?;
        all.push(start.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    all.sort();
    Ok(all)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_thousand_idle_sockets_do_not_delay_a_normal_request() -> Result<()> {
    // The test process holds every socket too.
    let _ = rlimit::increase_nofile_limit(16_384);
    // Five times what the listener holds, all from this one address, with
    // no per-address cap: the listener's own eviction makes room.
    let server = Server::builder()
        .env("FLOE_SERVER__MAX_CONNECTIONS", "1000")
        .env("FLOE_SERVER__MAX_CONNECTIONS_PER_IP", "0")
        .start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let quiet = latencies(&server, 100).await?;
    let mut idle = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        let mut socket = TcpStream::connect(server.data).await?;
        if i % 10 == 0 {
            // Half an HTTP/2 preface, never finished.
            socket.write_all(b"PRI * HTTP/2.0\r\n").await?;
        }
        idle.push(socket);
    }
    let flooded = latencies(&server, 100).await?;
    eprintln!(
        "100 requests, p50/p99/max: quiet {:?}/{:?}/{:?}; beside 5,000 idle sockets {:?}/{:?}/{:?}",
        quiet[49], quiet[98], quiet[99], flooded[49], flooded[98], flooded[99]
    );
    drop(idle);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_without_a_request_is_closed_at_the_header_timeout() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_SERVER__HEADER_TIMEOUT", "500ms")
        .start()?;
    let mut silent = TcpStream::connect(server.data).await?;
    let mut half = TcpStream::connect(server.data).await?;
    half.write_all(b"PRI * HTTP/2.0\r\n").await?;
    let mut trickle = TcpStream::connect(server.control).await?;
    trickle.write_all(b"GET /healthz HTTP/1.1\r\nHo").await?;
    for socket in [&mut silent, &mut half, &mut trickle] {
        assert!(closed(socket, Duration::from_secs(30)).await);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_at_its_cap_loses_its_oldest_idle_connection() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_SERVER__MAX_CONNECTIONS_PER_IP", "4")
        .start()?;
    server.deploy("hello", HELLO, &[]).await?;
    let mut first = TcpStream::connect(server.data).await?;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(TcpStream::connect(server.data).await?);
    }
    // A fifth connection, with a request: served, and the oldest idle one
    // made room for it.
    let r = server.get("/hello/").await?;
    assert_eq!(r.status, 200);
    assert!(closed(&mut first, Duration::from_secs(30)).await);
    // Keep-alive connections that are serving count too: one that sent a
    // request stays open while the client is at its cap.
    let mut busy = TcpStream::connect(server.data).await?;
    busy.write_all(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut buf = [0u8; 64];
    let n = busy.read(&mut buf).await?;
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(others);
    Ok(())
}

/// Sends a request head promising `length` bytes of body and then only
/// `sent` of them; the raw socket, to read the answer from.
async fn stalled_upload(
    server: &Server,
    path: &str,
    length: usize,
    sent: usize,
) -> Result<TcpStream> {
    let mut socket = TcpStream::connect(server.data).await?;
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&vec![b'z'; sent]).await?;
    Ok(socket)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_is_cut_at_its_deadline_while_the_function_serves_others() -> Result<()> {
    let server = Server::builder()
        .env("FLOE_LIMITS__BODY_TIMEOUT", "500ms")
        .start()?;
    server
        .deploy(
            "echo",
            floe_tests::fixtures::ECHO,
            &[("max_instances", "1")],
        )
        .await?;
    server
        .deploy("events", floe_tests::fixtures::EVENT_ECHO, &[])
        .await?;
    // Four slow uploads against a function with one instance.
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(stalled_upload(&server, "/echo/", 1000, 10).await?);
    }
    let event = stalled_upload(&server, "/events", 1000, 10).await?;
    // The one instance is free for everyone else meanwhile.
    for _ in 0..5 {
        let r = server.get("/echo/x").await?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for mut socket in slow.into_iter().chain([event]) {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer)).await??;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
    Ok(())
}
