//! The accept loop. Takes an already-bound listener and a shutdown future (so tests bind port 0), serves
//! HTTP/1.1 and HTTP/2 (ALPN over TLS, prior knowledge in clear) with hyper-util's auto builder, and drains on
//! shutdown: stop accepting, let in-flight requests finish, give up at the deadline.
//!
//! Connections are bounded in number (`server/caps.rs`: per listener and per client address, a connection past a
//! cap is accepted and closed at once) and in time (`server/conn.rs`: the TLS handshake and the bytes that choose
//! the protocol by `limits.first_bytes_timeout_ms`, an HTTP/2 connection without a stream by
//! `limits.http2_idle_timeout_ms`, keep-alive pings, and hyper's header-read timeout for HTTP/1).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use idguard_config::files::{MAX_TLS_FILE_BYTES, read_bounded};
use idguard_config::snapshot::{Limits, TlsFiles};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tower::util::BoxCloneSyncService;
use zeroize::Zeroizing;

use crate::body::ProxyBody;
use crate::metrics::ConnClose;
use crate::stack::{self, ProxyService};
use crate::state::Shared;
use caps::{ConnGuard, ConnTable};
use conn::{Activity, Deadlines, Sniff, StreamGuard, Tracked};

mod caps;
mod conn;

/// The body type of the identity service's responses.
pub type IdentityBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The identity service's routes (`/oauth2/*`, `/.well-known/*`), served on the public listener beside the proxy
/// (built by the binary from `idguard-identity`, which this crate does not depend on).
pub type IdentityRoutes =
    BoxCloneSyncService<Request<Incoming>, Response<IdentityBody>, Infallible>;

/// Path prefixes the identity service answers on the public listener.
const IDENTITY_PREFIXES: [&str; 2] = ["/oauth2/", "/.well-known/"];

/// The public listener's service: the identity service's paths to its routes, everything else through
/// the proxy's stack. Each request counts as open on its connection until its response body is done.
#[derive(Clone)]
pub(crate) struct Public {
    proxy: ProxyService,
    /// The connection's client, told to the identity service (its failure counting is keyed by it).
    peer: SocketAddr,
    identity_routes: Option<IdentityRoutes>,
    activity: Arc<Activity>,
}

type RoutedBody = http_body_util::Either<ProxyBody, IdentityBody>;
type PublicBody = Tracked<RoutedBody>;
type RoutedFuture = futures_util::future::Either<
    futures_util::future::MapOk<
        <ProxyService as Service<Request<Incoming>>>::Future,
        fn(Response<ProxyBody>) -> Response<RoutedBody>,
    >,
    futures_util::future::MapOk<
        <IdentityRoutes as Service<Request<Incoming>>>::Future,
        fn(Response<IdentityBody>) -> Response<RoutedBody>,
    >,
>;

pin_project_lite::pin_project! {
    /// A response future that hands its request's [`StreamGuard`] to the response body.
    pub(crate) struct PublicFuture {
        #[pin]
        inner: RoutedFuture,
        guard: Option<StreamGuard>,
    }
}

impl Future for PublicFuture {
    type Output = Result<Response<PublicBody>, Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let resp = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        std::task::Poll::Ready(resp.map(|resp| resp.map(|body| Tracked::new(body, guard))))
    }
}

impl Service<Request<Incoming>> for Public {
    type Response = Response<PublicBody>;
    type Error = Infallible;
    type Future = PublicFuture;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        use futures_util::TryFutureExt;
        let guard = Some(StreamGuard::new(&self.activity));
        let path = req.uri().path();
        if let Some(identity_routes) = &mut self.identity_routes
            && IDENTITY_PREFIXES.iter().any(|p| path.starts_with(p))
        {
            let left: fn(Response<IdentityBody>) -> Response<RoutedBody> =
                |r| r.map(http_body_util::Either::Right);
            let mut req = req;
            req.extensions_mut()
                .insert(idguard_config::identity::PeerAddr(self.peer.ip()));
            let inner = futures_util::future::Either::Right(identity_routes.call(req).map_ok(left));
            return PublicFuture { inner, guard };
        }
        let right: fn(Response<ProxyBody>) -> Response<RoutedBody> =
            |r| r.map(http_body_util::Either::Left);
        let inner = futures_util::future::Either::Left(self.proxy.call(req).map_ok(right));
        PublicFuture { inner, guard }
    }
}

