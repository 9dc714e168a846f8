//! WASI 0.3 HTTP functions (feature `p3`).
//!
//! A WASI 0.3 component exports `wasi:http/handler@0.3`, whose `handle` is
//! an async function: floe runs up to `instance_concurrency` requests (16 by
//! default) on one instance at once, and while one awaits a timer or an
//! outbound call, the others go on. A handler is a plain `async fn`:
//!
//! ```ignore
//! use floe_sdk::p3::{Request, Response, Result};
//!
//! floe_sdk::http_function_p3!(handle);
//!
//! async fn handle(request: Request) -> Result<Response> {
//!     Ok(Response::new(format!("hello from {}\n", request.uri().path())))
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (WASI 0.3
//! components are built on that target) and deploy the `.wasm` as any other.
//!
//! A handler that returns `Err` answers `500 function_error`; one that
//! panics traps, and floe stops the instance: the requests on it at that
//! time answer `503 instance_lost`. Statics are shared by every request on
//! the instance, concurrently: keep per-request state in the handler.

use std::time::Duration;

pub use bytes::Bytes;
pub use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
pub use http_body_util::BodyExt;
pub use wasip3;
pub use wasip3::http_compat::{IncomingRequestBody, IncomingResponseBody};

/// A request as the handler gets it; its body streams in (read it whole
/// with [`BodyExt::collect`], or with [`body_bytes`]).
pub type Request<B = IncomingRequestBody> = http::Request<B>;
/// A response; its body is any `http_body::Body` (a `String`, `Bytes`,
/// `http_body_util::Full`, a stream).
pub type Response<B = String> = http::Response<B>;
/// Any error: its text goes to floe's log, the client gets `500
/// function_error`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// A handler's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a whole body (a request's or an outbound response's).
pub async fn body_bytes<B>(body: B) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Error>,
{
    Ok(body.collect().await.map_err(Into::into)?.to_bytes())
}

/// Sends an outbound request (`wasi:http/client.send`) and awaits its
/// response head; the instance serves its other requests meanwhile. floe
/// applies the function's outbound policy, and the call counts toward its
/// `timeout`.
pub async fn send<B>(request: http::Request<B>) -> Result<http::Response<IncomingResponseBody>>
where
    B: http_body::Body + std::any::Any,
    B::Data: Into<Vec<u8>>,
    B::Error: Into<Error>,
{
    let request = wasip3::http_compat::http_into_wasi_request(request)?;
    let response = wasip3::http::client::send(request).await?;
    Ok(wasip3::http_compat::http_from_wasi_response(response)?)
}

/// Awaits `duration` without holding the instance: its other requests go on.
pub async fn sleep(duration: Duration) {
    let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    wasip3::clocks::monotonic_clock::wait_for(ns).await;
}

#[doc(hidden)]
pub mod __internal {
    use super::{Error, Request, Response};
    use std::future::Future;
    use wasip3::http::types::{self, ErrorCode};

    /// Runs one request through `handler`.
    pub async fn serve<F, Fut, B>(
        request: types::Request,
        handler: F,
    ) -> Result<types::Response, ErrorCode>
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Result<Response<B>, Error>>,
        B: http_body::Body + std::any::Any,
        B::Data: Into<Vec<u8>>,
        B::Error: Into<Error>,
    {
        let request = wasip3::http_compat::http_from_wasi_request(request)?;
        match handler(request).await {
            Ok(response) => wasip3::http_compat::http_into_wasi_response(response),
            Err(err) => {
                eprintln!("floe-sdk: the handler failed: {err}");
                Err(ErrorCode::InternalError(Some(err.to_string())))
            }
        }
    }
}

/// Turns an `async fn(Request) -> Result<Response<B>>` into the component's
/// `wasi:http/handler@0.3` export (feature `p3`).
///
/// ```ignore
/// floe_sdk::http_function_p3!(handle);
/// ```
#[macro_export]
macro_rules! http_function_p3 {
    ($handler:path) => {
        struct __FloeHttpFunctionP3;

        impl $crate::p3::wasip3::exports::http::handler::Guest for __FloeHttpFunctionP3 {
            async fn handle(
                request: $crate::p3::wasip3::http::types::Request,
            ) -> ::core::result::Result<
                $crate::p3::wasip3::http::types::Response,
                $crate::p3::wasip3::http::types::ErrorCode,
            > {
                $crate::p3::__internal::serve(request, $handler).await
            }
        }

        $crate::p3::wasip3::http::service::export!(__FloeHttpFunctionP3);
    };
}
