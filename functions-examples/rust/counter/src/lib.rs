//! Counts the requests its instance has served. With instance reuse (floe's
//! default) the count climbs; with `reuse=false` every answer is 1.

use floe_sdk::http::{Body, Request, Response, Result};
use std::sync::atomic::{AtomicU64, Ordering};

floe_sdk::http_function!(handle);

static SERVED: AtomicU64 = AtomicU64::new(0);

async fn handle(_request: Request<Body>) -> Result<Response<Body>> {
    let n = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    Ok(Response::new(format!("{n}\n").into()))
}