/// How long in-flight requests get after shutdown begins.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take (within the first-bytes deadline, which also counts it).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams an HTTP/2 connection may make us reset for its protocol errors (a PRIORITY frame naming its own stream,
/// for one) before it is closed with `ENHANCE_YOUR_CALM`; hyper's default, pinned here because it is a documented
/// bound.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// What every connection of one listener shares.
struct ListenerState {
    shared: Arc<Shared>,
    identity_routes: Option<IdentityRoutes>,
    builder: auto::Builder<TokioExecutor>,
    acceptor: Option<TlsAcceptor>,
    /// Each connection task holds a receiver; sending starts their graceful shutdown, and the sender's `closed()`
    /// completes once every connection has ended.
    drain: watch::Sender<()>,
}

/// Loading the listener's TLS material failed.
#[derive(Debug, thiserror::Error)]
#[error("listeners.tls: {0}")]
pub struct TlsError(String);

/// Builds the public listener's rustls configuration (ALPN h2, http/1.1) from PEM files.
///
/// # Errors
/// [`TlsError`] naming the file and the problem.
pub fn load_tls(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |path: &Path| {
        read_bounded(path, MAX_TLS_FILE_BYTES)
            .map(Zeroizing::new)
            .map_err(|e| TlsError(format!("{}: {e}", path.display())))
    };
    let chain = read(&files.cert_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", files.cert_file.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key_file)?)
        .map_err(|e| TlsError(format!("{}: {e}", files.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's own ceiling sits above ours so that our limit layer answers with a JSON 431, not a bare one.
        .max_buf_size((limits.max_header_bytes + limits.max_uri_bytes).max(8192) * 2)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout)
        .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX));
    builder
}

/// Serves `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shared: Arc<Shared>,
    identity_routes: Option<IdentityRoutes>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = shared.routes.load().snapshot.settings.limits;
    let conns = ConnTable::new(shared.metrics.connections_open.clone());
    let state = Arc::new(ListenerState {
        builder: builder(&limits),
        acceptor: tls.map(TlsAcceptor::from),
        shared,
        identity_routes,
        drain: watch::Sender::new(()),
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::warn!(reason = "accept_failed", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // The caps in force now: a reload applies to the next connection.
                let limits = state.shared.routes.load().snapshot.settings.limits;
                match conns.admit(peer.ip(), limits.max_connections, limits.max_connections_per_ip) {
                    Ok(guard) => spawn_connection(&state, stream, peer, guard, &limits),
                    Err(why) => {
                        // Dropping the stream closes it; the client sees the connection end at once.
                        state.shared.metrics.refused(why);
                        tracing::debug!(%peer, reason = why.as_str(), "connection refused");
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = state.drain.send(());
    tokio::select! {
        () = state.drain.closed() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!(reason = "drain_deadline", "drain deadline reached; closing remaining connections");
        }
    }
}

fn spawn_connection(
    state: &Arc<ListenerState>,
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
    limits: &Limits,
) {
    let _ = stream.set_nodelay(true);
    let accepted = Instant::now();
    let deadlines = Deadlines {
        first_bytes: accepted + limits.first_bytes_timeout,
        http2_idle: limits.http2_idle_timeout,
        goaway_grace: limits.http2_keepalive_timeout,
    };
    let state = state.clone();
    let mut drain = state.drain.subscribe();
    tokio::spawn(async move {
        let _guard = guard;
        let result = match state.acceptor.clone() {
            None => state.serve_io(stream, peer, deadlines, &mut drain).await,
            Some(acceptor) => {
                let handshake_by = deadlines.first_bytes.min(accepted + TLS_HANDSHAKE_TIMEOUT);
                match tokio::time::timeout_at(handshake_by, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => state.serve_io(tls, peer, deadlines, &mut drain).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, reason = "tls_handshake_failed", "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        state.shared.metrics.closed(ConnClose::TlsHandshakeTimeout);
                        tracing::debug!(%peer, reason = "tls_handshake_timeout", "TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection ended with an error: {e}");
        }
    });
}

// === impl ListenerState ===

impl ListenerState {
    /// Serves one admitted connection (after its TLS handshake, if any) until it ends.
    async fn serve_io<I>(
        &self,
        io: I,
        peer: SocketAddr,
        deadlines: Deadlines,
        drain: &mut watch::Receiver<()>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let service = TowerToHyperService::new(Public {
            proxy: stack::new_service(&self.shared, peer, self.acceptor.is_some()),
            peer,
            identity_routes: self.identity_routes.clone(),
            activity: activity.clone(),
        });
        let conn = self
            .builder
            .serve_connection(TokioIo::new(Sniff::new(io, activity.clone())), service)
            .into_owned();
        conn::drive(conn, &activity, deadlines, drain, &self.shared.metrics).await
    }
}
