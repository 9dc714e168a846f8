//! Echoes what it was sent, so tests can see what a function receives.
//!
//! - `POST /...`: answers with the request body, byte for byte.
//! - `GET /bytes?n=N`: answers with N bytes of `x`, streamed in 64 KiB chunks.
//! - `GET /...` otherwise: a text report of the method, the path the function
//!   saw, and the `x-forwarded-prefix` and `host` headers; the same line goes
//!   to stdout, which floe captures into its log.

use floe_sdk::http::{Body, Method, Request, Response, Result};

floe_sdk::http_function!(handle);

const CHUNK: usize = 64 * 1024;

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    if request.method() == Method::POST {
        let mut body = request.into_body();
        let bytes = body.bytes_contents().await?;
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .header("x-echo-length", bytes.len().to_string())
            .body(bytes.into())?);
    }
    if path == "/bytes" {
        let n: usize = query
            .strip_prefix("n=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let chunks = (0..n.div_ceil(CHUNK)).map(move |i| vec![b'x'; CHUNK.min(n - i * CHUNK)]);
        return Ok(Response::new(Body::from_stream(
            futures_lite::stream::iter(chunks),
        )));
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let report = format!(
        "method={} path={} query={} prefix={} host={}\n",
        request.method(),
        path,
        query,
        header("x-forwarded-prefix"),
        request.uri().authority().map_or("", |a| a.as_str()),
    );
    print!("echo: {report}");
    Ok(Response::new(report.into()))
}
