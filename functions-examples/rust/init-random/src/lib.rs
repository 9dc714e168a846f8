//! A function whose `init` seeds a generator from random bytes. A snapshot
//! of it would give every instance the same seed, so floe runs this `init`
//! in every instance instead; each instance then answers with its own seed.

use floe_sdk::http::{Body, Request, Response, Result};
use std::sync::atomic::{AtomicU64, Ordering};

floe_sdk::http_function!(handle);
floe_sdk::lifecycle! { init: init }

static SEED: AtomicU64 = AtomicU64::new(0);

fn init() -> std::result::Result<(), String> {
    let mut bytes = [0u8; 8];
    floe_sdk::wstd::rand::get_random_bytes(&mut bytes);
    SEED.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    Ok(())
}

async fn handle(_request: Request<Body>) -> Result<Response<Body>> {
    Ok(Response::new(
        format!("{}\n", SEED.load(Ordering::Relaxed)).into(),
    ))
}
