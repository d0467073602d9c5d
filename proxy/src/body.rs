//! Body types. Request bodies stream through [`LimitedBody`], which counts bytes and fails the stream the moment
//! it crosses the limit, scans form bodies for a token, notices a malformed body and one that stops arriving;
//! nothing is buffered. Responses are either the upstream's body — untouched, or with an echoed credential
//! redacted as it streams ([`UpstreamBody`]) — or a small generated JSON error.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use form_scan::FormScan;

mod form_scan;

pub use crate::echo::UpstreamBody;

/// Every response body: the upstream's stream (left) or a generated one (right).
pub type ProxyBody = http_body_util::Either<UpstreamBody, Full<Bytes>>;

/// A request body whose bytes are wiped when it is dropped: token-endpoint forms carry subject and actor tokens,
/// so they go from the zeroizing buffer they are built in to the wire without a plain copy on our side.
pub struct ZeroizingBuf {
    bytes: zeroize::Zeroizing<Vec<u8>>,
    pos: usize,
}

/// Why a request body stream was stopped: the error it ends with, also recorded in its [`BodyFaultCell`] because the
/// forwarder sees only the upstream client's error, which may not carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    /// More bytes than the limit.
    #[error("request body exceeds the limit")]
    TooLarge,
    /// A form body with an `access_token` parameter.
    #[error("the request body carries an access token")]
    TokenInBody,
    /// hyper could not decode the body (a bad chunk size, too many chunk-extension bytes), or the client cut it short.
    #[error("the request body is malformed or incomplete")]
    Malformed,
    /// No body bytes arrived for the body idle timeout.
    #[error("the request body stopped arriving")]
    IdleTimeout,
}

/// Where a request body records its [`BodyFault`]; one per request, shared by the body and the request's context.
#[derive(Debug, Default)]
pub struct BodyFaultCell(AtomicU8);

// === impl ZeroizingBuf ===

impl From<zeroize::Zeroizing<String>> for ZeroizingBuf {
    fn from(mut text: zeroize::Zeroizing<String>) -> Self {
        // Moves the allocation out (no copy); the emptied wrapper has nothing left to wipe.
        let bytes = std::mem::take(&mut *text).into_bytes();
        Self {
            bytes: zeroize::Zeroizing::new(bytes),
            pos: 0,
        }
    }
}

impl bytes::Buf for ZeroizingBuf {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    fn advance(&mut self, cnt: usize) {
        self.pos = (self.pos + cnt).min(self.bytes.len());
    }
}

/// A request body that stops, recording why in its [`BodyFaultCell`], when more than `limit` bytes have passed
/// (413), when a form-encoded body carries an `access_token` parameter (RFC 6750 §2.2; each chunk is scanned before
/// it is released, so the token's bytes go nowhere), when hyper reports the body malformed or cut short (400), or
/// when no bytes arrive for the idle timeout (408). The forwarder answers with the recorded fault instead of the 502
/// the upstream client's error would suggest. Nothing is buffered but the one frame [`LimitedBody::prime`] holds.
pub struct LimitedBody<B = Incoming> {
    inner: B,
    remaining: u64,
    fault: Arc<BodyFaultCell>,
    scan: Option<FormScan>,
    idle: Duration,
    // Created the first time the body waits for the client: a body that never waits costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
    // A frame arrived since the timer was last set, so it restarts at the next wait.
    rearm: bool,
    first: Option<Frame<Bytes>>,
}

// === impl BodyFaultCell ===

impl BodyFaultCell {
    /// Records `fault` (the first one recorded stays).
    pub fn set(&self, fault: BodyFault) {
        let code = match fault {
            BodyFault::TooLarge => 1,
            BodyFault::TokenInBody => 2,
            BodyFault::Malformed => 3,
            BodyFault::IdleTimeout => 4,
        };
        let _ = self
            .0
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The recorded fault, if any.
    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::TokenInBody),
            3 => Some(BodyFault::Malformed),
            4 => Some(BodyFault::IdleTimeout),
            _ => None,
        }
    }
}

/// Whether a form body arriving as `chunks` (in order) is refused for carrying an `access_token` parameter: the
/// scan [`LimitedBody::scanning_for_tokens`] runs, without a connection. For the fuzz targets and property tests;
/// not part of the proxy's API.
#[doc(hidden)]
pub fn form_body_carries_token<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut scan = FormScan::new();
    chunks.into_iter().any(|chunk| scan.hit(chunk))
}

// === impl LimitedBody ===

impl<B> LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    /// Wraps `inner`, allowing at most `limit` bytes and at most `idle` between them, recording a fault in `fault`.
    pub fn new(inner: B, limit: u64, idle: Duration, fault: Arc<BodyFaultCell>) -> Self {
        Self {
            inner,
            remaining: limit,
            fault,
            scan: None,
            idle,
            timer: None,
            rearm: false,
            first: None,
        }
    }

    /// Also scans the body for an `access_token` parameter (form-encoded bodies).
    pub fn scanning_for_tokens(mut self) -> Self {
        self.scan = Some(FormScan::new());
        self
    }

    /// Waits for the body's first frame and keeps it for whoever reads the body next, so a body that is malformed,
    /// over the limit, carries a token in its first chunk, or never starts is refused before any upstream request
    /// starts. Returns at once for a body that is already complete (none, or `Content-Length: 0`).
    ///
    /// # Errors
    /// The [`BodyFault`] that stopped the body (also recorded in its cell).
    pub async fn prime(&mut self) -> Result<(), BodyFault> {
        if self.first.is_some() || self.inner.is_end_stream() {
            return Ok(());
        }
        match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await {
            Some(Ok(frame)) => {
                self.first = Some(frame);
                Ok(())
            }
            Some(Err(_)) => Err(self.fault.get().unwrap_or(BodyFault::Malformed)),
            None => Ok(()),
        }
    }

    fn fail(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.fault.set(fault);
        Poll::Ready(Some(Err(Box::new(fault))))
    }

    /// The inner body is waiting for the client: fails the body once it has waited `idle` since the last frame.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let idle = self.idle;
        let timer = match self.timer.as_mut() {
            Some(timer) => {
                if self.rearm {
                    timer.as_mut().reset(Instant::now() + idle);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep(idle))),
        };
        self.rearm = false;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => self.fail(BodyFault::IdleTimeout),
            Poll::Pending => Poll::Pending,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.rearm = true;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return this.fail(BodyFault::TooLarge);
                    }
                    this.remaining -= len;
                    if let Some(scan) = this.scan.as_mut()
                        && scan.hit(data)
                    {
                        return this.fail(BodyFault::TokenInBody);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // hyper's decoder refused the framing, or the client went away mid-body.
            Poll::Ready(Some(Err(_))) => this.fail(BodyFault::Malformed),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        // The held frame was already counted off the inner body's hint; the upstream client reads an exact hint
        // as the Content-Length it sends.
        let Some(first) = self.first.as_ref().and_then(Frame::data_ref) else {
            return hint;
        };
        let len = first.len() as u64;
        let mut out = SizeHint::new();
        if let Some(upper) = hint.upper() {
            out.set_upper(upper.saturating_add(len));
        }
        out.set_lower(hint.lower().saturating_add(len));
        out
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
