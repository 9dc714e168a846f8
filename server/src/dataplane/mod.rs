//! The data plane: routes a request to its function, lends it an instance and
//! returns the function's response.
//!
//! [`DataPlane::handle`] never fails: every problem becomes a short JSON error
//! response (see [`crate::status`]), logged once here with the request id.
//! It does not own a listener, so an embedder can hand it requests directly.

mod asynch;
mod body;
mod router;

pub use body::{LimitedBody, ResponseBody};
pub use router::{Route, RouteBy, route};

use crate::bindings::event;
use crate::invocations::Invocations;
use crate::metrics::Metrics;
use crate::pool::{EventReply, InvokeError};
use crate::registry::{Function, Registry};
use crate::status::{ErrorCode, error_response};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The header telling a path-routed function which prefix was stripped.
pub const FORWARDED_PREFIX: &str = "x-forwarded-prefix";
/// The request id header, read from clients and set on error responses.
pub const REQUEST_ID: &str = "x-request-id";

/// Routes and serves data-plane requests.
#[derive(Clone)]
pub struct DataPlane {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    domain: Arc<str>,
    max_uri_bytes: usize,
    ids: Arc<RequestIds>,
    invocations: OnceLock<Arc<Invocations>>,
}

impl DataPlane {
    /// The registry requests are routed through.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Enables async invocations (`Prefer: respond-async`, `?mode=async`).
    pub fn set_invocations(&self, invocations: Arc<Invocations>) {
        let _ = self.invocations.set(invocations);
    }
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// A request's id: the client's `x-request-id`, or one made up the first time
/// it is needed (for an error or a log line), not for every request.
struct RequestId<'a> {
    given: Option<String>,
    made: OnceLock<String>,
    ids: &'a RequestIds,
}

impl RequestId<'_> {
    fn get(&self) -> &str {
        match &self.given {
            Some(id) => id,
            None => self.made.get_or_init(|| self.ids.next()),
        }
    }
}

