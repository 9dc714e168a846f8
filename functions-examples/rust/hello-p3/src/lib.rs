//! The WASI 0.3 hello: a plain `async fn` handler. floe serves up to 16
//! requests at once on each instance of it.

use floe_sdk::p3::{Request, Response, Result};

floe_sdk::http_function_p3!(handle);

async fn handle(request: Request) -> Result<Response> {
    Ok(Response::new(format!(
        "hello from floe (WASI 0.3), path={}\n",
        request.uri().path()
    )))
}
