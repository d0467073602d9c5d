//! Body types. Request bodies stream through [`LimitedBody`], which counts bytes and fails the stream the moment
//! it crosses the limit; nothing is buffered. Responses are either the upstream's body, untouched, or a small
//! generated JSON error.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

/// Every response body: the upstream's stream (left) or a generated one (right).
pub type ProxyBody = http_body_util::Either<Incoming, Full<Bytes>>;

/// The error a request body stream ends with when it crosses the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit")]
pub struct BodyTooLarge;

pin_project_lite::pin_project! {
    /// A request body that errors once more than `limit` bytes have passed, and records that it did in `tripped`
    /// so the forwarder can answer 413 instead of 502.
    pub struct LimitedBody {
        #[pin]
        inner: Incoming,
        remaining: u64,
        tripped: Arc<AtomicBool>,
    }
}

// === impl LimitedBody ===

impl LimitedBody {
    /// Wraps `inner`, allowing at most `limit` bytes.
    pub fn new(inner: Incoming, limit: u64, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            remaining: limit,
            tripped,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        this.tripped.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
