//! The request path, in order. This is the only place the layers are composed; `docs/request-lifecycle.md`
//! mirrors it. Each line says why its layer sits where it does.

use std::net::SocketAddr;
use std::sync::Arc;

use tower::ServiceBuilder;

use crate::forward::Forward;
use crate::middleware::authorize::Authorize;
use crate::middleware::fresh::RequireFreshTopology;
use crate::middleware::inject::InjectCredential;
use crate::middleware::limits::{EnforceLimits, EnforceLimitsLayer};
use crate::middleware::observe::{Observe, ObserveLayer};
use crate::middleware::obtain::{ObtainCredential, ObtainCredentialLayer};
use crate::middleware::route::RouteRequest;
use crate::middleware::strip::StripCallerCredentials;
use crate::middleware::verify_token::{VerifyAgentToken, VerifyAgentTokenLayer};
use crate::middleware::{Step, StepLayer};
use crate::state::Shared;

/// The composed service for one connection.
pub type ProxyService = Observe<
    EnforceLimits<
        Step<
            RequireFreshTopology,
            Step<
                RouteRequest,
                VerifyAgentToken<
                    Step<
                        Authorize,
                        Step<
                            StripCallerCredentials,
                            ObtainCredential<Step<InjectCredential, Forward>>,
                        >,
                    >,
                >,
            >,
        >,
    >,
>;

/// Builds the request path for a connection from `peer`.
pub fn new_service(shared: &Arc<Shared>, peer: SocketAddr, tls: bool) -> ProxyService {
    ServiceBuilder::new()
        // Outermost: every outcome, including errors from any layer below, gets an id, a metric and a log line.
        .layer(ObserveLayer::new(shared.clone(), peer, tls))
        // Cheap size and shape checks before any parsing or crypto, so oversized input costs nothing.
        .layer(EnforceLimitsLayer)
        // A topology too old to trust (shared store unreachable past its bound) refuses everything, before any work.
        .layer(StepLayer::new(RequireFreshTopology::new(
            shared.readiness.clone(),
        )))
        // The path is checked and matched before the token: escapes are 400 and unknown nodes 404 regardless.
        .layer(StepLayer::new(RouteRequest))
        // Who is calling; reads the caller's credential slots, so it must run before they are stripped.
        .layer(VerifyAgentTokenLayer::new(
            shared.verifier.clone(),
            shared.metrics.clone(),
            shared.revocations.clone(),
        ))
        // Whether they may call this node: decided before any credential is touched or connection made.
        .layer(StepLayer::new(Authorize::new(shared.metrics.clone())))
        // Remove everything the caller sent that could be a credential or a hop/identity claim...
        .layer(StepLayer::new(StripCallerCredentials))
        // A token obtained at run time (exchange, OAuth) is fetched only for an authorized request, cached...
        .layer(ObtainCredentialLayer::new(shared.clone()))
        // ...so that the one credential the upstream sees is ours, added here.
        .layer(StepLayer::new(InjectCredential))
        .service(Forward::new(shared.clone()))
}
