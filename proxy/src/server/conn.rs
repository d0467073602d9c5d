//! One connection of the public listener after it was admitted: its protocol learned from its first bytes, its
//! open requests counted, and the deadlines that close it. hyper-util's auto builder reads the first bytes to
//! choose HTTP/1 or HTTP/2 with no deadline, and hyper's HTTP/2 server keeps a connection with no stream forever;
//! [`drive`] bounds both.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Public;
use crate::metrics::{ConnClose, ProxyMetrics};

/// What a client must send first to speak HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

/// A connection being served.
pub(super) type Conn<I> =
    auto::Connection<'static, TokioIo<Sniff<I>>, TowerToHyperService<Public>, TokioExecutor>;

/// What one connection's task, its IO and its service share.
pub(crate) struct Activity {
    started: Instant,
    /// [`UNKNOWN`], [`HTTP1`] or [`HTTP2`], set once by [`Sniff`].
    protocol: AtomicU8,
    /// Requests whose response has not finished.
    open: AtomicUsize,
    /// When `open` last fell to 0, in ms since `started`.
    idle_since_ms: AtomicU64,
}

/// The connection's IO, watching the bytes read until they tell HTTP/1 from HTTP/2 by the same rule as hyper-util's
/// auto builder (the HTTP/2 preface, or the first byte that departs from it). After that it only passes bytes on.
pub(crate) struct Sniff<I> {
    inner: I,
    matched: usize,
    done: bool,
    activity: Arc<Activity>,
}

/// One open request of a connection; dropped when its response body is finished or abandoned.
pub(crate) struct StreamGuard(Arc<Activity>);

pin_project_lite::pin_project! {
    /// A response body holding its request's [`StreamGuard`].
    pub(crate) struct Tracked<B> {
        #[pin]
        inner: B,
        guard: Option<StreamGuard>,
    }
}

/// The deadlines of one connection.
#[derive(Clone, Copy)]
pub(super) struct Deadlines {
    /// When its first bytes must have chosen a protocol.
    pub(super) first_bytes: Instant,
    /// How long an HTTP/2 connection may have no open stream.
    pub(super) http2_idle: Duration,
    /// How long a peer sent GOAWAY for idleness gets to complete the shutdown (answer its PING) before the
    /// connection is dropped: the keep-alive timeout, the time any PING may take.
    pub(super) goaway_grace: Duration,
}

// === impl Activity ===

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            protocol: AtomicU8::new(UNKNOWN),
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn protocol(&self) -> u8 {
        self.protocol.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// When the connection will have been idle for `limit`, or `None` while a request is open.
    fn idle_until(&self, limit: Duration) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.started + since + limit)
    }
}

// === impl StreamGuard ===

impl StreamGuard {
    /// Counts a request open on the connection of `activity`.
    pub(crate) fn new(activity: &Arc<Activity>) -> Self {
        activity.open.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0
                .idle_since_ms
                .store(self.0.now_ms(), Ordering::Release);
        }
    }
}

