//! idguard's data plane: the reverse proxy agents call instead of their LLM or external API.
//!
//! A request is routed by prefix to a node, its agent token verified, the agent→node edge checked against the
//! topology, every credential the caller sent removed, the stored one (or a token exchanged for an enterprise
//! service) injected, and the exchange streamed to the upstream and back. Client applications reach agents
//! through the inbound gateway on the same path. See `docs/request-lifecycle.md`.
//!
//! # Layout
//! - [`server`]: accept loop over an already-bound listener; TLS; connection caps and deadlines; graceful drain.
//! - [`stack`]: the one function that orders the layers.
//! - [`middleware`]: the layers, one concern each ([`middleware::observe`], [`middleware::limits`],
//!   [`middleware::route`], [`middleware::verify_token`], [`middleware::authorize`], [`middleware::strip`],
//!   [`middleware::obtain`], [`middleware::inject`]).
//! - [`forward`]: the innermost service: build the upstream URI, send, clean the response.
//! - [`echo`]: every form of a route's credential, searched for (and redacted) in what its upstream answers.
//! - [`routes`]: the per-snapshot routing table, credentials prepared as sensitive header values.
//! - [`verify`] and [`keys`]: token verification, its cache, and the issuers' keys.
//! - [`path`]: strict path checking.
//! - [`tokens`]: run-time credentials (exchanged and OAuth tokens), their cache, and the HTTP exchanger.
//! - [`upstream`]: the pooled rustls client, one pool per address policy; `upstream/guard.rs` checks every address
//!   it connects to (SSRF, DNS rebinding).
//! - [`state`], [`ctx`]: shared and per-request state.
//! - [`body`], [`error`], [`metrics`]: body types, the error type and its HTTP mapping, Prometheus metrics.

pub mod body;
pub mod ctx;
pub mod echo;
pub mod error;
pub mod forward;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod path;
pub mod routes;
pub mod server;
pub mod stack;
pub mod state;
pub mod tokens;
pub mod upstream;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use idguard_config::identity::{LocalKeys, Revocations, TokenExchanger};
use idguard_config::{Clock, Resolver, SnapshotRx};
use prometheus::Registry;
use rustls::ServerConfig;
use tokio::net::TcpListener;

pub use error::ProxyError;
pub use server::{IdentityBody, IdentityRoutes, load_tls};

use crate::keys::KeyStore;
use crate::metrics::ProxyMetrics;
use crate::routes::Routes;
use crate::state::Shared;
use crate::upstream::UpstreamClient;
use crate::verify::Verifier;

/// Starting the proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The upstream client could not be built.
    #[error(transparent)]
    Client(#[from] upstream::ClientError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What idguard's own identity service hands the data plane (all optional in the sense that the proxy runs
/// without an identity service, trusting outside issuers only).
pub struct IdentityPlane {
    /// Its published signing keys, for the issuer with `KeySource::Local`.
    pub keys: LocalKeys,
    /// Tokens it revoked.
    pub revocations: Arc<Revocations>,
    /// Its in-process token exchange, for `/svc/` routes.
    pub exchanger: Arc<dyn TokenExchanger>,
    /// Its HTTP routes (`/oauth2/*`, `/.well-known/*`), served on the public listener.
    pub routes: IdentityRoutes,
}

/// A ready-to-run data plane.
pub struct Proxy {
    shared: Arc<Shared>,
    snapshots: SnapshotRx,
    // The store version of the routing table in force, published after each swap.
    applied: tokio::sync::watch::Sender<u64>,
    local_keys: Option<LocalKeys>,
    identity_routes: Option<IdentityRoutes>,
}

// === impl Proxy ===

impl Proxy {
    /// Builds the proxy from the snapshot currently published on `snapshots`, registering its metrics; reads
    /// `readiness` for whether the topology may still be trusted; resolves upstream host names with `resolver`.
    ///
    /// # Errors
    /// [`StartError`] when the upstream client or the metrics cannot be set up.
    pub fn new(
        snapshots: SnapshotRx,
        registry: &Registry,
        readiness: Arc<idguard_config::Readiness>,
        identity: Option<IdentityPlane>,
        clock: Clock,
        resolver: &Resolver,
    ) -> Result<Self, StartError> {
        let snapshot = snapshots.borrow().clone();
        let client = UpstreamClient::new(&snapshot.settings.upstream, resolver)?;
        let keys = Arc::new(KeyStore::new(Arc::new(client.clone())));
        keys.set_issuers(&snapshot.issuers);
        let verifier = Arc::new(Verifier::new(
            keys,
            snapshot.settings.token_cache_entries,
            clock.clone(),
        ));
        let metrics = Arc::new(ProxyMetrics::new(registry)?);
        let (local_keys, revocations, exchanger, identity_routes) = match identity {
            Some(i) => {
                verifier.keys().set_local_keys(i.keys.borrow().clone());
                (
                    Some(i.keys),
                    i.revocations,
                    Some(i.exchanger),
                    Some(i.routes),
                )
            }
            None => (None, Arc::new(Revocations::default()), None, None),
        };
        let shared = Arc::new(Shared::new(
            Routes::build(snapshot),
            verifier,
            metrics,
            client,
            readiness,
            exchanger,
            revocations,
            clock,
        ));
        let applied = tokio::sync::watch::Sender::new(snapshots.borrow().store_version);
        Ok(Self {
            shared,
            snapshots,
            applied,
            local_keys,
            identity_routes,
        })
    }

    /// The store version of the routing table the proxy serves, updated after every swap: what a write waits for
    /// to be read-your-writes on this replica.
    pub fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Serves `listener` (TLS when `tls` is set) until `shutdown` completes, then drains in-flight requests.
    /// Applies every snapshot published meanwhile without touching open connections.
    pub async fn run(
        self,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let Proxy {
            shared,
            mut snapshots,
            applied,
            local_keys,
            identity_routes,
        } = self;
        // Fetch URL-based keys before the first request, briefly: a slow JWKS endpoint must not block start-up.
        let keys = shared.verifier.keys().clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), refresh_due(&keys)).await;

        let swapper = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while snapshots.changed().await.is_ok() {
                    let snapshot = snapshots.borrow_and_update().clone();
                    let generation = snapshot.generation;
                    let store_version = snapshot.store_version;
                    shared.verifier.keys().set_issuers(&snapshot.issuers);
                    shared.routes.store(Arc::new(Routes::build(snapshot)));
                    applied.send_replace(store_version);
                    // Obtained tokens are keyed by generation; the old generation's can never be hit again.
                    shared.tokens.clear();
                    refresh_due(shared.verifier.keys()).await;
                    tracing::debug!(generation, "routing table swapped");
                }
            })
        };
        // The identity service's keys arrive in-process whenever it publishes a new set.
        let local = local_keys.map(|mut rx| {
            let keys = shared.verifier.keys().clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let set = rx.borrow_and_update().clone();
                    keys.set_local_keys(set);
                }
            })
        });
        let refresher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                refresh_due(&keys).await;
            }
        });
        server::serve(listener, tls, shared, identity_routes, shutdown).await;
        if let Some(task) = local {
            task.abort();
        }
        swapper.abort();
        refresher.abort();
    }
}

async fn refresh_due(keys: &Arc<KeyStore>) {
    for issuer in keys.due_for_refresh() {
        keys.refresh(&issuer).await;
    }
}
