//! The accept loop. Takes an already-bound listener and a shutdown future (so tests bind port 0), serves
//! HTTP/1.1 and HTTP/2 (ALPN over TLS, prior knowledge in clear) with hyper-util's auto builder, and drains on
//! shutdown: stop accepting, let in-flight requests finish, give up at the deadline.

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
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use idguard_config::files::{MAX_TLS_FILE_BYTES, read_bounded};
use idguard_config::snapshot::{Limits, TlsFiles};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tower::util::BoxCloneSyncService;
use zeroize::Zeroizing;

use crate::body::ProxyBody;
use crate::stack::{self, ProxyService};
use crate::state::Shared;

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
/// the proxy's stack.
#[derive(Clone)]
pub struct Public {
    proxy: ProxyService,
    /// The connection's client, told to the identity service (its failure counting is keyed by it).
    peer: SocketAddr,
    identity_routes: Option<IdentityRoutes>,
}

type PublicBody = http_body_util::Either<ProxyBody, IdentityBody>;
type PublicFuture = futures_util::future::Either<
    futures_util::future::MapOk<
        <ProxyService as Service<Request<Incoming>>>::Future,
        fn(Response<ProxyBody>) -> Response<PublicBody>,
    >,
    futures_util::future::MapOk<
        <IdentityRoutes as Service<Request<Incoming>>>::Future,
        fn(Response<IdentityBody>) -> Response<PublicBody>,
    >,
>;

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
        let path = req.uri().path();
        if let Some(identity_routes) = &mut self.identity_routes
            && IDENTITY_PREFIXES.iter().any(|p| path.starts_with(p))
        {
            let left: fn(Response<IdentityBody>) -> Response<PublicBody> =
                |r| r.map(http_body_util::Either::Right);
            let mut req = req;
            req.extensions_mut()
                .insert(idguard_config::identity::PeerAddr(self.peer.ip()));
            return futures_util::future::Either::Right(identity_routes.call(req).map_ok(left));
        }
        let right: fn(Response<ProxyBody>) -> Response<PublicBody> =
            |r| r.map(http_body_util::Either::Left);
        futures_util::future::Either::Left(self.proxy.call(req).map_ok(right))
    }
}

/// How long in-flight requests get after shutdown begins.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;

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
    let builder = builder(&limits);
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
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
                spawn_connection(stream, peer, acceptor.clone(), &shared, identity_routes.clone(), builder.clone(), &graceful);
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!(reason = "drain_deadline", "drain deadline reached; closing remaining connections");
        }
    }
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: &Arc<Shared>,
    identity_routes: Option<IdentityRoutes>,
    builder: auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(Public {
        proxy: stack::new_service(shared, peer, acceptor.is_some()),
        peer,
        identity_routes,
    });
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let result = match acceptor {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                watcher.watch(conn).await
            }
            Some(acceptor) => {
                let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, reason = "tls_handshake_failed", "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, reason = "tls_handshake_timeout", "TLS handshake timed out");
                        return;
                    }
                };
                let conn = builder
                    .serve_connection(TokioIo::new(tls), service)
                    .into_owned();
                watcher.watch(conn).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection ended with an error: {e}");
        }
    });
}
