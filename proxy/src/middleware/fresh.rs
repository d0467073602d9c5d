//! `RequireFreshTopology`: with a shared store (Redis) unreachable for longer than `redis_max_staleness_ms`, the
//! topology in force may no longer be the topology: an edge removed or an agent disabled meanwhile would still be
//! honoured. Past that bound the proxy fails closed with 503 and `Retry-After` until the store answers again.
//! One atomic load per request; the store watcher sets the flag.

use std::sync::Arc;

use idguard_config::Readiness;

use crate::ctx::Ctx;
use crate::error::ProxyError;
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
