//! Calls other services, so tests can see what floe's outbound policy lets
//! through.
//!
//! - `GET /` with `x-fetch-url: URL`: a GET of `URL`, which carries the same
//!   `x-fetch-url` header (so a URL that reaches this function again makes a
//!   chain). Answers `status=N` and the body it got, or `error=...` with
//!   the wasi-http error code the host gave.
//! - `GET /many?n=N` with `x-fetch-url: URL`: N GETs of `URL` one after the
//!   other; answers how many got a response and the error codes of the others.

use floe_sdk::http::{Body, Client, Request, Response, Result};

floe_sdk::http_function!(handle);

async fn handle(request: Request<Body>) -> Result<Response<Body>> {
    let Some(url) = request
        .headers()
        .get("x-fetch-url")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Ok(Response::builder()
            .status(400)
            .body("x-fetch-url is required\n".into())?);
    };
    if request.uri().path() == "/many" {
        let n: usize = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut answered = 0;
        let mut errors = Vec::new();
        for _ in 0..n {
            match fetch(&url).await {
                Ok(_) => answered += 1,
                Err(e) => errors.push(e),
            }
        }
        errors.dedup();
        let report = format!("answered={answered} errors={}\n", errors.join(","));
        return Ok(Response::new(report.into()));
    }
    let report = match fetch(&url).await {
        Ok((status, body)) => format!("status={status}\n{body}"),
        Err(e) => format!("error={e}\n"),
    };
    Ok(Response::new(report.into()))
}

/// A GET of `url`: its status and body, or the host's error code.
async fn fetch(url: &str) -> std::result::Result<(u16, String), String> {
    let request = Request::get(url)
        .header("x-fetch-url", url)
        .body(Body::empty())
        .map_err(|e| format!("bad-request({e})"))?;
    match Client::new().send(request).await {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .str_contents()
                .await
                .map(str::to_owned)
                .unwrap_or_default();
            Ok((status, body))
        }
        Err(e) => Err(match e.downcast_ref::<floe_sdk::http::error::ErrorCode>() {
            Some(code) => format!("{code:?}"),
            None => format!("{e:#}"),
        }),
    }
}
