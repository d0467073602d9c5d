//! What every connection shares: the routing table in force (swapped whole on reload), the token verifier,
//! the upstream client and the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use http::HeaderValue;
use idguard_config::Clock;
use idguard_config::identity::{Revocations, TokenExchanger};
use rand::RngCore;

use crate::metrics::ProxyMetrics;
use crate::routes::Routes;
use crate::tokens::TokenCache;
use crate::upstream::UpstreamClient;
use crate::verify::Verifier;

/// State shared by all connections.
pub struct Shared {
    /// The routing table in force; each request loads it once and keeps it.
    pub routes: ArcSwap<Routes>,
    /// Token verification and its cache.
    pub verifier: Arc<Verifier>,
    /// Metric families.
    pub metrics: Arc<ProxyMetrics>,
    /// The pooled upstream client.
    pub client: UpstreamClient,
    /// Readiness, read for whether the topology may still be trusted.
    pub readiness: Arc<idguard_config::Readiness>,
    /// Exchanged and OAuth tokens.
    pub tokens: TokenCache,
    /// Unix time for token lifetimes (the system clock outside tests).
    pub clock: Clock,
    /// idguard's own identity service, for `/svc/` routes without an outside exchange endpoint.
    pub exchanger: Option<Arc<dyn TokenExchanger>>,
    /// Tokens revoked at the identity service.
    pub revocations: Arc<Revocations>,
    id_prefix: String,
    id_counter: AtomicU64,
}

// === impl Shared ===

impl Shared {
    /// Assembles the shared state.
    // One call site (`Proxy::new`), which names every part; a builder would only restate the fields.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        routes: Routes,
        verifier: Arc<Verifier>,
        metrics: Arc<ProxyMetrics>,
        client: UpstreamClient,
        readiness: Arc<idguard_config::Readiness>,
        exchanger: Option<Arc<dyn TokenExchanger>>,
        revocations: Arc<Revocations>,
        clock: Clock,
    ) -> Self {
        let mut prefix = [0u8; 4];
        rand::rng().fill_bytes(&mut prefix);
        Self {
            routes: ArcSwap::from_pointee(routes),
            verifier,
            metrics,
            client,
            readiness,
            tokens: TokenCache::new(clock.clone()),
            clock,
            exchanger,
            revocations,
            id_prefix: prefix.iter().map(|b| format!("{b:02x}")).collect(),
            id_counter: AtomicU64::new(0),
        }
    }

    /// A process-unique request id: a random per-process prefix and a counter.
    pub fn next_request_id(&self) -> HeaderValue {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:010x}", self.id_prefix))
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}
