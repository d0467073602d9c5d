//! `Forward`: the innermost service. Builds the upstream URI from the node's scheme, authority and base path
//! (never from anything the caller sent but the checked path remainder and query), waits for the body's first
//! bytes, sends the request through the pooled client with the body streaming (a body that fails mid-stream is
//! answered with its own fault and the upstream request abandoned), and cleans the response: hop-by-hop headers
//! and `Set-Cookie` out, and an upstream 401/403 body replaced, because providers echo (masked) keys in them.
//! Redirects are returned to the caller, never followed.
//!
//! On a route that injects a credential (a stored key, an OAuth or exchanged token) the upstream is asked for
//! `Accept-Encoding: identity`; an answer that is encoded anyway is refused (502), since it cannot be searched.
//! Every other answer has each header carrying a form of the credential dropped and its body streamed through
//! [`UpstreamBody`], which replaces every form with a same-length mask without holding back more than a possible
//! match (see [`crate::echo`]); SSE events still flow as the upstream sends them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use http::uri::PathAndQuery;
use http::{Extensions, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::Either;
use tower::Service;

use crate::body::BodyFault;
use crate::body::UpstreamBody;
use crate::ctx::Ctx;
use crate::echo::{EchoReport, Needles};
use crate::error::{ProxyError, RequestReason, json_error};
use crate::metrics::BodyFailure;
use crate::middleware::{Req, Resp};
use crate::path;
use crate::routes::CredentialSource;
use crate::state::Shared;
use crate::upstream::blocked;

/// Response headers never passed back.
const STRIPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "set-cookie",
];

/// Sends the request upstream.
#[derive(Clone)]
pub struct Forward {
    shared: Arc<Shared>,
}

impl Forward {
    /// Forwards through `shared`'s client.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Service<Req> for Forward {
    type Response = Resp;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, ProxyError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let (mut parts, mut body) = req.into_parts();
            let ctx = parts
                .extensions
                .remove::<Ctx>()
                .ok_or(ProxyError::Internal)?;
            let route = ctx.route.as_ref().ok_or(ProxyError::Internal)?;
            let node = &route.node;
            let path = path::join(&node.base_path, &route.rest)
                .map_err(|()| ProxyError::InvalidRequest(RequestReason::PathEscape))?;
            let pq = match &route.query {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let pq = PathAndQuery::try_from(pq)
                .map_err(|_| ProxyError::InvalidRequest(RequestReason::PathEscape))?;
            parts.uri = Uri::builder()
                .scheme(node.scheme.clone())
                .authority(node.authority.clone())
                .path_and_query(pq)
                .build()
                .map_err(|_| ProxyError::Internal)?;
            // The client picks HTTP/1.1 or HTTP/2 per connection by ALPN; the caller's version is not ours to pin.
            parts.version = Version::HTTP_11;
            parts.extensions = Extensions::new();
            let echoes = echoes(&ctx)?;
            if echoes.is_some() {
                // A compressed answer could not be searched for an echoed credential.
                parts
                    .headers
                    .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            }
            // The first body bytes are awaited before any upstream connection is made: a body that is malformed,
            // too large, carries a token or never starts ends here, and the upstream never sees a request.
            if let Err(fault) = body.prime().await {
                return Err(body_error(&shared, fault));
            }
            let upstream_req = http::Request::from_parts(parts, body);

            let timeout = ctx
                .routes
                .snapshot
                .settings
                .upstream
                .response_header_timeout;
            let sent = Instant::now();
            let client = shared.client.forwarding(node.policy);
            let result = tokio::time::timeout(timeout, client.request(upstream_req)).await;
            let resp = match result {
                Err(_) => return Err(ProxyError::UpstreamTimeout),
                Ok(Err(err)) => {
                    // The request body failed mid-stream; the client's error, not the upstream's.
                    if let Some(fault) = ctx.body_fault.get() {
                        return Err(body_error(&shared, fault));
                    }
                    if let Some(b) = blocked(&err) {
                        tracing::warn!(
                            request_id = ctx.request_id.to_str().unwrap_or_default(),
                            node = %node.id,
                            reason = "upstream_ip_blocked",
                            address = %b.addr,
                            "the upstream's address is not one this route may reach; not connected"
                        );
                        return Err(ProxyError::UpstreamIpBlocked);
                    }
                    tracing::warn!(
                        request_id = ctx.request_id.to_str().unwrap_or_default(),
                        node = %node.id,
                        reason = "upstream_unreachable",
                        error = %err,
                        "upstream request failed"
                    );
                    return Err(ProxyError::UpstreamUnreachable);
                }
                Ok(Ok(resp)) => resp,
            };
            shared
                .metrics
                .upstream_ttfb
                .with_label_values(&[&*node.id])
                .observe(sent.elapsed().as_secs_f64());
            respond(&ctx, &shared, resp, echoes)
        })
    }
}

