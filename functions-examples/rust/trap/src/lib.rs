//! Traps on demand, to show that a trap costs one request and one instance,
//! never the next request.
//!
//! - `/trap`: panics before answering (a Wasm trap).
//! - `/trap-mid-body`: sends the head and a first chunk, then traps; the client
//!   must see a cut body, never a complete-looking one.
//! - `/trap-after-head`: sets a 200 head, then traps before writing anything.
//! - `/trap-after-full-body`: declares `Content-Length: 5`, writes all five
//!   bytes, then traps; the body must still not look complete.
//! - anything else: `ok`.

use floe_sdk::http::{Body, Request, Response, Result};
use std::time::Duration;

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    match request.uri().path() {
        "/trap" => panic!("the trap fixture was asked to trap"),
        "/trap-mid-body" => {
            let chunks = futures_lite::stream::unfold(0u32, |step| async move {
                match step {
                    0 => Some((b"first chunk\n".to_vec(), 1)),
                    _ => {
                        // Give the host time to send the first chunk out.
                        floe_sdk::time::sleep(Duration::from_millis(50).into()).await;
                        panic!("the trap fixture was asked to trap mid-body")
                    }
                }
            });
            Ok(Response::new(Body::from_stream(chunks)))
        }
        "/trap-after-head" => {
            let chunks = futures_lite::stream::poll_fn(|_| -> std::task::Poll<Option<Vec<u8>>> {
                panic!("the trap fixture was asked to trap after the head")
            });
            Ok(Response::new(Body::from_stream(chunks)))
        }
        "/trap-after-full-body" => {
            let chunks = futures_lite::stream::unfold(0u32, |step| async move {
                match step {
                    0 => Some((b"hello".to_vec(), 1)),
                    _ => {
                        floe_sdk::time::sleep(Duration::from_millis(50).into()).await;
                        panic!("the trap fixture was asked to trap after its whole body")
                    }
                }
            });
            Ok(Response::builder()
                .header("content-length", "5")
                .body(Body::from_stream(chunks))?)
        }
        _ => Ok(Response::new("ok\n".into())),
    }
}
