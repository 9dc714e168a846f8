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
//! A handler that returns `Err` answers `500 function_error`; one that panics
//! traps: floe answers `500 trap` and discards the instance. [`http::json`]
//! answers with a value as JSON, and [`http::Client`] calls other services
//! (see [`http`]).
//!
//! ## Event functions
//!
//! An event function takes bytes and returns bytes; floe never decodes them:
//!
//! ```ignore
//! use floe_sdk::event::{Context, Error};
//!
//! floe_sdk::event_function!(handle);
//!
//! async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
//!     if payload.is_empty() {
//!         return Err(Error::invalid_input("empty payload")); // 400 invalid_input
//!     }
//!     Ok(payload.iter().rev().copied().collect())
//! }
//! ```
//!
//! It answers `POST /{name}` on the data plane and `POST
//! /v1/functions/{name}/invoke` on the control plane. [`event::Context`]
//! says which invocation it is and how much time is left
//! ([`event::Context::remaining`]); [`event::from_json`] and
//! [`event::to_json`] handle JSON payloads.
//!
//! ## Lifecycle hooks
//!
//! ```ignore
//! floe_sdk::lifecycle! {
//!     init: setup,            // fn() -> Result<(), impl Display>
//!     pre_freeze: flush,      // fn()
//!     pre_stop: goodbye,      // fn()
//! }
//! ```
//!
//! Every hook is optional; the ones left out are not called at all. `init`
//! runs once: at deploy, where floe snapshots its result so that every
//! instance starts initialized (unless it takes random bytes, or the function
//! is deployed with `preinit=instance`: then it runs once per instance).
//! `pre-freeze` runs when an instance has finished its requests and none
//! waits for it; `pre-stop` runs once before an instance is stopped. Hooks
//! are plain functions; one that needs to `.await` (an outbound request, say)
//! runs its future with [`wstd::runtime::block_on`].
//!
//! ## Instance reuse
//!
//! floe keeps an instance alive between requests (unless the function is
//! deployed with `reuse=false`), so statics and anything set up lazily (with
//! [`std::sync::OnceLock`], say) survive from one request to the next. An
//! instance that traps is thrown away, never reused.
//!
//! ## WASI 0.3
//!
//! With the `p3` feature, [`http_function_p3!`] makes a WASI 0.3 HTTP
//! function (`wasi:http/handler@0.3`): floe serves up to 16 requests at once
//! on each of its instances, and an `.await` on an outbound call
//! ([`p3::send`]) or a timer ([`p3::sleep`]) lets the others go on. See
//! [`p3`].
//!
//! ## Event sources
//!
//! An event function may be started by triggers the server runs for it:
//! cron schedules and MQTT subscriptions. With the `trigger` feature,
//! [`event::Context::trigger`] says which one fired and its details (see
//! `trigger`); with the `mqtt` feature, `mqtt::publish` publishes MQTT
//! messages through the function's durable outbox (store-and-forward). With
//! `config`, `config::get` reads the function's variables and secrets.
//!
//! ## Features
//!
//! - `json` (on by default): [`http::json`], [`event::from_json`],
//!   [`event::to_json`], the [`serde_json`] re-export, and wstd's
//!   `Body::from_json` and `Body::json`. Turn it off with
//!   `default-features = false` to leave serde out of the function's
//!   dependencies. Helpers a function does not call cost nothing in its
//!   component either way.
#![deny(missing_docs)]

pub use wstd;

#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "p3")]
pub mod p3;
#[cfg(feature = "trigger")]
pub mod trigger;

/// [`serde_json`], re-exported for its `json!` macro and `Value`.
#[cfg(feature = "json")]
pub use serde_json;

/// HTTP types for handlers: requests, responses, bodies, headers, and an
/// outbound [`Client`](http::Client).
///
/// Everything in [`wstd::http`] is here, plus [`json`](http::json) to answer
/// with JSON.
///
/// # Reading a request
///
/// The body is streamed: read it whole with `Body::contents`,
/// `Body::str_contents`, or (with the `json` feature) `Body::json`:
///
/// ```ignore
/// use floe_sdk::http::{Body, Request, Response, Result, StatusCode};
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Order { item: String, quantity: u32 }
///
/// async fn handle(mut request: Request<Body>) -> Result<Response<Body>> {
///     let order: Order = request.body_mut().json().await?;
///     floe_sdk::http::json(StatusCode::CREATED, &order)
/// }
/// ```
///
/// # Outbound HTTP
///
/// Functions have no sockets; they reach other services over HTTP or HTTPS
/// with [`Client`](http::Client) (`wasi:http/outgoing-handler`). It works in
/// HTTP and event handlers alike; the time a call takes counts toward the
/// function's `timeout`.
///
/// ```ignore
/// use floe_sdk::http::{Body, Client, Request, Response, Result};
///
/// async fn handle(_request: Request<Body>) -> Result<Response<Body>> {
///     let upstream = Request::get("https://example.com/").body(Body::empty())?;
///     let mut answer = Client::new().send(upstream).await?;
///     let status = answer.status();
///     let text = answer.body_mut().str_contents().await?;
///     Ok(Response::new(format!("{status}, {} bytes\n", text.len()).into()))
/// }
/// ```
///
/// `Client::set_connect_timeout`, `set_first_byte_timeout` and
/// `set_between_bytes_timeout` bound one call more tightly than the
/// function's `timeout`.
pub mod http {
    pub use wstd::http::*;

