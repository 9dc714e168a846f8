//! Error codes: the one place that says, for every code, its HTTP status,
//! its stable string, what a client is told by default and how loudly it is
//! logged.
//!
//! Clients branch on the status and on the JSON `code`, never on the message.
//! Error bodies are short: `{"code": "...", "message": "...", "request_id":
//! "..."}`; the full error chain goes to the log once, where the error is
//! turned into a response. Each error type of the server says its own code
//! (`InvokeError::code`, `ComponentError::code`, `RegistryError::code`,
//! `SubmitError::code`); this module imports nothing else of floe.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use std::time::Duration;

/// Stable error codes, as sent in error bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such function (or route).
    NotFound,
    /// Malformed request, name or setting.
    BadRequest,
    /// Missing or wrong bearer token.
    Unauthorized,
    /// A valid token whose scope does not allow the request.
    Forbidden,
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// Request body or upload too large.
    BodyTooLarge,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// Request target too long.
    UriTooLong,
    /// Request head too large.
    HeadersTooLarge,
    /// Not a valid component.
    InvalidComponent,
    /// Imports the host does not provide.
    MissingImport,
    /// No handler export, or a wrongly shaped one.
    MissingExport,
    /// The function's `init` failed.
    InitFailed,
    /// An event function refused its payload.
    InvalidInput,
    /// `If-Match` does not match the active version.
    PreconditionFailed,
    /// The request conflicts with the function's state.
    Conflict,
    /// The guest trapped.
    Trap,
    /// The guest hit its memory limit.
    MemoryLimit,
    /// The guest held as many host resources as it may and asked for more.
    ResourceLimit,
    /// The request ran past its timeout.
    Timeout,
    /// No instance could be had in time.
    Overloaded,
    /// The guest returned without a response.
    NoResponse,
    /// A new instance could not be started (its start code or its `init`
    /// trapped or failed).
    StartFailed,
    /// The instance serving the request was stopped because of another
    /// request on it (one that trapped, spun past its timeout or hit the
    /// memory limit of the instance they share); a retry runs on another.
    InstanceLost,
    /// The guest failed the request with an error code.
    FunctionError,
    /// The function exists but cannot serve (its stored code is damaged).
    Unavailable,
    /// The request went through this server's data plane too many times
    /// (function calling function; `[outbound] hop_limit`).
    LoopDetected,
    /// The cluster's etcd or OCI registry cannot be reached, so the
    /// change cannot be made now (this node keeps serving).
    ClusterUnavailable,
    /// The node that owns an async invocation cannot be reached.
    OwnerUnavailable,
    /// A host-side failure.
    Internal,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 30] = [
        Self::NotFound,
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::MethodNotAllowed,
        Self::BodyTooLarge,
        Self::RequestTimeout,
        Self::UriTooLong,
        Self::HeadersTooLarge,
        Self::InvalidComponent,
        Self::MissingImport,
        Self::MissingExport,
        Self::InitFailed,
        Self::InvalidInput,
        Self::PreconditionFailed,
        Self::Conflict,
        Self::Trap,
        Self::MemoryLimit,
        Self::ResourceLimit,
        Self::Timeout,
        Self::Overloaded,
        Self::NoResponse,
        Self::StartFailed,
        Self::InstanceLost,
        Self::FunctionError,
        Self::Unavailable,
        Self::LoopDetected,
        Self::ClusterUnavailable,
        Self::OwnerUnavailable,
        Self::Internal,
    ];

    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::InvalidComponent
            | Self::MissingImport
            | Self::MissingExport
            | Self::InitFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidInput => StatusCode::BAD_REQUEST,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Trap
            | Self::MemoryLimit
            | Self::ResourceLimit
            | Self::NoResponse
            | Self::StartFailed
            | Self::FunctionError
            | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded
            | Self::InstanceLost
            | Self::Unavailable
            | Self::ClusterUnavailable
            | Self::OwnerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::LoopDetected => StatusCode::LOOP_DETECTED,
        }
    }

    /// The code as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BodyTooLarge => "body_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::InvalidComponent => "invalid_component",
            Self::MissingImport => "missing_import",
            Self::MissingExport => "missing_export",
            Self::InitFailed => "init_failed",
            Self::InvalidInput => "invalid_input",
            Self::PreconditionFailed => "precondition_failed",
            Self::Conflict => "conflict",
            Self::Trap => "trap",
            Self::MemoryLimit => "memory_limit",
            Self::ResourceLimit => "resource_limit",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::NoResponse => "no_response",
            Self::StartFailed => "start_failed",
            Self::InstanceLost => "instance_lost",
            Self::FunctionError => "function_error",
            Self::Unavailable => "unavailable",
            Self::LoopDetected => "loop_detected",
            Self::ClusterUnavailable => "cluster_unavailable",
            Self::OwnerUnavailable => "owner_unavailable",
            Self::Internal => "internal",
        }
    }

    /// What a client is told when nothing more specific is known: enough to
    /// know what happened, nothing about the host's internals.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotFound => "no such function",
            Self::BadRequest => "the request could not be passed to the function",
            Self::Unauthorized => "a valid bearer token is required",
            Self::Forbidden => "this token may not do that",
            Self::MethodNotAllowed => "the method is not allowed here",
            Self::BodyTooLarge => "the request body is larger than this function accepts",
            Self::RequestTimeout => "the request body did not arrive in time",
            Self::UriTooLong => "the request target is too long",
            Self::HeadersTooLarge => "the request head is too large",
            Self::InvalidComponent => "the component is not valid",
            Self::MissingImport => "the component imports what this host does not provide",
            Self::MissingExport => "the component lacks a handler export",
            Self::InitFailed => "the function's init failed",
            Self::InvalidInput => "the function refused its input",
            Self::PreconditionFailed => "If-Match does not match the active version",
            Self::Conflict => "the request conflicts with the function's state",
            Self::Trap => "the function trapped",
            Self::MemoryLimit => "the function ran out of memory at its limit",
            Self::ResourceLimit => "the function held more host resources than it may",
            Self::Timeout => "the function did not finish within its timeout",
            Self::Overloaded => "the function is at capacity; retry later",
            Self::NoResponse => "the function returned without sending a response",
            Self::StartFailed => "the function failed to start",
            Self::InstanceLost => {
                "the instance serving this request was stopped because of another request on it; retry"
            }
            Self::FunctionError => "the function failed the request",
            Self::Unavailable => "this function's stored code cannot be loaded; redeploy it",
            Self::LoopDetected => "the request went through too many functions on this server",
            Self::ClusterUnavailable => {
                "the cluster's etcd or registry cannot be reached; this node keeps serving, retry the change later"
            }
            Self::OwnerUnavailable => "the node that owns this invocation cannot be reached",
            Self::Internal => "internal error",
        }
    }

    /// How loudly a request that failed with this code is logged: host
    /// failures are errors, the function's own failures warnings, and
    /// refusals of the client's request (its fault, or load shedding) only
    /// debug lines, so that a flood of bad requests cannot flood the log.
    pub fn log_level(self) -> tracing::Level {
        match self {
            Self::Internal => tracing::Level::ERROR,
            Self::Trap
            | Self::MemoryLimit
            | Self::ResourceLimit
            | Self::Timeout
            | Self::NoResponse
            | Self::StartFailed
            | Self::InstanceLost
            | Self::FunctionError
            | Self::Unavailable
            | Self::ClusterUnavailable
            | Self::OwnerUnavailable => tracing::Level::WARN,
            Self::NotFound
            | Self::BadRequest
            | Self::Unauthorized
            | Self::Forbidden
            | Self::MethodNotAllowed
            | Self::BodyTooLarge
            | Self::RequestTimeout
            | Self::UriTooLong
            | Self::HeadersTooLarge
            | Self::InvalidComponent
            | Self::MissingImport
            | Self::MissingExport
            | Self::InitFailed
            | Self::InvalidInput
            | Self::PreconditionFailed
            | Self::Conflict
            | Self::Overloaded
            | Self::LoopDetected => tracing::Level::DEBUG,
        }
    }
}

