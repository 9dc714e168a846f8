//! {{name}}: an HTTP function.

use floe_sdk::http::{Body, Request, Response, Result};

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    Ok(Response::new(
        format!("hello from {{name}}, path={}\n", request.uri().path()).into(),
    ))
}
