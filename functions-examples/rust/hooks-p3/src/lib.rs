//! Lifecycle hooks in a WASI 0.3 function, whose instances serve many
//! requests at once: `init` runs once at deploy (snapshotted),
//! `pre-freeze` only after the last of concurrent requests, and `pre-stop`
//! once before the instance goes. `GET /?ms=N` answers after awaiting a
//! timer for N ms; every answer says what `init` built and how many times
//! `pre-freeze` ran in this instance.

use floe_sdk::p3::{Request, Response, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

floe_sdk::http_function_p3!(handle);
floe_sdk::lifecycle! { init: setup, pre_freeze: freeze, pre_stop: stop }

/// What `init` computes: the primes below 100,000, counted.
static PRIMES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn setup() -> std::result::Result<(), String> {
    let n = 100_000;
    let mut sieve = vec![true; n];
    let mut count = 0;
    for i in 2..n {
        if sieve[i] {
            count += 1;
            let mut j = i * i;
            while j < n {
                sieve[j] = false;
                j += i;
            }
        }
    }
    PRIMES.set(count).map_err(|_| "init ran twice".to_owned())
}

static FREEZES: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
/// Freezes that found a request still in flight (there must be none).
static EARLY: AtomicU64 = AtomicU64::new(0);

fn freeze() {
    FREEZES.fetch_add(1, Ordering::Relaxed);
    if IN_FLIGHT.load(Ordering::Relaxed) > 0 {
        EARLY.fetch_add(1, Ordering::Relaxed);
    }
    println!("pre-freeze");
}

fn stop() {
    println!("pre-stop after {} freezes", FREEZES.load(Ordering::Relaxed));
}

async fn handle(request: Request) -> Result<Response> {
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    let ms: u64 = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    floe_sdk::p3::sleep(Duration::from_millis(ms)).await;
    IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    Ok(Response::new(format!(
        "primes={:?} freezes={} early={}\n",
        PRIMES.get(),
        FREEZES.load(Ordering::Relaxed),
        EARLY.load(Ordering::Relaxed)
    )))
}