/// Logs a failed request at its code's [`ErrorCode::log_level`]:
/// `log_failure!(code, field = value, ..., "message")`.
macro_rules! log_failure {
    ($code:expr, $($rest:tt)+) => {
        match $crate::status::ErrorCode::log_level($code) {
            tracing::Level::ERROR => tracing::error!($($rest)+),
            tracing::Level::WARN => tracing::warn!($($rest)+),
            tracing::Level::INFO => tracing::info!($($rest)+),
            _ => tracing::debug!($($rest)+),
        }
    };
}
pub(crate) use log_failure;

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The stable code.
    pub code: &'static str,
    /// A short, human-readable message.
    pub message: &'a str,
    /// The request's id, to find it in the log.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub request_id: &'a str,
    /// More detail, when it helps the client fix its request (the missing
    /// imports of a component, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Builds an error response for `code`.
pub fn error_response(
    code: ErrorCode,
    message: &str,
    request_id: &str,
    retry_after: Option<Duration>,
    details: Option<serde_json::Value>,
) -> Response<Full<Bytes>> {
    let body = ErrorBody {
        code: code.as_str(),
        message,
        request_id,
        details,
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"code\":\"internal\"}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(json)));
    *response.status_mut() = code.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(after) = retry_after {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_documented_statuses() {
        assert_eq!(ErrorCode::NotFound.status(), 404);
        assert_eq!(ErrorCode::Unauthorized.status(), 401);
        assert_eq!(ErrorCode::Forbidden.status(), 403);
        assert_eq!(ErrorCode::Forbidden.as_str(), "forbidden");
        assert_eq!(ErrorCode::Forbidden.log_level(), tracing::Level::DEBUG);
        assert_eq!(ErrorCode::BodyTooLarge.status(), 413);
        assert_eq!(ErrorCode::HeadersTooLarge.status(), 431);
        assert_eq!(ErrorCode::UriTooLong.status(), 414);
        assert_eq!(ErrorCode::MissingImport.status(), 422);
        assert_eq!(ErrorCode::PreconditionFailed.status(), 412);
        assert_eq!(ErrorCode::Trap.status(), 500);
        assert_eq!(ErrorCode::MemoryLimit.status(), 500);
        assert_eq!(ErrorCode::Timeout.status(), 504);
        assert_eq!(ErrorCode::Overloaded.status(), 503);
        assert_eq!(ErrorCode::NoResponse.status(), 500);
        let codes: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn every_code_has_a_message_and_a_level() {
        for code in ErrorCode::ALL {
            assert!(!code.message().is_empty(), "{code:?}");
            let level = code.log_level();
            // Load shedding and loops are the client's doing (anyone can
            // send a hop count): quiet, so that they cannot flood the log.
            let clients_doing = [ErrorCode::Overloaded, ErrorCode::LoopDetected];
            if code.status().is_server_error() && !clients_doing.contains(&code) {
                assert!(level <= tracing::Level::WARN, "{code:?} is logged quietly");
            }
        }
        assert_eq!(ErrorCode::StartFailed.status(), 500);
        assert_eq!(ErrorCode::StartFailed.as_str(), "start_failed");
        assert_eq!(ErrorCode::Internal.log_level(), tracing::Level::ERROR);
        assert_eq!(ErrorCode::BadRequest.log_level(), tracing::Level::DEBUG);
    }

    #[test]
    fn overloaded_responses_carry_retry_after() {
        let r = error_response(
            ErrorCode::Overloaded,
            "busy",
            "r1",
            Some(Duration::from_secs(2)),
            None,
        );
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()["x-request-id"], "r1");
    }
}
