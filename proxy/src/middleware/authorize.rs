//! `Authorize`: the verified agent must have an outbound edge to the node and hold every scope the edge
//! requires. Runs before any credential is touched or any upstream connection is made.

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::metrics::ProxyMetrics;
use crate::middleware::{Req, RequestStep};
use crate::routes::NodeRoute;
use crate::verify::Identity;

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
        if let Err(e) = decide(&route.node, identity) {
            let _ = ctx.log.decision.set("deny");
            self.metrics.decision(false, e.reason());
            return Err(e);
        }
        let _ = ctx.log.decision.set("allow");
        self.metrics.decision(true, "edge");
        Ok(())
    }
}

/// The decision itself: the agent's edge to `node` must exist and carry every required scope.
///
/// # Errors
/// [`ProxyError::NoEdge`] or [`ProxyError::InsufficientScope`] naming the missing scopes.
pub fn decide(node: &NodeRoute, identity: &Identity) -> Result<(), ProxyError> {
    let edge = node.edges.get(&*identity.agent).ok_or(ProxyError::NoEdge)?;
    if edge.required_scopes.iter().all(|s| identity.has_scope(s)) {
        return Ok(());
    }
    let missing: Vec<&str> = edge
        .required_scopes
        .iter()
        .filter(|s| !identity.has_scope(s))
        .map(|s| &**s)
        .collect();
    Err(ProxyError::InsufficientScope(missing.join(" ")))
}
