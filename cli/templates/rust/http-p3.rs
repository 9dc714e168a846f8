//! {{name}}: a WASI 0.3 HTTP function. floe serves up to 16 requests at once
//! on each of its instances: while one awaits (floe_sdk::p3::send,
//! floe_sdk::p3::sleep), the others go on.

use floe_sdk::p3::{Request, Response, Result};

floe_sdk::http_function_p3!(handle);

async fn handle(request: Request) -> Result<Response> {
    Ok(Response::new(format!(
        "hello from {{name}}, path={}\n",
        request.uri().path()
    )))
}
