//! The one place where errors become HTTP statuses.
//!
//! Clients branch on the status and on the JSON `code`, never on the message.
//! Error bodies are short: `{"code": "...", "message": "...", "request_id":
//! "..."}`; the full error chain goes to the log once, where the error is
//! turned into a response.

use crate::engine::ComponentError;
use crate::pool::InvokeError;
use crate::registry::RegistryError;
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
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// Request body or upload too large.
    BodyTooLarge,
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
    /// The request ran past its timeout.
    Timeout,
    /// No instance could be had in time.
    Overloaded,
    /// The guest returned without a response.
    NoResponse,
    /// The guest failed the request with an error code.
    FunctionError,
    /// The function exists but cannot serve (its stored code is damaged).
    Unavailable,
    /// A host-side failure.
    Internal,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 22] = [
        Self::NotFound,
        Self::BadRequest,
        Self::Unauthorized,
        Self::MethodNotAllowed,
        Self::BodyTooLarge,
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
        Self::Timeout,
        Self::Overloaded,
        Self::NoResponse,
        Self::FunctionError,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
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
            | Self::NoResponse
            | Self::FunctionError
            | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BodyTooLarge => "body_too_large",
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
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::NoResponse => "no_response",
            Self::FunctionError => "function_error",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl From<&InvokeError> for ErrorCode {
    fn from(e: &InvokeError) -> Self {
        match e {
            InvokeError::Overloaded { .. } => Self::Overloaded,
            InvokeError::Timeout(_) => Self::Timeout,
            InvokeError::Trap(_) | InvokeError::Instantiate(_) => Self::Trap,
            InvokeError::MemoryLimit(_) => Self::MemoryLimit,
            InvokeError::NoResponse => Self::NoResponse,
            InvokeError::GuestError(_) => Self::FunctionError,
            InvokeError::RequestBodyTooLarge { .. } => Self::BodyTooLarge,
            InvokeError::BadRequest(_) => Self::BadRequest,
            InvokeError::ResponseTooLarge { .. } | InvokeError::Internal(_) => Self::Internal,
            InvokeError::NotHttp | InvokeError::NotEvent => Self::MethodNotAllowed,
        }
    }
}

impl From<&ComponentError> for ErrorCode {
    fn from(e: &ComponentError) -> Self {
        match e {
            ComponentError::NotWasm
            | ComponentError::CoreModule
            | ComponentError::Invalid(_)
            | ComponentError::CompileTimeout(_) => Self::InvalidComponent,
            ComponentError::MissingImports(_) => Self::MissingImport,
            ComponentError::MissingExport | ComponentError::BadExport(_) => Self::MissingExport,
            ComponentError::InitFailed(_) => Self::InitFailed,
            ComponentError::Internal(_) => Self::Internal,
        }
    }
}

impl From<&RegistryError> for ErrorCode {
    fn from(e: &RegistryError) -> Self {
        match e {
            RegistryError::InvalidName(_)
            | RegistryError::Settings(_)
            | RegistryError::BadPrecondition(_) => Self::BadRequest,
            RegistryError::NotFound(_) => Self::NotFound,
            RegistryError::Component(c) => Self::from(c),
            RegistryError::PreconditionFailed { .. } => Self::PreconditionFailed,
            RegistryError::NoSuchVersion { .. } | RegistryError::TooManyFunctions(_) => {
                Self::Conflict
            }
            RegistryError::Unavailable { .. } => Self::Unavailable,
            RegistryError::Store(_) | RegistryError::Internal(_) => Self::Internal,
        }
    }
}

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
