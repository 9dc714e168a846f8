//! An event function: answers with the payload it was sent, byte for byte
//! (any bytes: floe never decodes them).
//!
//! - an empty payload is refused: `invalid-input`, which the caller sees as 400;
//! - the payload `fail` fails: `failed`, a 500 with this function's message;
//! - the payload `context` answers with what floe says about the invocation;
//! - a payload `sleep:N` answers (with itself) after N milliseconds.

use floe_sdk::event::{Context, Error};

floe_sdk::event_function!(handle);

async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    match payload.as_slice() {
        b"" => Err(Error::invalid_input("the payload is empty")),
        b"fail" => Err(Error::failed("asked to fail")),
        b"context" => Ok(format!(
            "request_id={} function={} version={} deadline_ms={} memory_limit={} content_type={}",
            context.request_id,
            context.function,
            context.version,
            context.deadline_ms,
            context.memory_limit,
            context.content_type.as_deref().unwrap_or("-"),
        )
        .into_bytes()),
        other => {
            if let Some(ms) = std::str::from_utf8(other)
                .ok()
                .and_then(|s| s.strip_prefix("sleep:"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                floe_sdk::time::sleep(std::time::Duration::from_millis(ms).into()).await;
            }
            Ok(payload)
        }
    }
}
