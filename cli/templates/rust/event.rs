//! {{name}}: an event function. Bytes in, bytes out.

use floe_sdk::event::{Context, Error};

floe_sdk::event_function!(handle);

async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    if payload.is_empty() {
        return Err(Error::invalid_input("empty payload"));
    }
    Ok(format!("{} got {} bytes\n", context.function, payload.len()).into_bytes())
}
