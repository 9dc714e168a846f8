//! Serving one HTTP request or one event on a function: the layer under
//! both front ends (the data plane and the control plane's `invoke`) and the
//! async invocation workers.
//!
//! A [`Call`] is one request or event on one [`Function`]. It owns what
//! every way in shares: the deadline (from the call's start and the
//! function's `timeout`), the body limits, leasing an instance, the call
//! itself, the outcome (an error is counted under its code and logged once,
//! at its code's level) and the metering of the answer ([`Call::finish`]).
//! Callers route, parse and answer; they never touch a pool.

mod body;
mod prefix;
mod request_id;
mod respond;

pub use body::{LimitedBody, ResponseBody};
pub use request_id::{REQUEST_ID, RequestId, RequestIds};
pub use respond::{event_response, failure_response, missing, reject};

pub use crate::pool::{EventReply, GuestBody};
pub use crate::runtime::InvokeError;

use crate::bindings::event;
use crate::clock::unix_ms;
use crate::host::Fired;
use crate::registry::Function;
use crate::runtime::after;
use crate::status::ErrorCode;
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tracing::{Instrument, Span};

/// One request or event on one function, from its start to its answer.
pub struct Call<'a> {
    function: &'a Function,
    request_id: &'a RequestId<'a>,
    start: Instant,
    span: Span,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("function", &self.function.name)
            .field("request_id", &self.request_id.get())
            .finish_non_exhaustive()
    }
}

/// Why an event's payload could not be read.
#[derive(Debug)]
pub enum PayloadError {
    /// It is larger than the function's `max_request_body`, or did not
    /// arrive in time (counted under the error's code; answered with it).
    TooLarge(InvokeError),
    /// The client's body failed.
    Unreadable,
}

impl<'a> Call<'a> {
    /// A call of `function` that started at `start` (its deadline counts
    /// from there).
    pub fn new(function: &'a Function, request_id: &'a RequestId<'a>, start: Instant) -> Self {
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
        Self {
            function,
            request_id,
            start,
            span,
        }
    }

