//! The response body of a guest call.
//!
//! wasmtime-wasi-http ends a response body cleanly when the guest's side of it
//! goes away, whether the guest finished it or trapped halfway. [`GuestBody`]
//! closes that gap: when the guest's body ends it waits for the call's outcome
//! and, unless the call completed, fails the body, so hyper cuts the
//! connection and the client sees an incomplete response (no final chunk, or
//! fewer bytes than `Content-Length`). It also enforces `max_response_body`.

use super::lease::CallOutcome;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Why a response body was cut short.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The guest failed after the response had started.
    #[error("the function failed while sending its response: {0}")]
    CallFailed(#[source] Box<super::InvokeError>),
    /// The guest's body stream reported an error.
    #[error("the function's response body failed: {0}")]
    Stream(#[source] wasmtime_wasi_http::Error),
    /// The body grew past `max_response_body`.
    #[error("the response body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The call's task went away without an outcome.
    #[error("the function's call ended without an outcome")]
    Lost,
}

/// How a body learns how its call ended.
pub(crate) enum CallEnd {
    /// The call had ended when the response was handed over.
    Known(Option<CallOutcome>),
    /// The call still runs; its task sends the outcome.
    Later(oneshot::Receiver<CallOutcome>),
    /// A WASI 0.3 response: its guest task writes the body on the
    /// instance's event loop, and the body is whole unless the instance was
    /// stopped meanwhile. The request's slot goes back with the body.
    Shared(super::shared::Slot),
}

/// A guest's response body, cut when the call fails.
pub struct GuestBody {
    inner: HyperOutgoingBody,
    outcome: CallEnd,
    /// The call is known to have completed.
    completed: bool,
    /// `Content-Length`, when the guest declared one.
    declared: Option<u64>,
    /// The frame that completes a declared length, held until the call is
    /// known to have completed: with it the client would see a whole body.
    held: Option<Frame<Bytes>>,
    sent: u64,
    limit: u64,
    finished: bool,
}

impl GuestBody {
    pub(crate) fn new(
        inner: HyperOutgoingBody,
        outcome: CallEnd,
        limit: u64,
        declared: Option<u64>,
    ) -> Self {
        Self {
            inner,
            outcome,
            completed: false,
            declared,
            held: None,
            sent: 0,
            limit,
            finished: false,
        }
    }

    /// Waits for the call's outcome: `Ok` when it completed.
    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BodyError>> {
        if self.completed {
            return Poll::Ready(Ok(()));
        }
        let outcome = match &mut self.outcome {
            CallEnd::Known(outcome) => outcome.take(),
            CallEnd::Later(rx) => ready!(Pin::new(rx).poll(cx)).ok(),
            CallEnd::Shared(slot) => Some(match slot.core() {
                Some(core) if core.lost() => CallOutcome::Failed(super::InvokeError::InstanceLost(
                    "stopped while the response body was being sent",
                )),
                _ => CallOutcome::Completed,
            }),
        };
        Poll::Ready(match outcome {
            Some(CallOutcome::Completed) => {
                self.completed = true;
                Ok(())
            }
            Some(CallOutcome::Failed(err)) => Err(BodyError::CallFailed(Box::new(err))),
            None => Err(BodyError::Lost),
        })
    }

    /// Ends the body with `error` (hyper then cuts the connection).
    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.finished = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if this.held.is_some() {
            return match ready!(this.poll_outcome(cx)) {
                Ok(()) => Poll::Ready(this.held.take().map(Ok)),
                Err(e) => this.fail(e),
            };
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                    if this.sent > this.limit {
                        return this.fail(BodyError::TooLarge { limit: this.limit });
                    }
                }
                if !this.completed && this.declared.is_some_and(|n| this.sent >= n) {
                    this.held = Some(frame);
                    return match ready!(this.poll_outcome(cx)) {
                        Ok(()) => Poll::Ready(this.held.take().map(Ok)),
                        Err(e) => this.fail(e),
                    };
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => this.fail(BodyError::Stream(e)),
            None => match ready!(this.poll_outcome(cx)) {
                Ok(()) => {
                    this.finished = true;
                    Poll::Ready(None)
                }
                Err(e) => this.fail(e),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;