    /// A response with `status` whose body is `value` as JSON, with
    /// `content-type: application/json`.
    ///
    /// ```ignore
    /// use floe_sdk::http::{Body, Request, Response, Result, StatusCode};
    ///
    /// async fn handle(_request: Request<Body>) -> Result<Response<Body>> {
    ///     floe_sdk::http::json(StatusCode::OK, &floe_sdk::serde_json::json!({"ok": true}))
    /// }
    /// ```
    ///
    /// Fails only where `value`'s `Serialize` implementation does (a map
    /// with keys that are not strings, say).
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(
        status: StatusCode,
        value: &T,
    ) -> Result<Response<Body>> {
        let body = serde_json::to_vec(value)?;
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))?)
    }
}

/// Timers and sleeping inside a handler.
pub mod time {
    pub use wstd::task::sleep;
    pub use wstd::time::*;
}

/// Event functions: what floe passes in, and how a function refuses or fails.
///
/// The handler returns [`Error::InvalidInput`](event::Error::InvalidInput)
/// for a payload it cannot take: the caller gets `400 invalid_input` with the
/// message, and an asynchronous invocation is not retried.
/// [`Error::Failed`](event::Error::Failed) answers `500 function_error` with
/// the message, and an asynchronous invocation is retried. A panic traps:
/// `500 trap`, and the instance is discarded.
///
/// With the `json` feature, [`from_json`](event::from_json) and
/// [`to_json`](event::to_json) map JSON payloads onto those errors:
///
/// ```ignore
/// use floe_sdk::event::{self, Context, Error};
///
/// #[derive(serde::Deserialize)]
/// struct Resize { width: u32, height: u32 }
///
/// async fn handle(context: Context, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
///     let resize: Resize = event::from_json(&payload)?; // 400 if it does not parse
///     if context.remaining() < std::time::Duration::from_secs(1) {
///         return Err(Error::failed("not enough time left"));
///     }
///     event::to_json(&[resize.width * 2, resize.height * 2])
/// }
/// ```
pub mod event {
    use std::fmt;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// What floe tells an event function about one invocation.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Context {
        /// The invocation's id.
        pub request_id: String,
        /// The function's name.
        pub function: String,
        /// The version serving the invocation.
        pub version: u64,
        /// When the invocation must be done, in milliseconds since the Unix
        /// epoch.
        pub deadline_ms: u64,
        /// The instance's memory limit, in bytes.
        pub memory_limit: u64,
        /// The `Content-Type` the caller sent, if any.
        pub content_type: Option<String>,
    }

    impl Context {
        /// The time left before [`deadline_ms`](Self::deadline_ms), zero
        /// once it has passed. Past the deadline floe stops the function and
        /// the caller gets `504 timeout`: a handler that works in steps can
        /// check this between them and stop in time, with a result or an
        /// [`Error`] of its own.
        pub fn remaining(&self) -> Duration {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Duration::from_millis(self.deadline_ms).saturating_sub(now)
        }
    }

    /// Why an event function did not produce a result.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Error {
        /// The payload cannot be processed: the caller gets 400.
        InvalidInput(String),
        /// The function failed: the caller gets 500.
        Failed(String),
    }

    impl Error {
        /// The payload cannot be processed.
        pub fn invalid_input(message: impl Into<String>) -> Self {
            Self::InvalidInput(message.into())
        }

        /// The function failed.
        pub fn failed(message: impl Into<String>) -> Self {
            Self::Failed(message.into())
        }

        /// The message the caller gets.
        pub fn message(&self) -> &str {
            match self {
                Self::InvalidInput(message) | Self::Failed(message) => message,
            }
        }
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::InvalidInput(message) => write!(f, "invalid input: {message}"),
                Self::Failed(message) => write!(f, "failed: {message}"),
            }
        }
    }

    impl std::error::Error for Error {}

    /// Decodes a JSON payload into `T`. A payload that is not JSON, or not
    /// the JSON `T` expects, is refused: [`Error::InvalidInput`] (400) with
    /// serde's message.
    #[cfg(feature = "json")]
    pub fn from_json<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(payload)
            .map_err(|e| Error::invalid_input(format!("the payload is not the expected JSON: {e}")))
    }

    /// Encodes `value` as JSON, to return as the result. Fails
    /// ([`Error::Failed`], 500) only where `value`'s `Serialize`
    /// implementation does.
    #[cfg(feature = "json")]
    pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(value)
            .map_err(|e| Error::failed(format!("the result cannot be encoded as JSON: {e}")))
    }
}

