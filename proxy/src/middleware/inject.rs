//! `InjectCredential`: put the node's stored credential on the request in the provider's style, plus the
//! headers only the proxy may set (`x-forwarded-for` from the socket, `x-forwarded-proto`, `x-request-id`, and
//! `x-idguard-agent` where the node asks for it). The credential was prepared once per snapshot as a sensitive
//! header value; this is the only place it is exposed.

use http::header::{HeaderName, HeaderValue};

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::middleware::{Req, RequestStep};

/// The header carrying the verified agent id to upstreams that ask for it.
pub const AGENT_HEADER: &str = "x-idguard-agent";

/// Injects the stored credential.
#[derive(Clone, Copy, Debug, Default)]
pub struct InjectCredential;

impl RequestStep for InjectCredential {
    fn apply(&self, req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let (Some(route), Some(identity)) = (ctx.route.as_mut(), &ctx.identity) else {
            return Err(ProxyError::Internal);
        };
        let headers = req.headers_mut();
        let Some(injection) = &route.node.inject else {
            return Err(ProxyError::CredentialUnavailable);
        };
        injection.apply(headers, &mut route.query);
        if route.node.forward_identity
            && let Ok(v) = HeaderValue::from_str(&identity.agent)
        {
            headers.insert(HeaderName::from_static(AGENT_HEADER), v);
        }
        if let Ok(v) = HeaderValue::from_str(&ctx.peer.ip().to_string()) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(if ctx.tls { "https" } else { "http" }),
        );
        headers.insert(
            HeaderName::from_static("x-request-id"),
            ctx.request_id.clone(),
        );
        Ok(())
    }
}
