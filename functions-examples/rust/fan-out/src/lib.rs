//! Awaits a slow outbound call, the case where concurrency per instance
//! matters: while one request waits for its upstream, the instance serves
//! others. `GET /?url=U` fetches `U` (or the `x-upstream` header's URL) and
//! answers its status and length; `GET /?url=U&n=N` fetches it N times at
//! once and answers when all are back.

use floe_sdk::p3::{self, Request, Response, Result, StatusCode, body_bytes};

floe_sdk::http_function_p3!(handle);

async fn handle(request: Request) -> Result<Response> {
    let query = request.uri().query().unwrap_or("");
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let url = param("url").or_else(|| {
        request
            .headers()
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let Some(url) = url else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("give the upstream as ?url= or x-upstream\n".into())?);
    };
    let n: usize = param("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .clamp(1, 64);
    let calls = (0..n).map(|_| fetch(&url));
    let mut bytes = 0;
    let mut status = 0;
    for result in futures_join(calls).await {
        let (s, len) = result?;
        status = s;
        bytes += len;
    }
    Ok(Response::new(format!(
        "status={status} bytes={bytes} calls={n}\n"
    )))
}

async fn fetch(url: &str) -> Result<(u16, usize)> {
    let upstream = Request::get(url).body(String::new())?;
    let response = p3::send(upstream).await?;
    let status = response.status().as_u16();
    let body = body_bytes(response.into_body()).await?;
    Ok((status, body.len()))
}

/// Awaits every future, all at once.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}
