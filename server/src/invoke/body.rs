//! Bodies of served requests: the request body as the guest reads it (with
//! its size limit), and the response body as the client receives it.

use crate::pool::{BodyError, GuestBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

/// A request body that fails once more than `limit` bytes have come through,
/// and remembers that it did.
pub struct LimitedBody<B> {
    inner: B,
    seen: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `exceeded` is set when the limit is passed.
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
            exceeded,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(
                            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(this.seen)),
                        )));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                format!("reading the request body: {e}"),
            ))))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body of every response to a served request.
pub enum ResponseBody {
    /// A response floe made itself (errors).
    Full(Full<Bytes>),
    /// A function's response, streamed as the function writes it.
    Guest(GuestBody),
}

impl From<Full<Bytes>> for ResponseBody {
    fn from(b: Full<Bytes>) -> Self {
        Self::Full(b)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Self::Guest(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(b) => b.is_end_stream(),
            Self::Guest(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(b) => b.size_hint(),
            Self::Guest(b) => b.size_hint(),
        }
    }
}
