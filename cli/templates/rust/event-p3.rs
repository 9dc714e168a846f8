//! {{name}}: a WASI 0.3 event function. floe runs up to 16 invocations at
//! once on each of its instances: while one awaits (floe_sdk::p3::send,
//! floe_sdk::p3::sleep), the others go on.

use floe_sdk::event::{Context, Error};

floe_sdk::event_function_p3!(handle);

async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    if payload.is_empty() {
        return Err(Error::invalid_input("empty payload"));
    }
    Ok(format!("{} got {} bytes\n", context.function, payload.len()).into_bytes())
}
