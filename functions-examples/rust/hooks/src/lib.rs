//! Lifecycle hooks at work. Requests are counted in memory; `pre-freeze`
//! flushes the count of requests since the last flush, and `pre-stop` says
//! goodbye, each as a line POSTed to the collector named in the last
//! request's `x-collector` header (and printed to stdout, which floe logs).
//!
//! - `GET /?hang=freeze` (or `hang=stop`): the next `pre-freeze` (or
//!   `pre-stop`) spins forever, to show that floe cuts a hook at its time
//!   limit and carries on.
//! - `GET /?sleep=N`: answers after N milliseconds.
//!
//! Each line names the instance by an id it picks at its first request.

use floe_sdk::http::{Body, Client, Request, Response, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

floe_sdk::http_function!(handle);
floe_sdk::lifecycle! { pre_freeze: flush, pre_stop: goodbye }

static INSTANCE: OnceLock<u64> = OnceLock::new();
static COLLECTOR: Mutex<Option<String>> = Mutex::new(None);
static SERVED: AtomicU64 = AtomicU64::new(0);
static PENDING: AtomicU64 = AtomicU64::new(0);
static HANG_FREEZE: AtomicBool = AtomicBool::new(false);
static HANG_STOP: AtomicBool = AtomicBool::new(false);

fn instance() -> u64 {
    *INSTANCE.get_or_init(|| {
        let mut bytes = [0u8; 8];
        floe_sdk::wstd::rand::get_random_bytes(&mut bytes);
        u64::from_le_bytes(bytes) >> 16
    })
}

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let id = instance();
    if let Some(url) = request
        .headers()
        .get("x-collector")
        .and_then(|v| v.to_str().ok())
    {
        *COLLECTOR.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.to_owned());
    }
    match request.uri().query() {
        Some("hang=freeze") => HANG_FREEZE.store(true, Ordering::Relaxed),
        Some("hang=stop") => HANG_STOP.store(true, Ordering::Relaxed),
        Some(q) if q.starts_with("sleep=") => {
            let ms = q["sleep=".len()..].parse().unwrap_or(0);
            floe_sdk::time::sleep(std::time::Duration::from_millis(ms).into()).await;
        }
        _ => {}
    }
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    PENDING.fetch_add(1, Ordering::Relaxed);
    Ok(Response::new(
        format!("instance={id} served={served}\n").into(),
    ))
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn flush() {
    if HANG_FREEZE.load(Ordering::Relaxed) {
        spin();
    }
    let pending = PENDING.swap(0, Ordering::Relaxed);
    report(format!(
        "freeze instance={} pending={pending} served={}",
        instance(),
        SERVED.load(Ordering::Relaxed)
    ));
}

fn goodbye() {
    if HANG_STOP.load(Ordering::Relaxed) {
        spin();
    }
    report(format!(
        "stop instance={} served={}",
        instance(),
        SERVED.load(Ordering::Relaxed)
    ));
}

/// Prints `line` and POSTs it to the collector, if one was named.
fn report(line: String) {
    println!("{line}");
    let Some(url) = COLLECTOR.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return;
    };
    floe_sdk::wstd::runtime::block_on(async move {
        let Ok(request) = Request::post(url.as_str()).body(Body::from(line)) else {
            return;
        };
        if let Err(err) = Client::new().send(request).await {
            eprintln!("hooks: reporting to {url} failed: {err}");
        }
    });
}
