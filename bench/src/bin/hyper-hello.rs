//! The ceiling for HTTP benchmarks: hyper 1 on tokio answering every request
//! with a fixed body (a `POST` with its own body), as cheaply as hyper
//! allows. Prints its address. `hyper-hello ADDR DELAY_MS` answers each
//! request after DELAY_MS milliseconds instead: the slow upstream of the
//! `p3` scenario's fan-out.
#![expect(clippy::print_stdout, reason = "the address is this program's output")]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let delay = std::time::Duration::from_millis(
        std::env::args()
            .nth(2)
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0),
    );
    let listener = TcpListener::bind(&addr).await?;
    println!("hyper-hello listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(
                move |request: http::Request<hyper::body::Incoming>| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let body = if request.method() == http::Method::POST {
                        request
                            .into_body()
                            .collect()
                            .await
                            .map(http_body_util::Collected::to_bytes)
                            .unwrap_or_default()
                    } else {
                        Bytes::from_static(b"hello from hyper\n")
                    };
                    Ok::<_, Infallible>(http::Response::new(Full::new(body)))
                },
            );
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
