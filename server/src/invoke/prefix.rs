//! Slow clients: the first bytes of a request body are read before an
//! instance is taken (all of a small body), within a deadline; the rest
//! must keep a minimum average rate. A client that uploads slowly holds a
//! connection, never an instance.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// Why the first bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixError {
    /// They did not arrive by the deadline.
    TimedOut,
    /// The client's body failed.
    Failed,
}

/// A request body whose first frames were read ahead, then the rest of it,
/// held to a minimum average rate.
pub(crate) struct Prefixed<B> {
    read: VecDeque<Frame<Bytes>>,
    /// `None` once the body ended within what was read ahead.
    rest: Option<B>,
    started: Instant,
    grace: Duration,
    min_rate: u64,
    seen: u64,
}

/// Reads frames of `body` until `limit` bytes, its end, or `deadline`.
pub(crate) async fn read_prefix<B>(
    mut body: B,
    limit: u64,
    deadline: Instant,
    min_rate: u64,
) -> Result<Prefixed<B>, PrefixError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let started = Instant::now();
    let mut read = VecDeque::new();
    let mut bytes = 0u64;
    let mut ended = body.is_end_stream();
    while !ended && bytes < limit {
        match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Err(_) => return Err(PrefixError::TimedOut),
            Ok(None) => ended = true,
            Ok(Some(Err(_))) => return Err(PrefixError::Failed),
            Ok(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                read.push_back(frame);
                ended = body.is_end_stream();
            }
        }
    }
    Ok(Prefixed {
        read,
        rest: (!ended).then_some(body),
        started,
        grace: deadline.saturating_duration_since(started),
        min_rate,
        seen: bytes,
    })
}

/// The rest of a body came slower than the minimum rate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrefixedError<E> {
    /// The client's body failed.
    #[error("{0}")]
    Body(E),
    /// It came slower than `body_min_rate`.
    #[error("the request body arrived slower than {0} bytes/s")]
    TooSlow(u64),
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = PrefixedError<B::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(frame) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(Pin::new(rest).poll_frame(cx)) {
            Some(Ok(frame)) => {
                this.seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                let elapsed = this.started.elapsed();
                if elapsed > this.grace {
                    let expected = (this.min_rate as f64 * elapsed.as_secs_f64()) as u64;
                    if this.seen < expected {
                        return Poll::Ready(Some(Err(PrefixedError::TooSlow(this.min_rate))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(PrefixedError::Body(e)))),
            None => {
                this.rest = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .map(|f| f.data_ref().map_or(0, |d| d.len() as u64))
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(read),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower() + read);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + read);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn a_small_body_is_read_whole_and_replayed() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let body = Full::new(Bytes::from_static(b"hello"));
        let prefixed = read_prefix(body, 1024, deadline, 1).await.unwrap();
        assert!(prefixed.rest.is_none());
        let bytes = prefixed.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.as_ref(), b"hello");
    }

    #[tokio::test]
    async fn a_body_that_does_not_come_times_out() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let stalled = StreamBody::new(futures::stream::pending::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >());
        let err = read_prefix(stalled, 1024, deadline, 1).await.err();
        assert_eq!(err, Some(PrefixError::TimedOut));
    }
}
