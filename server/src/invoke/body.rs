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

/// A request body lent to a guest that can be taken back, to serve the
/// request again on another instance, as long as the guest never read it.
pub(crate) struct Reclaimable<B> {
    shared: Arc<parking_lot::Mutex<Option<B>>>,
    touched: Arc<AtomicBool>,
}

/// The other end of a [`Reclaimable`]: takes the body back.
pub(crate) struct Reclaim<B> {
    shared: Arc<parking_lot::Mutex<Option<B>>>,
    touched: Arc<AtomicBool>,
}

/// Wraps `body` so that it can be taken back while unread.
pub(crate) fn reclaimable<B>(body: B) -> (Reclaimable<B>, Reclaim<B>) {
    let shared = Arc::new(parking_lot::Mutex::new(Some(body)));
    let touched = Arc::new(AtomicBool::new(false));
    (
        Reclaimable {
            shared: shared.clone(),
            touched: touched.clone(),
        },
        Reclaim { shared, touched },
    )
}

impl<B> Reclaim<B> {
    /// The body, when no frame of it was ever asked for.
    pub(crate) fn take(self) -> Option<B> {
        if self.touched.load(Ordering::Relaxed) {
            return None;
        }
        self.shared.lock().take()
    }
}

impl<B> Body for Reclaimable<B>
where
    B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.touched.store(true, Ordering::Relaxed);
        match self.shared.lock().as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.shared.lock().as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.shared
            .lock()
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
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
