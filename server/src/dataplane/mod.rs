//! The data plane: routes a request to its function and serves it there.
//!
//! [`DataPlane::handle`] never fails: every problem becomes a short JSON error
//! response (see [`crate::status`]) with the request's id. Serving itself
//! (deadline, limits, the instance, metering) is the [`crate::invoke`]
//! layer's; an event function's request goes through
//! [`Invocations::serve_event`], which runs it now or accepts it for later.
//! The data plane does not own a listener, so an embedder can hand it
//! requests directly.

mod router;

pub use crate::invoke::{LimitedBody, REQUEST_ID, ResponseBody};
pub use router::{Route, RouteBy, route};

use crate::invocations::Invocations;
use crate::invoke::{Call, RequestIds, failure_response, missing, reject};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::status::ErrorCode;
use bytes::Bytes;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The header telling a path-routed function which prefix was stripped.
pub const FORWARDED_PREFIX: &str = "x-forwarded-prefix";

/// Routes and serves data-plane requests.
#[derive(Clone, Debug)]
pub struct DataPlane {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    invocations: Arc<Invocations>,
    ids: Arc<RequestIds>,
    domain: Arc<str>,
    max_uri_bytes: usize,
}

impl DataPlane {
    /// A data plane over `registry`; event functions' async requests go to
    /// `invocations`.
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        invocations: Arc<Invocations>,
        ids: Arc<RequestIds>,
        domain: &str,
        max_uri_bytes: usize,
    ) -> Self {
        Self {
            registry,
            metrics,
            invocations,
            ids,
            domain: domain.into(),
            max_uri_bytes,
        }
    }

    /// The registry requests are routed through.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves one request.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let start = Instant::now();
        let request_id = self.ids.of(&request);

        let uri_len = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if uri_len > self.max_uri_bytes {
            return reject(
                ErrorCode::UriTooLong,
                ErrorCode::UriTooLong.message(),
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
            return missing(
                &self.registry,
                &self.metrics,
                route.function,
                request_id.get(),
            );
        };
        let rest = match &route.by {
            RouteBy::Path { rest } => Some((*rest).to_owned()),
            RouteBy::Host => None,
        };
        let call = Call::new(&function, &request_id, start);
        // A function without an HTTP handler takes events on the data plane.
        let response = if !function.runnable.prepared.handles_http() {
            self.invocations
                .serve_event(&call, request, crate::invocations::Front::DataPlane)
                .await
        } else {
            http(&call, request, rest).await
        };
        call.finish(response.status());
        response
    }
}

/// Serves an HTTP function's request: the path without the function's
/// prefix (when routed by path), then the function's response.
async fn http<B>(
    call: &Call<'_>,
    request: Request<B>,
    rest: Option<String>,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
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
                    call.request_id(),
                );
            }
        }
        parts
            .headers
            .insert(FORWARDED_PREFIX, call.function().forwarded_prefix.clone());
    }
    if !parts.headers.contains_key(HOST) {
        // HTTP/1.0 and in-process callers may send no Host; wasi-http
        // requires an authority.
        parts
            .headers
            .insert(HOST, HeaderValue::from_static("localhost"));
    }
    match call.http(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(ResponseBody::Guest),
        Err(e) => failure_response(&e, call.request_id()),
    }
}
