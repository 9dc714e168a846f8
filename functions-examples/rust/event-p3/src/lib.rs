//! A WASI 0.3 event function with async hooks (`floe:function@0.2.0`): many
//! invocations run on one instance at once, and every hook awaits.
//!
//! The payload says what to do:
//! - `sleep:N`: awaits a timer for N ms (the instance serves its other
//!   invocations meanwhile);
//! - `fetch:URL`: fetches URL and answers its status and length;
//! - `trigger`: answers the trigger that started it (`none`, or
//!   `cron NAME` / `mqtt NAME TOPIC`), after a 1 ms timer;
//! - `publish:TOPIC`: publishes `hello` to TOPIC through the outbox;
//! - `fail`: fails (500 `function_error`); an empty payload is refused
//!   (400 `invalid_input`).
//!
//! Every answer says what `init` built and how many times `pre-freeze` ran
//! in this instance.

use floe_sdk::event::{Context, Error};
use floe_sdk::mqtt::Qos;
use floe_sdk::p3::{self, Request, body_bytes};
use floe_sdk::trigger::Trigger;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

floe_sdk::event_function_p3!(handle);
floe_sdk::lifecycle_p3! { init: setup, pre_freeze: freeze, pre_stop: stop }

/// What `init` computes: the primes below 100,000, counted.
static PRIMES: OnceLock<usize> = OnceLock::new();
static FREEZES: AtomicU64 = AtomicU64::new(0);

async fn setup() -> Result<(), String> {
    // Awaiting in a hook is allowed: the timer is the proof.
    p3::sleep(Duration::from_millis(1)).await;
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

async fn freeze() {
    p3::sleep(Duration::from_millis(1)).await;
    FREEZES.fetch_add(1, Ordering::Relaxed);
    println!("event-p3 pre-freeze");
}

async fn stop() {
    p3::sleep(Duration::from_millis(1)).await;
    println!(
        "event-p3 pre-stop after {} freezes",
        FREEZES.load(Ordering::Relaxed)
    );
}

async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    let text = std::str::from_utf8(&payload)
        .map_err(|_| Error::invalid_input("the payload is not UTF-8"))?;
    let done = if let Some(ms) = text.strip_prefix("sleep:") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| Error::invalid_input("sleep:N wants a number of milliseconds"))?;
        p3::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    } else if let Some(url) = text.strip_prefix("fetch:") {
        let (status, len) = fetch(url.trim())
            .await
            .map_err(|e| Error::failed(format!("fetching {url}: {e}")))?;
        format!("status={status} bytes={len}")
    } else if text == "trigger" {
        // Across an await: the trigger belongs to the invocation, not to
        // whatever else the instance runs meanwhile.
        p3::sleep(Duration::from_millis(1)).await;
        match context.trigger() {
            None => "none".to_owned(),
            Some(Trigger::Cron(run)) => format!("cron {}", run.name),
            Some(Trigger::Mqtt(message)) => format!("mqtt {} {}", message.name, message.topic),
        }
    } else if let Some(topic) = text.strip_prefix("publish:") {
        floe_sdk::mqtt::publish(topic.trim(), b"hello", Qos::AtLeastOnce, false)
            .map_err(|e| Error::failed(e.to_string()))?;
        format!("published to {}", topic.trim())
    } else if text == "fail" {
        return Err(Error::failed("asked to fail"));
    } else if text.is_empty() {
        return Err(Error::invalid_input("the payload is empty"));
    } else {
        return Err(Error::invalid_input(format!("unknown command {text:?}")));
    };
    Ok(format!(
        "{done} primes={:?} freezes={}\n",
        PRIMES.get(),
        FREEZES.load(Ordering::Relaxed)
    )
    .into_bytes())
}

async fn fetch(url: &str) -> p3::Result<(u16, usize)> {
    let request = Request::get(url).body(String::new())?;
    let response = p3::send(request).await?;
    let status = response.status().as_u16();
    let body = body_bytes(response.into_body()).await?;
    Ok((status, body.len()))
}
