//! `InjectCredential`: put the route's credential on the request — the node's stored key in the provider's
//! style, or the token `ObtainCredential` got (exchanged or OAuth) — plus the headers only the proxy may set
//! (`x-forwarded-for` from the socket, `x-forwarded-proto`, `x-request-id`, and `x-idguard-agent` where the node
//! asks for it). On the inbound gateway there is no credential: the verified caller goes to the agent in
//! `x-idguard-client`, `x-idguard-user`, `x-idguard-scope`, and the caller's token (whose audience is the agent)
//! in `x-idguard-subject-token`. Credentials were prepared as sensitive header values; this is the only place
//! they are exposed.

use http::header::{HeaderName, HeaderValue};

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::middleware::verify_token::SUBJECT_TOKEN_HEADER;
use crate::middleware::{Req, RequestStep};
use crate::routes::CredentialSource;

/// The header carrying the verified agent id to upstreams that ask for it.
pub const AGENT_HEADER: &str = "x-idguard-agent";
/// Inbound gateway: the verified client application.
pub const CLIENT_HEADER: &str = "x-idguard-client";
/// Inbound gateway: the verified user, when the token carries one.
pub const USER_HEADER: &str = "x-idguard-user";
/// Inbound gateway: the token's scopes, space-separated.
pub const SCOPE_HEADER: &str = "x-idguard-scope";

/// Injects the stored credential.
#[derive(Clone, Copy, Debug, Default)]
pub struct InjectCredential;

impl RequestStep for InjectCredential {
    fn apply(&self, req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let (Some(route), Some(identity)) = (ctx.route.as_mut(), &ctx.identity) else {
            return Err(ProxyError::Internal);
        };
        let headers = req.headers_mut();
        match &route.node.credential {
            CredentialSource::Static(Some(injection)) => {
                injection.apply(headers, &mut route.query);
            }
            CredentialSource::Static(None) => return Err(ProxyError::CredentialUnavailable),
            CredentialSource::OAuth(_) | CredentialSource::Exchange(_) => {
                let injection = ctx.obtained.as_ref().ok_or(ProxyError::Internal)?;
                injection.apply(headers, &mut route.query);
            }
            CredentialSource::Caller => {
                let set = |headers: &mut http::HeaderMap, name: &'static str, value: &str| {
                    if let Ok(v) = HeaderValue::from_str(value) {
                        headers.insert(HeaderName::from_static(name), v);
                    }
                };
                set(headers, CLIENT_HEADER, &identity.agent);
                if let Some(user) = &identity.user {
                    set(headers, USER_HEADER, user);
                }
                set(headers, SCOPE_HEADER, &identity.scopes.join(" "));
                if let Some(token) = &ctx.token
                    && let Ok(mut v) = HeaderValue::from_str(token.expose())
                {
                    v.set_sensitive(true);
                    headers.insert(HeaderName::from_static(SUBJECT_TOKEN_HEADER), v);
                }
            }
        }
        if route.node.forward_identity
            && !matches!(route.node.credential, CredentialSource::Caller)
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