/// Turns an `async fn(Context, Vec<u8>) -> Result<Vec<u8>, Error>` into the
/// component's `floe:function/event` export. See [`event`].
#[macro_export]
macro_rules! event_function {
    ($handler:path) => {
        struct __FloeEventFunction;

        impl $crate::__bindings::event::exports::floe::function::event::Guest for __FloeEventFunction {
            fn handle(
                context: $crate::__bindings::event::exports::floe::function::event::Context,
                payload: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                $crate::__bindings::event::exports::floe::function::event::Error,
            > {
                $crate::__internal::handle_event(context, payload, $handler)
            }
        }

        $crate::__bindings::event::export!(
            __FloeEventFunction with_types_in $crate::__bindings::event
        );
    };
}

/// Exports `floe:function/lifecycle` with the hooks given; those left out are
/// never called (floe reads which ones there are from the component).
///
/// ```ignore
/// floe_sdk::lifecycle! { init: setup, pre_stop: flush }
/// ```
#[macro_export]
macro_rules! lifecycle {
    ($($hook:ident : $f:path),* $(,)?) => {
        $( $crate::__floe_known_hook!($hook); )*

        struct __FloeLifecycle;

        impl $crate::__bindings::lifecycle::exports::floe::function::lifecycle::Guest for __FloeLifecycle {
            fn init() -> ::std::result::Result<(), ::std::string::String> {
                $crate::__floe_hook!(init, ::std::result::Result::Ok(()); $($hook : $f),*)
            }

            fn pre_freeze() {
                $crate::__floe_hook!(pre_freeze, {}; $($hook : $f),*)
            }

            fn pre_stop() {
                $crate::__floe_hook!(pre_stop, {}; $($hook : $f),*)
            }
        }

        $crate::__bindings::lifecycle::export!(
            __FloeLifecycle with_types_in $crate::__bindings::lifecycle
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
macro_rules! __floe_known_hook {
    (init) => {};
    (pre_freeze) => {};
    (pre_stop) => {};
    ($other:ident) => {
        compile_error!(concat!(
            "unknown lifecycle hook `",
            stringify!($other),
            "` (the hooks are init, pre_freeze and pre_stop)"
        ));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __floe_hook {
    ($want:ident, $default:expr;) => { $default };
    (init, $default:expr; init : $f:path $(, $k:ident : $g:path)*) => {
        $crate::__internal::init_result($f())
    };
    (pre_freeze, $default:expr; pre_freeze : $f:path $(, $k:ident : $g:path)*) => { $f() };
    (pre_stop, $default:expr; pre_stop : $f:path $(, $k:ident : $g:path)*) => { $f() };
    ($want:ident, $default:expr; $k0:ident : $f0:path $(, $k:ident : $g:path)*) => {
        $crate::__floe_hook!($want, $default; $($k : $g),*)
    };
}

/// GPU frame work on the server's device: pixel-format conversion,
/// resizing, cropping, thumbnails and scene-change scores, run as compute
/// kernels (on a software device where the server has no GPU; same
/// results). Needs the `gpu` feature.
///
/// ```ignore
/// use floe_sdk::gpu::{Frame, FrameRef, Operation, Pipeline, PixelFormat, Size, Thumbnail};
///
/// let thumbs = Pipeline::new(&[Operation::Thumbnail(Thumbnail {
///     fit: Size { width: 320, height: 180 },
///     color: floe_sdk::gpu::BT709_LIMITED,
/// })]);
/// let frame = FrameRef { width: 1920, height: 1080, format: PixelFormat::I420, data: &bytes };
/// let small: Frame = thumbs.run(frame)?; // RGBA8, at most 320x180
/// let score = floe_sdk::gpu::difference(previous, frame)?; // 0.0 ..= 255.0
/// ```
///
/// Frames are packed planes: I420 is Y, U, V; NV12 is Y then interleaved
/// UV; RGBA8 is 4 bytes a pixel. Errors are typed: `BadDimensions`,
/// `BudgetExceeded`, `DeviceLost` (retry), `Unavailable`.
#[cfg(feature = "gpu")]
pub mod gpu {
    #[allow(missing_docs, reason = "generated; the WIT documents the interface")]
    mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "floe:function/gpu-imports",
            // Frames go to the host borrowed, not copied first.
            ownership: Borrowing { duplicate_if_necessary: true },
        });
    }

    pub use bindings::floe::function::gpu::*;

    /// A frame the function sends: its bytes are borrowed, not copied.
    pub type FrameRef<'a> = FrameParam<'a>;
    /// A frame the host answers with.
    pub type Frame = FrameResult;

    /// BT.601, limited range (standard-definition video).
    pub const BT601_LIMITED: Color = Color {
        matrix: ColorMatrix::Bt601,
        range: ColorRange::Limited,
    };
    /// BT.709, limited range (high-definition video).
    pub const BT709_LIMITED: Color = Color {
        matrix: ColorMatrix::Bt709,
        range: ColorRange::Limited,
    };
    /// BT.709, full range.
    pub const BT709_FULL: Color = Color {
        matrix: ColorMatrix::Bt709,
        range: ColorRange::Full,
    };
}

#[doc(hidden)]
pub mod __bindings {
    /// Bindings of `floe:function/event`.
    pub mod event {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "floe:function/event-exports",
            pub_export_macro: true,
            default_bindings_module: "floe_sdk::__bindings::event",
        });
    }

    /// Bindings of `floe:function/lifecycle`.
    pub mod lifecycle {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "floe:function/lifecycle-exports",
            pub_export_macro: true,
            default_bindings_module: "floe_sdk::__bindings::lifecycle",
        });
    }
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
/// A handler that returns `Err` answers `500 function_error` (the error goes
/// to floe's log, not to the client); one that panics traps, and floe answers
/// `500 trap` and discards the instance. To answer with another status,
/// return `Ok` with a response that has it.
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

    use crate::__bindings::event::exports::floe::function::event as wit;

    /// A string's bytes as an array (for the `floe:hooks` section).
    pub const fn bytes<const N: usize>(s: &str) -> [u8; N] {
        let src = s.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = src[i];
            i += 1;
        }
        out
    }

    /// `init`'s result, with any displayable error as the message.
    pub fn init_result<E: std::fmt::Display>(result: Result<(), E>) -> Result<(), String> {
        result.map_err(|e| e.to_string())
    }

    /// Runs an event handler on wstd's executor.
    pub fn handle_event<F, Fut>(
        context: wit::Context,
        payload: Vec<u8>,
        handler: F,
    ) -> Result<Vec<u8>, wit::Error>
    where
        F: FnOnce(crate::event::Context, Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, crate::event::Error>>,
    {
        let context = crate::event::Context {
            request_id: context.request_id,
            function: context.function,
            version: context.version,
            deadline_ms: context.deadline_ms,
            memory_limit: context.memory_limit,
            content_type: context.content_type,
        };
        wstd::runtime::block_on(handler(context, payload)).map_err(|e| match e {
            crate::event::Error::InvalidInput(m) => wit::Error::InvalidInput(m),
            crate::event::Error::Failed(m) => wit::Error::Failed(m),
        })
    }

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

#[cfg(test)]
mod tests {
    use crate::event::{Context, Error};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn context(deadline_ms: u64) -> Context {
        Context {
            request_id: "r".into(),
            function: "f".into(),
            version: 1,
            deadline_ms,
            memory_limit: 1 << 20,
            content_type: None,
        }
    }

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn remaining_counts_down_to_the_deadline_and_stops_at_zero() {
        let left = context(now_ms() + 10_000).remaining();
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
        assert_eq!(context(now_ms() - 1_000).remaining(), Duration::ZERO);
        assert_eq!(context(0).remaining(), Duration::ZERO);
    }

    #[test]
    fn errors_display_their_kind_and_message() {
        assert_eq!(
            Error::invalid_input("empty").to_string(),
            "invalid input: empty"
        );
        assert_eq!(Error::failed("boom").to_string(), "failed: boom");
        assert_eq!(Error::failed("boom").message(), "boom");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_payloads_map_onto_event_errors() {
        let n: Vec<u32> = crate::event::from_json(b"[1,2]").unwrap();
        assert_eq!(n, [1, 2]);
        let err = crate::event::from_json::<Vec<u32>>(b"{").unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert_eq!(crate::event::to_json(&n).unwrap(), b"[1,2]");
        let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(matches!(crate::event::to_json(&bad), Err(Error::Failed(_))));
    }

    #[cfg(feature = "json")]
    #[test]
    fn http_json_sets_status_type_and_body() {
        use crate::http::StatusCode;
        let mut response =
            crate::http::json(StatusCode::CREATED, &crate::serde_json::json!({"ok": true}))
                .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = wstd::runtime::block_on(response.body_mut().str_contents())
            .unwrap()
            .to_owned();
        assert_eq!(body, r#"{"ok":true}"#);
    }
}