/// The caller's response from the upstream's: headers cleaned, a 401/403 body replaced, and — when the route
/// injects a credential (`echoes`) — a compressed answer refused, echoing headers dropped and the body redacted.
fn respond(
    ctx: &Ctx,
    shared: &Shared,
    resp: Response<hyper::body::Incoming>,
    echoes: Option<Arc<Needles>>,
) -> Result<Resp, ProxyError> {
    let node = &ctx.route.as_ref().ok_or(ProxyError::Internal)?.node;
    let (mut parts, body) = resp.into_parts();
    let encoded = is_encoded(&parts.headers);
    clean_response_headers(&mut parts.headers);
    if parts.status == StatusCode::UNAUTHORIZED || parts.status == StatusCode::FORBIDDEN {
        let _ = ctx.log.reason.set("upstream_rejected_credential");
        let mut replaced = json_error(
            parts.status,
            "upstream_auth_error",
            "upstream_rejected_credential",
            "The upstream refused the stored credential for this route. Ask the operator to check it.",
            &ctx.request_id,
        );
        replaced
            .headers_mut()
            .remove(http::header::WWW_AUTHENTICATE);
        return Ok(replaced);
    }
    let Some(needles) = echoes else {
        return Ok(Response::from_parts(
            parts,
            Either::Left(UpstreamBody::plain(body)),
        ));
    };
    // An empty body (HEAD, 204, 304) has nothing to search, whatever its coding says.
    if encoded && !body.is_end_stream() {
        return Err(ProxyError::UpstreamEncoded);
    }
    let mut report = Some(EchoReport {
        request_id: ctx.request_id.clone(),
        node: node.id.clone(),
        metrics: shared.metrics.clone(),
    });
    if needles.drop_echoing_headers(&mut parts.headers)
        && let Some(report) = report.take()
    {
        report.report("header");
    }
    let body = UpstreamBody::redacting(body, needles, report);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// The forms of the credential this request's route injects, if it injects one. A route that should have an
/// obtained token but has none fails rather than going unguarded (never expected: injection failed first).
fn echoes(ctx: &Ctx) -> Result<Option<Arc<Needles>>, ProxyError> {
    let route = ctx.route.as_ref().ok_or(ProxyError::Internal)?;
    Ok(match &route.node.credential {
        CredentialSource::Static(Some(injection)) => Some(injection.echoes().clone()),
        CredentialSource::OAuth(_) | CredentialSource::Exchange(_) => {
            let obtained = ctx.obtained.as_ref().ok_or(ProxyError::Internal)?;
            Some(obtained.echoes().clone())
        }
        CredentialSource::Static(None) | CredentialSource::Caller => None,
    })
}

/// Whether the body is in a content or transfer coding other than `identity` (and `chunked`, which hyper undoes).
fn is_encoded(headers: &HeaderMap) -> bool {
    let coded = |name, plain: &[&str]| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .any(|c| !c.is_empty() && !plain.iter().any(|p| c.eq_ignore_ascii_case(p.as_bytes())))
    };
    coded(CONTENT_ENCODING, &["identity"]) || coded(TRANSFER_ENCODING, &["identity", "chunked"])
}

/// The answer to a request whose body stopped with `fault`; a malformed or stalled body is also counted.
fn body_error(shared: &Shared, fault: BodyFault) -> ProxyError {
    let (error, counted) = match fault {
        BodyFault::TooLarge => (ProxyError::BodyTooLarge, None),
        BodyFault::TokenInBody => (ProxyError::InvalidRequest(RequestReason::TokenInBody), None),
        BodyFault::Malformed => (
            ProxyError::InvalidRequest(RequestReason::MalformedBody),
            Some(BodyFailure::Malformed),
        ),
        BodyFault::IdleTimeout => (ProxyError::BodyTimeout, Some(BodyFailure::IdleTimeout)),
    };
    if let Some(failure) = counted {
        shared.metrics.body_failure(failure);
    }
    error
}

fn clean_response_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in STRIPPED_RESPONSE_HEADERS {
        headers.remove(*name);
    }
}
