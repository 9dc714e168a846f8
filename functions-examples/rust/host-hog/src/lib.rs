//! A hostile guest that makes the host hold memory for it, so tests can see
//! floe bound it.
//!
//! - `GET /fields`: creates header fields of 8 KiB each, keeping them all,
//!   until the host refuses.
//! - `GET /pollables`: subscribes to the clock again and again, keeping
//!   every pollable.
//! - `GET /requests`: builds outgoing requests (never sent), keeping them.
//! - `GET /leak?n=N`: keeps N fields past the end of the request (in a
//!   global), then answers 200.
//! - `GET /log?n=N`: prints N lines to stdout.
//! - anything else: answers `ok`.

use floe_sdk::http::{Body, Request, Response, Result};
use std::cell::RefCell;
use wasip2::http::types::{Fields, OutgoingRequest};

floe_sdk::http_function!(handle);

thread_local! {
    static LEAKED: RefCell<Vec<Fields>> = const { RefCell::new(Vec::new()) };
}

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let value = vec![b'v'; 8 * 1024];
    match request.uri().path() {
        "/fields" => {
            let mut kept = Vec::new();
            loop {
                let fields = Fields::new();
                let _ = fields.append("x-bomb", &value);
                kept.push(fields);
            }
        }
        "/pollables" => {
            let mut kept = Vec::new();
            loop {
                kept.push(wasip2::clocks::monotonic_clock::subscribe_duration(
                    1_000_000_000,
                ));
            }
        }
        "/requests" => {
            let mut kept = Vec::new();
            loop {
                kept.push(OutgoingRequest::new(Fields::new()));
            }
        }
        "/leak" => {
            let n = count(&request);
            LEAKED.with(|l| l.borrow_mut().extend((0..n).map(|_| Fields::new())));
            Ok(Response::new("leaked\n".into()))
        }
        "/log" => {
            for i in 0..count(&request) {
                println!("line {i}");
            }
            Ok(Response::new("logged\n".into()))
        }
        _ => Ok(Response::new("ok\n".into())),
    }
}

/// The `n=N` of the query (1 without one).
fn count(request: &Request<Body>) -> usize {
    request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("n="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}
