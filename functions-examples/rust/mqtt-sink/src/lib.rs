//! A trivial event function for `floe-bench mqtt`: it answers `ok`, and
//! measures how long messages took to reach it.
//!
//! - A payload `t=MICROS` (the publisher's clock, µs since the Unix epoch)
//!   records `now - MICROS` in the instance;
//! - the payload `stats` answers the recorded delays as JSON
//!   (`{"delays_us": [...]}`) and forgets them;
//! - anything else is a no-op that answers `ok`.

use floe_sdk::event::{Context, Error};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

floe_sdk::event_function!(handle);

thread_local! {
    static DELAYS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

async fn handle(_context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    if payload == b"stats" {
        let delays = DELAYS.with(|d| std::mem::take(&mut *d.borrow_mut()));
        return Ok(floe_sdk::serde_json::json!({ "delays_us": delays })
            .to_string()
            .into_bytes());
    }
    if let Some(sent) = std::str::from_utf8(&payload)
        .ok()
        .and_then(|s| s.strip_prefix("t="))
        .and_then(|t| t.trim().parse::<u64>().ok())
    {
        let delay = now_us().saturating_sub(sent);
        DELAYS.with(|d| d.borrow_mut().push(delay));
    }
    Ok(b"ok".to_vec())
}
