//! `fan-out`'s logic built for WASI 0.2 (the benchmark's comparison): each
//! request awaits a GET of `?url=` (or `x-upstream`), and holds its instance
//! while it waits.

use floe_sdk::http::{Body, Client, Request, Response, Result};

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let query = request.uri().query().unwrap_or("");
    let url = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("url="))
        .map(str::to_owned)
        .or_else(|| {
            request
                .headers()
                .get("x-upstream")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let Some(url) = url else {
        return Ok(Response::builder()
            .status(400)
            .body("give the upstream as ?url= or x-upstream\n".into())?);
    };
    let upstream = Request::get(url).body(Body::empty())?;
    let mut response = Client::new().send(upstream).await?;
    let status = response.status().as_u16();
    let bytes = response.body_mut().contents().await?.len();
    Ok(Response::new(
        format!("status={status} bytes={bytes} calls=1\n").into(),
    ))
}
