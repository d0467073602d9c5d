//! `RequireFreshTopology`: with a shared store (Redis) unreachable for longer than `redis_max_staleness_ms`, the
//! topology in force may no longer be the topology: an edge removed or an agent disabled meanwhile would still be
//! honoured. Past that bound the proxy fails closed with 503 and `Retry-After` until the store answers again.
//! One atomic load per request; the store watcher sets the flag.
//!
//! [`while_incomplete`] covers the other gap: a replica started while the shared store is down serves the routing
//! file alone until the store's objects are loaded, so a node, grant or scope created through the admin API is not
//! absent, only not loaded yet.

use std::sync::Arc;

use idguard_config::Readiness;

use crate::ctx::Ctx;
use crate::error::{ProxyError, TokenReason};
use crate::middleware::{Req, RequestStep};

/// Refuses requests while the topology is too old to trust.
#[derive(Clone)]
pub struct RequireFreshTopology {
    readiness: Arc<Readiness>,
}

impl RequireFreshTopology {
    /// Reads the flag from `readiness`.
    pub fn new(readiness: Arc<Readiness>) -> Self {
        Self { readiness }
    }
}

impl RequestStep for RequireFreshTopology {
    fn apply(&self, _req: &mut Req, _ctx: &mut Ctx) -> Result<(), ProxyError> {
        if self.readiness.topology_expired() {
            Err(ProxyError::TopologyStale)
        } else {
            Ok(())
        }
    }
}

/// What a refusal means while the store's objects have never been loaded (`incomplete`): a refusal for something
/// the topology does not hold yet — an unknown node, agent or client, a missing grant or scope, a user not
/// (yet) authorized, a token whose client secret or key the topology does not list — is this replica's gap, answered 503 `topology_stale` so the caller retries (elsewhere);
/// every other error, and every error once the topology is complete, stands.
pub fn while_incomplete(e: ProxyError, incomplete: bool) -> ProxyError {
    if !incomplete {
        return e;
    }
    match e {
        ProxyError::UnknownRoute
        | ProxyError::NoEdge
        | ProxyError::InsufficientScope(_)
        | ProxyError::UserNotAuthorized
        | ProxyError::InvalidToken(
            TokenReason::UnknownAgent | TokenReason::UnknownClient | TokenReason::CredentialRevoked,
        ) => ProxyError::TopologyStale,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_missing_objects_could_change_becomes_503() {
        for e in [
            ProxyError::UnknownRoute,
            ProxyError::NoEdge,
            ProxyError::InsufficientScope("a".into()),
            ProxyError::UserNotAuthorized,
            ProxyError::InvalidToken(TokenReason::UnknownAgent),
        ] {
            assert!(matches!(
                while_incomplete(e, true),
                ProxyError::TopologyStale
            ));
        }
        assert!(matches!(
            while_incomplete(ProxyError::UnknownRoute, false),
            ProxyError::UnknownRoute
        ));
        assert!(matches!(
            while_incomplete(ProxyError::MissingToken, true),
            ProxyError::MissingToken
        ));
    }
}
