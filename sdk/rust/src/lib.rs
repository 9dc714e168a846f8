//! # floe-sdk: floe functions in Rust
//!
//! A floe HTTP function is a WebAssembly component that exports
//! `wasi:http/incoming-handler`. This crate turns an ordinary `async fn` into
//! that export, on top of the [`wstd`] async runtime for WASI 0.2:
//!
//! ```ignore
//! use floe_sdk::http::{Body, Request, Response, Result};
//!
//! floe_sdk::http_function!(handle);
//!
//! async fn handle(request: Request<Body>) -> Result<Response<Body>> {
//!     Ok(Response::new(format!("hello from {}\n", request.uri().path()).into()))
//! }
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2` and upload the `.wasm` file:
//!
//! ```text
//! cargo build --release --target wasm32-wasip2
//! floe deploy hello target/wasm32-wasip2/release/hello.wasm
//! ```
//!
//! ## Instance reuse
//!
//! floe keeps an instance alive between requests (unless the function is
//! deployed with `reuse=false`), so statics and anything set up lazily (with
//! [`std::sync::OnceLock`], say) survive from one request to the next. An
//! instance that traps is thrown away, never reused.
#![deny(missing_docs)]

pub use wstd;

/// HTTP types for handlers: requests, responses, bodies, headers, and an
/// outbound [`http::Client`].
pub mod http {
    pub use wstd::http::*;
}

/// Timers and sleeping inside a handler.
pub mod time {
    pub use wstd::task::sleep;
    pub use wstd::time::*;
}

/// Turns an `async fn(Request<Body>) -> Result<Response<B>>` into the
/// component's `wasi:http/incoming-handler` export.
///
/// Use it once per component, at the top level of the crate:
///
/// ```ignore
/// floe_sdk::http_function!(handle);
/// ```
///
/// A handler that returns `Err` answers with a 500 status; one that panics
/// traps, and floe answers 500 and discards the instance.
#[macro_export]
macro_rules! http_function {
    ($handler:path) => {
        struct __FloeHttpFunction;

        impl $crate::__internal::wasip2::exports::http::incoming_handler::Guest
            for __FloeHttpFunction
        {
            fn handle(
                request: $crate::__internal::wasip2::http::types::IncomingRequest,
                response_out: $crate::__internal::wasip2::http::types::ResponseOutparam,
            ) {
                $crate::__internal::serve(request, response_out, $handler)
            }
        }

        $crate::__internal::wasip2::http::proxy::export!(
            __FloeHttpFunction with_types_in $crate::__internal::wasip2
        );
    };
}

#[doc(hidden)]
pub mod __internal {
    pub use wstd::__internal::wasip2;

    use std::future::Future;
    use wasip2::http::types::{IncomingRequest, ResponseOutparam};
    use wstd::http::server::Responder;
    use wstd::http::{Body, Error, Request, Response};

    /// Runs one request through `handler` on wstd's executor.
    pub fn serve<F, Fut, B>(request: IncomingRequest, response_out: ResponseOutparam, handler: F)
    where
        F: FnOnce(Request<Body>) -> Fut,
        Fut: Future<Output = Result<Response<B>, Error>>,
        B: Into<Body>,
    {
        let responder = Responder::new(response_out);
        wstd::runtime::block_on(async move {
            let request = match wstd::http::request::try_from_incoming(request) {
                Ok(request) => request,
                Err(err) => return responder.fail(err),
            };
            match handler(request).await {
                Ok(response) => {
                    // The response head is already out when writing the body
                    // fails (the client went away, say): there is nobody left
                    // to tell, and trapping would only cost the instance.
                    if let Err(err) = responder.respond(response).await {
                        eprintln!("floe-sdk: writing the response body failed: {err}");
                    }
                }
                Err(err) => responder.fail(err),
            }
        })
    }
}
