//! A function whose `init` fails: deploying it is refused, and the version
//! that was active keeps serving.

use floe_sdk::http::{Body, Request, Response, Result};

floe_sdk::http_function!(handle);
floe_sdk::lifecycle! { init: init }

fn init() -> std::result::Result<(), String> {
    Err("the configuration file config.toml is missing".into())
}

async fn handle(_request: Request<Body>) -> Result<Response<Body>> {
    Ok(Response::new("never served\n".into()))
}
