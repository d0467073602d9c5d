//! `Authorize`: the verified agent must have an outbound edge to the node and hold every scope the edge
//! requires (for an enterprise service: the edge must exist; the exchange decides the scopes). On the inbound
//! gateway the client application must have an inbound authorization to the agent, its token's scopes must lie
//! within it, and a user the token carries must hold the agent's permission and be authorized on the client.
//! Runs before any credential is touched or any upstream connection is made.

use std::sync::Arc;

use idguard_config::Snapshot;

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::metrics::ProxyMetrics;
use crate::middleware::{Req, RequestStep};
use crate::routes::{NodeRoute, RouteClass};
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
        if let Err(e) = decide(&route.node, identity, &ctx.routes.snapshot) {
            let _ = ctx.log.decision.set("deny");
            self.metrics.decision(false, e.reason());
            return Err(e);
        }
        let _ = ctx.log.decision.set("allow");
        self.metrics.decision(true, "edge");
        Ok(())
    }
}

/// The decision itself: the caller's edge to `node` must exist and carry every required scope.
///
/// # Errors
/// [`ProxyError::NoEdge`], [`ProxyError::InsufficientScope`] naming the missing scopes, or
/// [`ProxyError::UserNotAuthorized`].
pub fn decide(
    node: &NodeRoute,
    identity: &Identity,
    snapshot: &Snapshot,
) -> Result<(), ProxyError> {
    let edge = node.edges.get(&*identity.agent).ok_or(ProxyError::NoEdge)?;
    match node.class {
        RouteClass::Llm | RouteClass::External => {}
        // The exchange grants the service's scopes; the edge's existence is what the proxy checks.
        RouteClass::Service => return Ok(()),
        RouteClass::Inbound => {
            return decide_inbound(node, identity, snapshot, &edge.required_scopes);
        }
    }
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

fn decide_inbound(
    node: &NodeRoute,
    identity: &Identity,
    snapshot: &Snapshot,
    granted: &[Arc<str>],
) -> Result<(), ProxyError> {
    // Scopes within the inbound authorization, and at least one of them.
    if identity.scopes.is_empty()
        || !identity
            .scopes
            .iter()
            .all(|s| granted.iter().any(|g| **g == **s))
    {
        let want: Vec<&str> = granted.iter().map(|s| &**s).collect();
        return Err(ProxyError::InsufficientScope(want.join(" ")));
    }
    let Some(user) = identity.user.as_deref() else {
        return Ok(());
    };
    let (Some(agent), Some(client)) = (
        snapshot.agents.get(&node.id),
        snapshot.clients.get(&*identity.agent),
    ) else {
        return Err(ProxyError::NoEdge);
    };
    let on_client = client.authorizes(user, &snapshot.directory);
    if on_client && agent.permission.granted_to(user, &snapshot.directory) {
        Ok(())
    } else {
        Err(ProxyError::UserNotAuthorized)
    }
}
