//! Never answers: spins the CPU (`/`) or waits on a host timer for an hour
//! (`/wait`), so tests can check that the timeout stops both.

use floe_sdk::http::{Body, Request, Response, Result};
use std::time::Duration;

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    if request.uri().path() == "/wait" {
        floe_sdk::time::sleep(Duration::from_secs(3600).into()).await;
        return Ok(Response::new("the hour passed\n".into()));
    }
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