// === impl Tracked ===

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, guard: Option<StreamGuard>) -> Self {
        Self { inner, guard }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl Sniff ===

impl<I> Sniff<I> {
    pub(super) fn new(inner: I, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            matched: 0,
            done: false,
            activity,
        }
    }

    fn see(&mut self, new: &[u8]) {
        // End of stream before a choice: hyper-util reads it as HTTP/1, and the connection ends either way.
        if new.is_empty() {
            return self.decide(HTTP1);
        }
        for &b in new.iter().take(H2_PREFACE.len() - self.matched) {
            if H2_PREFACE[self.matched] != b {
                return self.decide(HTTP1);
            }
            self.matched += 1;
        }
        if self.matched == H2_PREFACE.len() {
            self.decide(HTTP2);
        }
    }

    fn decide(&mut self, protocol: u8) {
        self.done = true;
        self.activity.protocol.store(protocol, Ordering::Release);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Sniff<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.done && matches!(result, Poll::Ready(Ok(()))) {
            this.see(&buf.filled()[before..]);
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Sniff<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The error a connection ends with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `conn` to its end. A connection whose first bytes have not chosen a protocol by
/// `deadlines.first_bytes` is dropped; an HTTP/2 connection with no open stream for `deadlines.http2_idle` is sent
/// GOAWAY (hyper's graceful shutdown) and dropped if still open `deadlines.goaway_grace` later (a peer that never
/// answers the shutdown's PING would otherwise hold it); `drain` firing starts a graceful shutdown. Each close on
/// a deadline, hyper's own timeouts included, is counted in `metrics`.
pub(super) async fn drive<I>(
    conn: Conn<I>,
    activity: &Activity,
    deadlines: Deadlines,
    drain: &mut watch::Receiver<()>,
    metrics: &ProxyMetrics,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    let first_bytes = tokio::time::sleep_until(deadlines.first_bytes);
    let idle = tokio::time::sleep_until(activity.started + deadlines.http2_idle);
    tokio::pin!(first_bytes, idle);
    let (mut choosing, mut watching_idle, mut draining, mut closing) = (true, true, false, false);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = &result
                    && let Some(close) = timed_out(e, activity.protocol())
                {
                    metrics.closed(close);
                }
                return result;
            }
            _ = drain.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut first_bytes, if choosing => {
                choosing = false;
                if activity.protocol() == UNKNOWN {
                    metrics.closed(ConnClose::FirstBytesTimeout);
                    return Ok(());
                }
            }
            () = &mut idle, if watching_idle => {
                let now = Instant::now();
                match activity.protocol() {
                    // HTTP/1 waits between requests under hyper's header-read timeout.
                    HTTP1 => watching_idle = false,
                    // GOAWAY went out a grace period ago and nothing is open: the peer never completed the
                    // shutdown (it did not answer its PING). A stream opened meanwhile is let finish.
                    HTTP2 if closing => match activity.idle_until(Duration::ZERO) {
                        Some(_) => return Ok(()),
                        None => idle.as_mut().reset(now + deadlines.goaway_grace),
                    },
                    HTTP2 => match activity.idle_until(deadlines.http2_idle) {
                        Some(at) if at <= now => {
                            metrics.closed(ConnClose::Http2IdleTimeout);
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                            idle.as_mut().reset(now + deadlines.goaway_grace);
                        }
                        Some(at) => idle.as_mut().reset(at),
                        None => idle.as_mut().reset(now + deadlines.http2_idle),
                    },
                    // Not chosen yet: the first-bytes deadline deals with that.
                    _ => idle.as_mut().reset(now + deadlines.http2_idle),
                }
            }
        }
    }
}

/// The close a connection error stands for, when it is one of hyper's timeouts.
fn timed_out(e: &BoxError, protocol: u8) -> Option<ConnClose> {
    let e = e.downcast_ref::<hyper::Error>()?;
    e.is_timeout().then_some(if protocol == HTTP2 {
        ConnClose::Http2KeepaliveTimeout
    } else {
        ConnClose::HeaderReadTimeout
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol chosen after reading `chunks` in turn.
    fn chosen(chunks: &[&[u8]]) -> u8 {
        let activity = Activity::new();
        let mut sniff = Sniff::new((), activity.clone());
        for chunk in chunks {
            if !sniff.done {
                sniff.see(chunk);
            }
        }
        activity.protocol()
    }

    #[test]
    fn the_first_bytes_choose_like_hyper_util_and_a_partial_preface_chooses_nothing() {
        assert_eq!(chosen(&[H2_PREFACE]), HTTP2);
        assert_eq!(
            chosen(&[&H2_PREFACE[..5], &H2_PREFACE[5..20], &H2_PREFACE[20..]]),
            HTTP2
        );
        assert_eq!(chosen(&[b"GET / HTTP/1.1\r\n"]), HTTP1);
        assert_eq!(chosen(&[b"PRI * HTTP/1.1"]), HTTP1);
        assert_eq!(chosen(&[&H2_PREFACE[..16]]), UNKNOWN);
        assert_eq!(chosen(&[b"P", b"R"]), UNKNOWN);
        assert_eq!(chosen(&[]), UNKNOWN);
        // End of stream before a choice.
        assert_eq!(chosen(&[b"PR", b""]), HTTP1);
    }

    #[test]
    fn a_connection_is_idle_only_with_no_request_open() {
        let activity = Activity::new();
        let limit = Duration::from_secs(60);
        assert!(activity.idle_until(limit).is_some());
        let guard = StreamGuard::new(&activity);
        let second = StreamGuard::new(&activity);
        assert_eq!(activity.idle_until(limit), None);
        drop(guard);
        assert_eq!(activity.idle_until(limit), None);
        drop(second);
        let until = activity.idle_until(limit).unwrap();
        assert!(until >= activity.started + limit);
    }
}
