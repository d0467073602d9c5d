//! The per-request context: one value in the request's extensions, inserted by the outermost layer and filled
//! in by each layer below. It pins the snapshot the request started with, so a reload mid-request changes
//! nothing for it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http::HeaderValue;

use idguard_config::secret::Secret;

use crate::body::BodyFaultCell;
use crate::routes::{Injection, NodeRoute, Routes};
use crate::verify::Identity;

/// What the layers learn about a request. (`Clone` only because `http::Extensions` requires it; it is never
/// cloned.)
#[derive(Clone)]
pub struct Ctx {
    /// This request's id (also sent upstream and returned to the caller as `x-request-id`).
    pub request_id: HeaderValue,
    /// The routing table in force when the request arrived.
    pub routes: Arc<Routes>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the caller connected over TLS.
    pub tls: bool,
    /// Why the request body was stopped, once it was (set by [`crate::body::LimitedBody`], read by the forwarder).
    pub body_fault: Arc<BodyFaultCell>,
    /// Fields the access log and metrics read after the response.
    pub log: Arc<LogFields>,
    /// The matched node and the path remainder under it.
    pub route: Option<Matched>,
    /// The verified caller.
    pub identity: Option<Arc<Identity>>,
    /// The caller's token itself, kept only where it is needed later: as the subject of an exchange
    /// (`/svc/`), or for the agent on the inbound gateway (it is the token's audience).
    pub token: Option<Secret>,
    /// `/svc/` with delegation: the user's token the agent passed in `x-idguard-subject-token`.
    pub subject_token: Option<Secret>,
    /// The credential obtained for this request (an exchanged or OAuth token), ready to inject.
    pub obtained: Option<Arc<Injection>>,
}

/// A request matched to a node.
#[derive(Clone)]
pub struct Matched {
    /// The node.
    pub node: Arc<NodeRoute>,
    /// The raw path under the node's prefix (`""` or starting with `/`), already checked.
    pub rest: String,
    /// The raw query to forward, without the caller's credentials once stripped.
    pub query: Option<String>,
}

/// Log and metric labels, each set at most once by the layer that learns it. Values are configured names only.
#[derive(Default)]
pub struct LogFields {
    /// Node id.
    pub node: OnceLock<Arc<str>>,
    /// Agent id (only once the agent is known to exist in the topology).
    pub agent: OnceLock<Arc<str>>,
    /// Why the request ended as it did, when not a plain success.
    pub reason: OnceLock<&'static str>,
    /// The authorization decision, `allow` or `deny`, once one was made.
    pub decision: OnceLock<&'static str>,
}
