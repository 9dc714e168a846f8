//! A WASI 0.3 HTTP component built straight on the `wasip3` crate, with no
//! floe code in it. Its routes:
//!
//! - `/`: a greeting; `/echo`: the request body back;
//! - `/sleep?ms=N`: answers after awaiting a timer for N ms (other requests
//!   on the instance go on meanwhile);
//! - `/fetch?url=U`: awaits a GET of `U` and answers its status and body;
//! - `/id`: the address of a static, which tells instances apart;
//! - `/spin`, `/trap`, `/hog`, `/error`: a guest that spins on the CPU,
//!   panics, allocates until its memory limit, or answers a wasi-http error
//!   code instead of a response.

use http_body_util::BodyExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use wasip3::http::types::{self, ErrorCode};
use wasip3::http_compat::{
    IncomingRequestBody, http_from_wasi_request, http_from_wasi_response, http_into_wasi_request,
    http_into_wasi_response,
};

wasip3::http::service::export!(Raw);

struct Raw;

static SERVED: AtomicU64 = AtomicU64::new(0);

impl wasip3::exports::http::handler::Guest for Raw {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        let request = http_from_wasi_request(request)?;
        let response = serve(request).await?;
        http_into_wasi_response(response)
    }
}

fn query(request: &http::Request<IncomingRequestBody>, key: &str) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn internal(message: impl ToString) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_string()))
}

async fn serve(
    request: http::Request<IncomingRequestBody>,
) -> Result<http::Response<String>, ErrorCode> {
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    match request.uri().path() {
        "/" => Ok(http::Response::new("hello from WASI 0.3\n".to_string())),
        "/id" => Ok(http::Response::new(format!(
            "{:p} {served}\n",
            &SERVED as *const AtomicU64
        ))),
        "/echo" => {
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(internal)?
                .to_bytes();
            Ok(http::Response::new(
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
        "/sleep" => {
            let ms: u64 = query(&request, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
            Ok(http::Response::new(format!("slept {ms} ms\n")))
        }
        "/fetch" => {
            let url = query(&request, "url").ok_or_else(|| internal("no url"))?;
            let outbound = http::Request::get(url)
                .body(String::new())
                .map_err(internal)?;
            let response = wasip3::http::client::send(http_into_wasi_request(outbound)?).await?;
            let response = http_from_wasi_response(response)?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(internal)?
                .to_bytes();
            Ok(http::Response::new(format!(
                "{} {}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            )))
        }
        "/spin" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/trap" => panic!("a deliberate trap"),
        "/hog" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/error" => Err(internal("a deliberate error code")),
        _ => Ok(http::Response::builder()
            .status(404)
            .body("no such route\n".to_string())
            .map_err(internal)?),
    }
}
