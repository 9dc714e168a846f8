//! Answers after `?ms=N` milliseconds (default 100) of waiting on a host timer:
//! a stand-in for a function that calls a slow backend.

use floe_sdk::http::{Body, Request, Response, Result};
use std::time::Duration;

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let ms: u64 = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    floe_sdk::time::sleep(Duration::from_millis(ms).into()).await;
    Ok(Response::new(format!("slept {ms} ms\n").into()))
}