    /// The function called.
    pub fn function(&self) -> &'a Function {
        self.function
    }

    /// The request's id.
    pub fn request_id(&self) -> &'a str {
        self.request_id.get()
    }

    /// The span the call's work runs in.
    pub fn span(&self) -> &Span {
        &self.span
    }

    fn deadline(&self) -> Instant {
        after(self.start, self.function.pool.settings().timeout.0)
    }

    fn body_limit(&self) -> u64 {
        self.function.pool.settings().max_request_body.bytes()
    }

    /// Refuses a body whose `Content-Length` says it is over the limit,
    /// before anything is read.
    fn check_declared(&self, headers: &HeaderMap) -> Result<(), InvokeError> {
        let limit = self.body_limit();
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(self.failed(InvokeError::RequestBodyTooLarge { limit }));
        }
        Ok(())
    }

    /// Reads an event's payload, within the function's body limit.
    pub async fn payload<B>(&self, request: Request<B>) -> Result<Bytes, PayloadError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        self.check_declared(request.headers())
            .map_err(PayloadError::TooLarge)?;
        let limit = self.body_limit();
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = LimitedBody::new(request.into_body(), limit, exceeded.clone());
        let limits = self.function.pool.limits();
        let by = self
            .deadline()
            .min(after(Instant::now(), limits.body_timeout.0));
        let Ok(read) = tokio::time::timeout_at(by.into(), body.collect()).await else {
            let waited = by.saturating_duration_since(self.start);
            return Err(PayloadError::TooLarge(
                self.failed(InvokeError::BodyTimeout(waited)),
            ));
        };
        match read {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(_) if exceeded.load(Ordering::Relaxed) => Err(PayloadError::TooLarge(
                self.failed(InvokeError::RequestBodyTooLarge { limit }),
            )),
            Err(_) => Err(PayloadError::Unreadable),
        }
    }

    /// Serves an HTTP request: the function's response head, with its body
    /// still streaming from the guest.
    pub async fn http<B>(&self, request: Request<B>) -> Result<Response<GuestBody>, InvokeError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        self.check_declared(request.headers())?;
        let hops = crate::host::outbound::hops_of(request.headers());
        if hops >= self.function.pool.hop_limit() {
            return Err(self.failed(InvokeError::LoopDetected { hops }));
        }
        let limit = self.body_limit();
        let deadline = self.deadline();
        // The first bytes (all of a small body) come before an instance is
        // taken: a slow upload holds a connection, not an instance.
        let limits = self.function.pool.limits();
        let (parts, body) = request.into_parts();
        let body_deadline = deadline.min(after(Instant::now(), limits.body_timeout.0));
        let read_ahead = limits.body_buffer.bytes().min(limit.saturating_add(1));
        let body = match prefix::read_prefix(
            body,
            read_ahead,
            body_deadline,
            limits.body_min_rate.bytes(),
        )
        .await
        {
            Ok(body) => body,
            Err(prefix::PrefixError::TimedOut) => {
                let waited = body_deadline.saturating_duration_since(self.start);
                return Err(self.failed(InvokeError::BodyTimeout(waited)));
            }
            Err(prefix::PrefixError::Failed) => {
                return Err(self.failed(InvokeError::BadRequest(
                    "reading the request body failed".into(),
                )));
            }
        };
        let exceeded = Arc::new(AtomicBool::new(false));
        let (body, reclaim) = body::reclaimable(LimitedBody::new(body, limit, exceeded.clone()));
        // What serving the request again needs: its head (the body comes
        // back through `reclaim` while unread).
        let head = (
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
            parts.headers.clone(),
        );
        let request = Request::from_parts(parts, body);
        let pool = &self.function.pool;
        let result = async {
            let lease = pool.acquire(deadline).await?;
            Span::current().record("instance", lease.instance_id());
            match lease.handle(request, deadline).await {
                // The instance answers one request only: serve this one on
                // a fresh instance, when its body was never read.
                Err(InvokeError::AnswersOnce) => match reclaim.take() {
                    Some(body) => {
                        let (method, uri, version, headers) = head;
                        let mut again = Request::new(body::reclaimable(body).0);
                        *again.method_mut() = method;
                        *again.uri_mut() = uri;
                        *again.version_mut() = version;
                        *again.headers_mut() = headers;
                        let lease = pool.acquire(deadline).await?;
                        Span::current().record("instance", lease.instance_id());
                        lease.handle(again, deadline).await
                    }
                    None => Err(InvokeError::NoResponse),
                },
                other => other,
            }
        }
        .instrument(self.span.clone())
        .await;
        if exceeded.load(Ordering::Relaxed) {
            // The guest saw the body fail; the client should see why.
            return Err(self.failed(InvokeError::RequestBodyTooLarge { limit }));
        }
        result.map_err(|e| self.failed(e))
    }

    /// Runs one event: `payload` in, the function's reply out. A refusal or
    /// failure the function answered is counted under its code, like the
    /// host's errors.
    pub async fn event(
        &self,
        payload: &[u8],
        content_type: Option<String>,
        fired: Option<&Fired>,
    ) -> Result<EventReply, InvokeError> {
        let settings = self.function.pool.settings();
        let deadline = self.deadline();
        let left = deadline.saturating_duration_since(Instant::now());
        let context = event::Context {
            request_id: self.request_id().to_owned(),
            function: self.function.name.to_string(),
            version: self.function.version,
            deadline_ms: unix_ms().saturating_add(left.as_millis() as u64),
            memory_limit: settings.memory.bytes(),
            content_type,
        };
        let reply = async {
            let lease = self.function.pool.acquire(deadline).await?;
            Span::current().record("instance", lease.instance_id());
            lease.invoke_event(&context, fired, payload, deadline).await
        }
        .instrument(self.span.clone())
        .await;
        match &reply {
            Ok(EventReply::Output(_)) => {}
            Ok(EventReply::InvalidInput(message)) => {
                self.function.metrics.record_error(ErrorCode::InvalidInput);
                tracing::debug!(function = %self.function.name, request_id = self.request_id(), %message, "event refused by the function");
            }
            Ok(EventReply::Failed(message)) => {
                self.function.metrics.record_error(ErrorCode::FunctionError);
                tracing::warn!(function = %self.function.name, request_id = self.request_id(), %message, "event failed");
            }
            Err(_) => {}
        }
        reply.map_err(|e| self.failed(e))
    }

    /// Counts `error` under its code and logs it once, at its code's level.
    fn failed(&self, error: InvokeError) -> InvokeError {
        let code = error.code();
        self.function.metrics.record_error(code);
        crate::status::log_failure!(code, function = %self.function.name, request_id = self.request_id(), error = %error, "request failed");
        error
    }

    /// Meters the answer: its status and the time to it. Every call ends
    /// here, whatever answered it.
    pub fn finish(self, status: StatusCode) {
        let elapsed = self.start.elapsed();
        self.function.metrics.record(status, elapsed);
        if !self.span.is_disabled() {
            self.span.record("status", status.as_u16());
            self.span.record("duration_us", elapsed.as_micros() as u64);
            self.span.in_scope(|| tracing::debug!("request answered"));
        }
    }
}

/// The status an event's outcome is answered with.
pub fn event_status(reply: &Result<EventReply, InvokeError>) -> StatusCode {
    match reply {
        Ok(EventReply::Output(_)) => StatusCode::OK,
        Ok(EventReply::InvalidInput(_)) => ErrorCode::InvalidInput.status(),
        Ok(EventReply::Failed(_)) => ErrorCode::FunctionError.status(),
        Err(e) => e.code().status(),
    }
}
