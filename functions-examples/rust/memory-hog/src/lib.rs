//! Allocates `?mb=N` MiB (default 1024) and touches every page, to run into the
//! instance's memory limit.

use floe_sdk::http::{Body, Request, Response, Result};

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let mb: usize = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("mb="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024);
    let mut blocks = Vec::new();
    for _ in 0..mb {
        let block = vec![1u8; 1024 * 1024];
        blocks.push(std::hint::black_box(block));
    }
    let total: usize = blocks.iter().map(|b| b.len()).sum();
    Ok(Response::new(
        format!("held {} MiB\n", total / (1024 * 1024)).into(),
    ))
}
