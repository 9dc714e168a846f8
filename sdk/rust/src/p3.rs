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
//!
//! Event functions and hooks are async too (`floe:function@0.2.0`): many
//! invocations run on one instance at once, and a hook may await.
//!
//! ```ignore
//! use floe_sdk::event::{Context, Error};
//!
//! floe_sdk::event_function_p3!(handle);
//! floe_sdk::lifecycle_p3! { init: setup, pre_stop: flush }
//!
//! async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
//!     floe_sdk::p3::sleep(std::time::Duration::from_millis(50)).await;
//!     Ok(payload)
//! }
//! async fn setup() -> Result<(), String> { Ok(()) }
//! async fn flush() {}
//! ```

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
pub mod __bindings {
    /// Bindings of `floe:function/event@0.2.0`.
    pub mod event {
        wit_bindgen_p3::generate!({
            path: "../../wit/p3",
            world: "async-event-exports",
            runtime_path: "wit_bindgen_p3::rt",
            export_macro_name: "export_event",
            pub_export_macro: true,
            default_bindings_module: "floe_sdk::p3::__bindings::event",
        });
    }

    /// Bindings of `floe:function/lifecycle@0.2.0`.
    pub mod lifecycle {
        wit_bindgen_p3::generate!({
            path: "../../wit/p3",
            world: "async-lifecycle-exports",
            runtime_path: "wit_bindgen_p3::rt",
            export_macro_name: "export_lifecycle",
            pub_export_macro: true,
            default_bindings_module: "floe_sdk::p3::__bindings::lifecycle",
        });
    }
}

#[doc(hidden)]
pub mod __internal {
    use super::{Error, Request, Response};
    use std::future::Future;
    use wasip3::http::types::{self, ErrorCode};

    use super::__bindings::event::exports::floe::function::event as wit;

    /// Runs an event handler (its task is the invocation's).
    pub async fn handle_event<F, Fut>(
        context: wit::Context,
        payload: Vec<u8>,
        handler: F,
    ) -> Result<Vec<u8>, wit::Error>
    where
        F: FnOnce(crate::event::Context, Vec<u8>) -> Fut,
        Fut: Future<Output = Result<Vec<u8>, crate::event::Error>>,
    {
        let context = crate::event::Context {
            request_id: context.request_id,
            function: context.function,
            version: context.version,
            deadline_ms: context.deadline_ms,
            memory_limit: context.memory_limit,
            content_type: context.content_type,
        };
        handler(context, payload).await.map_err(|e| match e {
            crate::event::Error::InvalidInput(m) => wit::Error::InvalidInput(m),
            crate::event::Error::Failed(m) => wit::Error::Failed(m),
        })
    }

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

/// Turns an `async fn(Context, Vec<u8>) -> Result<Vec<u8>, Error>` (from
/// [`crate::event`]) into the component's `floe:function/event@0.2.0`
/// export (feature `p3`): a WASI 0.3 event function, whose instances run up
/// to `instance_concurrency` invocations at once.
///
/// ```ignore
/// floe_sdk::event_function_p3!(handle);
/// ```
#[macro_export]
macro_rules! event_function_p3 {
    ($handler:path) => {
        struct __FloeEventFunctionP3;

        impl $crate::p3::__bindings::event::exports::floe::function::event::Guest
            for __FloeEventFunctionP3
        {
            async fn handle(
                context: $crate::p3::__bindings::event::exports::floe::function::event::Context,
                payload: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                $crate::p3::__bindings::event::exports::floe::function::event::Error,
            > {
                $crate::p3::__internal::handle_event(context, payload, $handler).await
            }
        }

        $crate::p3::__bindings::event::export_event!(
            __FloeEventFunctionP3 with_types_in $crate::p3::__bindings::event
        );
    };
}

/// Exports `floe:function/lifecycle@0.2.0` with the async hooks given
/// (feature `p3`, for WASI 0.3 functions); those left out are never called.
/// `init` is an `async fn() -> Result<(), E>` with a displayable `E`, the
/// others `async fn()`.
///
/// ```ignore
/// floe_sdk::lifecycle_p3! { init: setup, pre_freeze: flush }
/// ```
#[macro_export]
macro_rules! lifecycle_p3 {
    ($($hook:ident : $f:path),* $(,)?) => {
        $( $crate::__floe_known_hook!($hook); )*

        struct __FloeLifecycleP3;

        impl $crate::p3::__bindings::lifecycle::exports::floe::function::lifecycle::Guest
            for __FloeLifecycleP3
        {
            async fn init() -> ::std::result::Result<(), ::std::string::String> {
                $crate::__floe_hook_p3!(init, ::std::result::Result::Ok(()); $($hook : $f),*)
            }

            async fn pre_freeze() {
                $crate::__floe_hook_p3!(pre_freeze, {}; $($hook : $f),*)
            }

            async fn pre_stop() {
                $crate::__floe_hook_p3!(pre_stop, {}; $($hook : $f),*)
            }
        }

        $crate::p3::__bindings::lifecycle::export_lifecycle!(
            __FloeLifecycleP3 with_types_in $crate::p3::__bindings::lifecycle
        );

        // Which hooks are real: floe calls only these.
        const _: () = {
            const HOOKS: &str = concat!($(stringify!($hook), " "),*);
            #[used]
            #[unsafe(link_section = "floe:hooks")]
            static HOOK_LIST: [u8; HOOKS.len()] = $crate::__internal::bytes(HOOKS);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __floe_hook_p3 {
    ($want:ident, $default:expr;) => { $default };
    (init, $default:expr; init : $f:path $(, $k:ident : $g:path)*) => {
        $crate::__internal::init_result($f().await)
    };
    (pre_freeze, $default:expr; pre_freeze : $f:path $(, $k:ident : $g:path)*) => { $f().await };
    (pre_stop, $default:expr; pre_stop : $f:path $(, $k:ident : $g:path)*) => { $f().await };
    ($want:ident, $default:expr; $k0:ident : $f0:path $(, $k:ident : $g:path)*) => {
        $crate::__floe_hook_p3!($want, $default; $($k : $g),*)
    };
}
