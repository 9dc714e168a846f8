//! Embedding floe in another server: a gateway that owns its listener and
//! hands requests under `/fn/` to floe in-process, answering everything else
//! itself. No floe listener is bound; floe only stores its functions in the
//! data directory.
//!
//! ```text
//! cargo run -p floe --example embed -- path/to/hello.wasm
//! curl localhost:3000/fn/hello/x     # served by the function
//! curl localhost:3000/               # served by the gateway
//! ```
#![expect(clippy::print_stdout, reason = "an example prints what it does")]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let component = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: embed COMPONENT.wasm [ADDR]"))?;
    let addr = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "127.0.0.1:3000".into());

    // floe's configuration: the defaults, with a data directory of our own.
    let mut config = floe::Config::load(None, std::env::vars())?;
    config.server.data_dir = std::env::temp_dir().join("floe-embed-example");
    let floe = floe::Floe::new(config).await?;
    let name = floe::registry::FunctionName::new("hello")?;
    let deployed = floe
        .registry()
        .deploy(&name, std::fs::read(&component)?.into(), &[], None)
        .await?;
    println!("deployed {} version {}", deployed.name, deployed.version);

    // One request handed over directly, no sockets involved.
    let request =
        http::Request::get("/hello/warm-up").body(http_body_util::Empty::<Bytes>::new())?;
    let response = floe.handle(request).await;
    let body = response.into_body().collect().await?.to_bytes();
    println!("in-process: {}", String::from_utf8_lossy(&body).trim_end());

    // The gateway's own listener.
    let listener = TcpListener::bind(&addr).await?;
    println!("gateway listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let floe = floe.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let floe = floe.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    match path.strip_prefix("/fn") {
                        Some(rest) if rest.starts_with('/') => {
                            // Hand the request to floe with the prefix removed.
                            let (mut parts, body) = request.into_parts();
                            let query = parts
                                .uri
                                .query()
                                .map(|q| format!("?{q}"))
                                .unwrap_or_default();
                            parts.uri = format!("{rest}{query}").parse().unwrap_or_default();
                            let response =
                                floe.handle(http::Request::from_parts(parts, body)).await;
                            Ok::<_, Infallible>(response.map(|b| b.boxed_unsync()))
                        }
                        _ => {
                            let body = Full::new(Bytes::from_static(b"gateway: try /fn/hello/\n"))
                                .map_err(|never| match never {})
                                .boxed_unsync();
                            Ok(http::Response::new(body))
                        }
                    }
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
