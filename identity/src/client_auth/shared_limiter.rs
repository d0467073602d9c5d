//! The failure limiter as callers use it: the local [`Limiter`](super::Limiter) first, then the counts every
//! replica shares through the identity store (Redis: `<p>:fail:<digest>:<minute>`), so failures spread over
//! replicas meet the same limit as on one. Store keys are keyed digests of the limiter keys — never a raw
//! client id, username or secret.
//!
//! When the store cannot answer (Redis down, or slower than [`SHARED_TIMEOUT`]) the local limiter alone decides:
//! failing closed would lock every client out during an outage, and a replica's own outage is not a client's
//! failure. The embedded store shares nothing and always answers 0.

use std::net::IpAddr;
use std::time::Duration;

use idguard_config::store::StoreError;

use super::limiter::{GLOBAL_FACTOR, pair_key};
use crate::IdentityService;

/// How long an authentication waits for the shared counts before the local limiter decides alone.
const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// The domain of the keyed digest that stands for a limiter key in the store.
const DIGEST_DOMAIN: &str = "auth-failures";

// === impl IdentityService ===

impl IdentityService {
    /// `Err(retry_after)` when `id` has used up this minute's failures from `peer` (`limit`) or from every
    /// address (`limit` × [`GLOBAL_FACTOR`]), counted here or by any replica sharing the store.
    pub(crate) async fn check_failures(
        &self,
        id: &str,
        peer: Option<IpAddr>,
        limit: u32,
        now: u64,
    ) -> Result<(), u64> {
        self.inner.limiter.check(id, peer, limit, now)?;
        let (pair, all) = self.failure_digests(id, peer);
        let store = self.inner.store.clone();
        let window = now / 60;
        let shared = tokio::time::timeout(
            SHARED_TIMEOUT,
            tokio::task::spawn_blocking(move || -> Result<(u32, u32), StoreError> {
                Ok((
                    store.failures(&pair, window)?,
                    store.failures(&all, window)?,
                ))
            }),
        )
        .await;
        match shared {
            Ok(Ok(Ok((pair, all)))) => {
                if pair >= limit || all >= limit.saturating_mul(GLOBAL_FACTOR) {
                    Err(60 - now % 60)
                } else {
                    Ok(())
                }
            }
            _ => {
                tracing::debug!(
                    reason = "store_unavailable",
                    "shared failure counts unavailable; the local limiter decides"
                );
                Ok(())
            }
        }
    }

    /// Counts one failure for `id` from `peer`, here and in the shared store (best effort: see the module doc).
    pub(crate) async fn count_failure(&self, id: &str, peer: Option<IpAddr>, now: u64) {
        self.inner.limiter.fail(id, peer, now);
        let (pair, all) = self.failure_digests(id, peer);
        let store = self.inner.store.clone();
        let window = now / 60;
        // Kept one minute past the window's end, so a clock a little behind still reads it.
        let expires_at = (window + 2) * 60;
        let recorded = tokio::time::timeout(
            SHARED_TIMEOUT,
            tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                store.record_failure(&pair, window, expires_at)?;
                store.record_failure(&all, window, expires_at)?;
                Ok(())
            }),
        )
        .await;
        if !matches!(recorded, Ok(Ok(Ok(())))) {
            tracing::debug!(
                reason = "store_unavailable",
                "a failure was counted locally only"
            );
        }
    }

    /// The store keys of (`id`, `peer`) and of `id` over every address.
    fn failure_digests(&self, id: &str, peer: Option<IpAddr>) -> ([u8; 32], [u8; 32]) {
        let hasher = &self.inner.hasher;
        (
            hasher.digest(DIGEST_DOMAIN, &pair_key(id, peer)),
            hasher.digest(DIGEST_DOMAIN, id),
        )
    }
}
