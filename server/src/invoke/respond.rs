//! Answers made by floe rather than by a function: error bodies (see
//! [`crate::status`]) and an event's reply as an HTTP response.

use super::{EventReply, InvokeError, ResponseBody};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::status::{ErrorCode, error_response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use http_body_util::Full;
use std::sync::atomic::Ordering;

/// An error answer with `code` and `message`.
pub fn reject(code: ErrorCode, message: &str, request_id: &str) -> Response<ResponseBody> {
    error_response(code, message, request_id, None, None).map(ResponseBody::Full)
}

/// The answer to a call that failed: its code, what a client may know of
/// it, and when to retry if it was overloaded.
pub fn failure_response(error: &InvokeError, request_id: &str) -> Response<ResponseBody> {
    error_response(
        error.code(),
        error.public_message(),
        request_id,
        error.retry_after(),
        None,
    )
    .map(ResponseBody::Full)
}

/// The answer to an event: the function's bytes, or its refusal or failure
/// with the function's own message.
pub fn event_response(
    reply: Result<EventReply, InvokeError>,
    request_id: &str,
) -> Response<ResponseBody> {
    match reply {
        Ok(EventReply::Output(bytes)) => {
            let mut response = Response::new(ResponseBody::Full(Full::new(Bytes::from(bytes))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        Ok(EventReply::InvalidInput(message)) => {
            reject(ErrorCode::InvalidInput, &message, request_id)
        }
        Ok(EventReply::Failed(message)) => reject(ErrorCode::FunctionError, &message, request_id),
        Err(e) => failure_response(&e, request_id),
    }
}

/// The answer for a function that is not there (404), or whose stored code
/// cannot be loaded (503).
pub fn missing(
    registry: &Registry,
    metrics: &Metrics,
    name: &str,
    request_id: &str,
) -> Response<ResponseBody> {
    if registry.is_unavailable(name) {
        return reject(
            ErrorCode::Unavailable,
            ErrorCode::Unavailable.message(),
            request_id,
        );
    }
    metrics.server.unrouted.fetch_add(1, Ordering::Relaxed);
    reject(
        ErrorCode::NotFound,
        ErrorCode::NotFound.message(),
        request_id,
    )
}
