//! What can go wrong between taking a request and answering it.

use crate::status::ErrorCode;
use std::time::Duration;

/// Why a request could not be answered by the function.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No instance could be had in time: the function is at `max_instances`
    /// and the queue is full or the wait ran out, or all instances of the
    /// server are in use.
    #[error("function {function} is overloaded ({reason})")]
    Overloaded {
        /// The function.
        function: String,
        /// Which limit was hit.
        reason: &'static str,
        /// A hint for the client.
        retry_after: Duration,
    },
    /// The request ran past the function's timeout.
    #[error("the request ran past its timeout of {0:?}")]
    Timeout(Duration),
    /// The guest trapped.
    #[error("the function trapped: {0:#}")]
    Trap(#[source] anyhow::Error),
    /// The guest ran out of memory at its limit.
    #[error("the function ran out of memory at its limit: {0:#}")]
    MemoryLimit(#[source] anyhow::Error),
    /// The guest held as many host resources as it may (`max_resources`)
    /// and asked for another.
    #[error("the function ran out of host resources at its limit: {0:#}")]
    ResourceLimit(#[source] anyhow::Error),
    /// The guest returned without setting a response.
    #[error("the function returned without sending a response")]
    NoResponse,
    /// An instance that answered before returned without a response: the
    /// component answers one request per instance, and its version now gets
    /// a fresh instance per request. The request may be served again on a
    /// fresh instance when its body was not read.
    #[error(
        "the instance answered before and returned without a response this time: the component answers one request per instance"
    )]
    AnswersOnce,
    /// The guest answered with a wasi-http error code instead of a response.
    #[error("the function failed the request: {0}")]
    GuestError(String),
    /// The request body was larger than `max_request_body`.
    #[error("the request body is larger than {limit} bytes")]
    RequestBodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request body did not arrive within `body_timeout` (or the
    /// function's timeout).
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// The request could not be handed to the guest.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A new instance could not be started (its start code trapped, say).
    #[error("starting an instance failed: {0:#}")]
    Instantiate(#[source] anyhow::Error),
    /// An event function's output was larger than `max_response_body`.
    #[error("the function's output is larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// An HTTP request reached a function that is not an HTTP function.
    #[error("the function does not handle HTTP requests")]
    NotHttp,
    /// An event reached a function that is not an event function.
    #[error("the function does not handle events")]
    NotEvent,
    /// The request arrived after `hops` data-plane hops, at the limit.
    #[error("the request made {hops} data-plane hops (hop_limit)")]
    LoopDetected {
        /// Hops it had made.
        hops: u32,
    },
    /// The instance this request shared with others was stopped because
    /// of another of its requests (a trap, a spin past the timeout, the
    /// memory limit): the request was not answered by the function.
    #[error("the instance was stopped because of another request on it ({0})")]
    InstanceLost(&'static str),
    /// A host-side failure.
    #[error("internal error: {0:#}")]
    Internal(#[source] anyhow::Error),
}

impl InvokeError {
    /// The error code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Overloaded { .. } => ErrorCode::Overloaded,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Trap(_) => ErrorCode::Trap,
            Self::Instantiate(_) => ErrorCode::StartFailed,
            Self::MemoryLimit(_) => ErrorCode::MemoryLimit,
            Self::ResourceLimit(_) => ErrorCode::ResourceLimit,
            Self::NoResponse | Self::AnswersOnce => ErrorCode::NoResponse,
            Self::GuestError(_) => ErrorCode::FunctionError,
            Self::RequestBodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::BodyTimeout(_) => ErrorCode::RequestTimeout,
            Self::ResponseTooLarge { .. } | Self::Internal(_) => ErrorCode::Internal,
            Self::NotHttp | Self::NotEvent => ErrorCode::MethodNotAllowed,
            Self::LoopDetected { .. } => ErrorCode::LoopDetected,
            Self::InstanceLost(_) => ErrorCode::InstanceLost,
        }
    }

    /// What a client is told: enough to know what happened, nothing about
    /// the host's internals.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::ResponseTooLarge { .. } => "the function's output is larger than it may send",
            Self::NotHttp => "this function handles events: POST the payload to /{name}",
            Self::NotEvent => "this function does not handle events",
            other => other.code().message(),
        }
    }

    /// How long an overloaded client is told to wait, when it is.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after, .. } => Some(*retry_after),
            Self::InstanceLost(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_says_its_code_and_what_a_client_is_told() {
        let start = InvokeError::Instantiate(anyhow::anyhow!("init failed: no table"));
        assert_eq!(start.code(), ErrorCode::StartFailed);
        assert_eq!(start.public_message(), "the function failed to start");
        let trap = InvokeError::Trap(anyhow::anyhow!("unreachable"));
        assert_eq!(trap.code(), ErrorCode::Trap);
        assert!(!trap.public_message().contains("unreachable"));
        let busy = InvokeError::Overloaded {
            function: "f".into(),
            reason: "queue full",
            retry_after: Duration::from_secs(3),
        };
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(InvokeError::NotEvent.code(), ErrorCode::MethodNotAllowed);
        assert_eq!(
            InvokeError::ResponseTooLarge { limit: 1 }.public_message(),
            "the function's output is larger than it may send"
        );
    }
}