/// Request ids: a random per-process prefix and a counter, so ids are unique
/// across restarts without a system call per request.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut raw = [0u8; 4];
        let _ = getrandom::fill(&mut raw);
        Self {
            prefix: u32::from_le_bytes(raw),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "{:08x}{:08x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

impl DataPlane {
    /// A data plane over `registry`.
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        domain: &str,
        max_uri_bytes: usize,
    ) -> Self {
        Self {
            registry,
            metrics,
            domain: domain.into(),
            max_uri_bytes,
            ids: Arc::new(RequestIds::new()),
            invocations: OnceLock::new(),
        }
    }

    /// Serves one request.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let start = Instant::now();
        let request_id = self.request_id(&request);

        let uri_len = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if uri_len > self.max_uri_bytes {
            return reject(
                ErrorCode::UriTooLong,
                "the request target is too long",
                request_id.get(),
            );
        }
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| request.headers().get(HOST).and_then(|h| h.to_str().ok()));
        let Some(route) = route(&self.domain, host, request.uri().path()) else {
            self.metrics.server.unrouted.fetch_add(1, Ordering::Relaxed);
            return reject(
                ErrorCode::NotFound,
                "no function is addressed by this request",
                request_id.get(),
            );
        };
        let Some(function) = self.registry.get(route.function) else {
            return self.missing(route.function, &request_id);
        };
        let rest = match &route.by {
            RouteBy::Path { rest } => Some((*rest).to_owned()),
            RouteBy::Host => None,
        };
        // A function without an HTTP handler takes events on the data plane.
        let as_event = function.runnable.prepared.http.is_none();
        self.serve(&function, request, rest, &request_id, start, as_event)
            .await
    }

    /// Invokes `name` as an event function (`POST
    /// /v1/functions/{name}/invoke`): the request's body is the payload, the
    /// answer's body the function's output.
    pub async fn invoke_event<B>(&self, name: &str, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let start = Instant::now();
        let request_id = self.request_id(&request);
        let Some(function) = self.registry.get(name) else {
            return self.missing(name, &request_id);
        };
        if function.runnable.prepared.event.is_none() {
            return reject(
                ErrorCode::BadRequest,
                "this function does not export floe:function/event",
                request_id.get(),
            );
        }
        self.serve(&function, request, None, &request_id, start, true)
            .await
    }

    fn request_id<'a, B>(&'a self, request: &Request<B>) -> RequestId<'a> {
        RequestId {
            given: request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 64)
                .map(str::to_owned),
            made: OnceLock::new(),
            ids: &self.ids,
        }
    }

    /// The answer for a function that is not there (404), or whose stored
    /// code cannot be loaded (503).
    fn missing(&self, name: &str, request_id: &RequestId<'_>) -> Response<ResponseBody> {
        if self.registry.is_unavailable(name) {
            return reject(
                ErrorCode::Unavailable,
                "this function's stored code cannot be loaded; redeploy it",
                request_id.get(),
            );
        }
        self.metrics.server.unrouted.fetch_add(1, Ordering::Relaxed);
        reject(ErrorCode::NotFound, "no such function", request_id.get())
    }

    async fn serve<B>(
        &self,
        function: &Function,
        request: Request<B>,
        rest: Option<String>,
        request_id: &RequestId<'_>,
        start: Instant,
        as_event: bool,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let span = tracing::debug_span!(
            "request",
            function = %function.name,
            version = function.version,
            request_id = tracing::field::Empty,
            instance = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        if !span.is_disabled() {
            span.record("request_id", request_id.get());
        }
        let response = if as_event {
            self.event(function, request, request_id, start)
                .instrument(span.clone())
                .await
        } else {
            self.invoke(function, request, rest, request_id, start)
                .instrument(span.clone())
                .await
        };
        let elapsed = start.elapsed();
        function.metrics.record(response.status(), elapsed);
        if !span.is_disabled() {
            span.record("status", response.status().as_u16());
            span.record("duration_us", elapsed.as_micros() as u64);
            span.in_scope(|| tracing::debug!("request answered"));
        }
        response
    }

    async fn event<B>(
        &self,
        function: &Function,
        request: Request<B>,
        request_id: &RequestId<'_>,
        start: Instant,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        if request.method() != Method::POST {
            return reject(
                ErrorCode::MethodNotAllowed,
                "an event function takes POST, with the payload as the body",
                request_id.get(),
            );
        }
        let settings = function.pool.settings();
        let limit = settings.max_request_body.bytes();
        let too_large = InvokeError::RequestBodyTooLarge { limit };
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return self.fail(function, &too_large, request_id.get());
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let async_request = match asynch::AsyncRequest::of(&request) {
            Ok(a) => a,
            Err(message) => return reject(ErrorCode::BadRequest, &message, request_id.get()),
        };
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(request.into_body(), limit, exceeded.clone());
        let payload = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) if exceeded.load(Ordering::Relaxed) => {
                return self.fail(function, &too_large, request_id.get());
            }
            Err(_) => {
                return reject(
                    ErrorCode::BadRequest,
                    "reading the payload failed",
                    request_id.get(),
                );
            }
        };
        if let Some(a) = async_request {
            return self
                .accept_async(function, a, payload, content_type, request_id.get())
                .await;
        }
        match self
            .run_event(function, request_id.get(), &payload, content_type, start)
            .await
        {
            Ok(EventReply::Output(bytes)) => {
                let mut response = Response::new(ResponseBody::Full(Full::new(Bytes::from(bytes))));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                response
            }
            Ok(EventReply::InvalidInput(message)) => {
                function.metrics.record_error(ErrorCode::InvalidInput);
                tracing::debug!(function = %function.name, request_id = request_id.get(), %message, "event refused by the function");
                error_response(
                    ErrorCode::InvalidInput,
                    &message,
                    request_id.get(),
                    None,
                    None,
                )
                .map(ResponseBody::Full)
            }
            Ok(EventReply::Failed(message)) => {
                function.metrics.record_error(ErrorCode::FunctionError);
                tracing::warn!(function = %function.name, request_id = request_id.get(), %message, "event failed");
                error_response(
                    ErrorCode::FunctionError,
                    &message,
                    request_id.get(),
                    None,
                    None,
                )
                .map(ResponseBody::Full)
            }
            Err(e) => self.fail(function, &e, request_id.get()),
        }
    }

    /// Runs one event through `function`'s pool: bytes in, the function's
    /// reply out. Shared by the synchronous paths and async invocations.
    pub(crate) async fn run_event(
        &self,
        function: &Function,
        request_id: &str,
        payload: &[u8],
        content_type: Option<String>,
        start: Instant,
    ) -> Result<EventReply, InvokeError> {
        let settings = function.pool.settings();
        let deadline = crate::pool::after(start, settings.timeout.0);
        let left = deadline.saturating_duration_since(Instant::now());
        let context = event::Context {
            request_id: request_id.to_owned(),
            function: function.name.to_string(),
            version: function.version,
            deadline_ms: unix_ms().saturating_add(left.as_millis() as u64),
            memory_limit: settings.memory.bytes(),
            content_type,
        };
        let lease = function.pool.acquire(deadline).await?;
        tracing::Span::current().record("instance", lease.instance_id());
        lease.invoke_event(&context, payload, deadline).await
    }

    async fn invoke<B>(
        &self,
        function: &Function,
        request: Request<B>,
        rest: Option<String>,
        request_id: &RequestId<'_>,
        start: Instant,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let settings = function.pool.settings();
        let body_limit = settings.max_request_body.bytes();
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > body_limit) {
            return self.fail(
                function,
                &InvokeError::RequestBodyTooLarge { limit: body_limit },
                request_id.get(),
            );
        }
        let (mut parts, body) = request.into_parts();
        if let Some(rest) = rest {
            let path = match parts.uri.query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest,
            };
            // Keep the scheme and authority (HTTP/2 carries the host there).
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = PathAndQuery::try_from(path).ok();
            match Uri::from_parts(uri) {
                Ok(uri) if uri.path_and_query().is_some() => parts.uri = uri,
                _ => {
                    return reject(
                        ErrorCode::BadRequest,
                        "the request path is not valid",
                        request_id.get(),
                    );
                }
            }
            parts
                .headers
                .insert(FORWARDED_PREFIX, function.forwarded_prefix.clone());
        }
        if !parts.headers.contains_key(HOST) {
            // HTTP/1.0 and in-process callers may send no Host; wasi-http
            // requires an authority.
            parts
                .headers
                .insert(HOST, HeaderValue::from_static("localhost"));
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(body, body_limit, exceeded.clone());
        let request = Request::from_parts(parts, body);

        let deadline = crate::pool::after(start, settings.timeout.0);
        let lease = match function.pool.acquire(deadline).await {
            Ok(lease) => lease,
            Err(e) => return self.fail(function, &e, request_id.get()),
        };
        tracing::Span::current().record("instance", lease.instance_id());
        let result = lease.handle(request, deadline).await;
        if exceeded.load(Ordering::Relaxed) {
            // The guest saw the body fail; the client should see why.
            return self.fail(
                function,
                &InvokeError::RequestBodyTooLarge { limit: body_limit },
                request_id.get(),
            );
        }
        match result {
            Ok(response) => response.map(ResponseBody::Guest),
            Err(e) => self.fail(function, &e, request_id.get()),
        }
    }

    fn fail(
        &self,
        function: &Function,
        error: &InvokeError,
        request_id: &str,
    ) -> Response<ResponseBody> {
        let code = ErrorCode::from(error);
        function.metrics.record_error(code);
        let message = public_message(error);
        match code {
            ErrorCode::Overloaded | ErrorCode::BodyTooLarge | ErrorCode::BadRequest => {
                tracing::debug!(function = %function.name, request_id, error = %error, "request rejected");
            }
            ErrorCode::Internal => {
                tracing::error!(function = %function.name, request_id, error = %error, "request failed");
            }
            _ => {
                tracing::warn!(function = %function.name, request_id, error = %error, "request failed");
            }
        }
        let retry_after = match error {
            InvokeError::Overloaded { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        error_response(code, message, request_id, retry_after, None).map(ResponseBody::Full)
    }
}

/// What a client is told: enough to know what happened, nothing about the
/// host's internals.
pub(crate) fn public_message(error: &InvokeError) -> &'static str {
    match error {
        InvokeError::Overloaded { .. } => "the function is at capacity; retry later",
        InvokeError::Timeout(_) => "the function did not finish within its timeout",
        InvokeError::Trap(_) => "the function trapped",
        InvokeError::Instantiate(_) => "the function failed to start",
        InvokeError::MemoryLimit(_) => "the function ran out of memory at its limit",
        InvokeError::NoResponse => "the function returned without sending a response",
        InvokeError::GuestError(_) => "the function failed the request",
        InvokeError::RequestBodyTooLarge { .. } => {
            "the request body is larger than this function accepts"
        }
        InvokeError::BadRequest(_) => "the request could not be passed to the function",
        InvokeError::ResponseTooLarge { .. } => "the function's output is larger than it may send",
        InvokeError::NotHttp => "this function handles events: POST the payload to /{name}",
        InvokeError::NotEvent => "this function does not handle events",
        InvokeError::Internal(_) => "internal error",
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn reject(code: ErrorCode, message: &str, request_id: &str) -> Response<ResponseBody> {
    error_response(code, message, request_id, None::<Duration>, None).map(ResponseBody::Full)
}
