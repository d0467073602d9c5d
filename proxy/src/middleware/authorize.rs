//! `Authorize`: the verified agent must have an outbound edge to the node and hold every scope the edge
//! requires. Runs before any credential is touched or any upstream connection is made.

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::metrics::ProxyMetrics;
use crate::middleware::{Req, RequestStep};

/// Checks the agent → node edge and its scopes.
#[derive(Clone)]
pub struct Authorize {
    metrics: Arc<ProxyMetrics>,
}

impl Authorize {
    /// Counts decisions in `metrics`.
    pub fn new(metrics: Arc<ProxyMetrics>) -> Self {
        Self { metrics }
    }
}

impl RequestStep for Authorize {
    fn apply(&self, _req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let (Some(route), Some(identity)) = (&ctx.route, &ctx.identity) else {
            return Err(ProxyError::Internal);
        };
        let Some(edge) = route.node.edges.get(&*identity.agent) else {
            let _ = ctx.log.decision.set("deny");
            self.metrics.decision(false, "no_edge");
            return Err(ProxyError::NoEdge);
        };
        let missing: Vec<&str> = edge
            .required_scopes
            .iter()
            .filter(|s| !identity.has_scope(s))
            .map(|s| &**s)
            .collect();
        if !missing.is_empty() {
            let _ = ctx.log.decision.set("deny");
            self.metrics.decision(false, "insufficient_scope");
            return Err(ProxyError::InsufficientScope(missing.join(" ")));
        }
        let _ = ctx.log.decision.set("allow");
        self.metrics.decision(true, "edge");
        Ok(())
    }
}
