//! The smallest floe function: greets every request.

use floe_sdk::http::{Body, Request, Response, Result};

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("hello from floe, path={path}\n").into())?)
}
