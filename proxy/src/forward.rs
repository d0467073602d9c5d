//! `Forward`: the innermost service. Builds the upstream URI from the node's scheme, authority and base path
//! (never from anything the caller sent but the checked path remainder and query), waits for the body's first
//! bytes, sends the request through the pooled client with the body streaming (a body that fails mid-stream is
//! answered with its own fault and the upstream request abandoned), and cleans the response: hop-by-hop headers
//! and `Set-Cookie` out, and an upstream 401/403 body replaced, because providers echo (masked) keys in them.
//! Redirects are returned to the caller, never followed. The response body streams back untouched, so SSE events
//! flow as the upstream sends them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{HeaderMap, HeaderName};
use http::uri::PathAndQuery;
use http::{Extensions, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use tower::Service;

use crate::body::BodyFault;
use crate::ctx::Ctx;
use crate::error::{ProxyError, RequestReason, json_error};
use crate::metrics::BodyFailure;
use crate::middleware::{Req, Resp};
use crate::path;
use crate::state::Shared;

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
            let result =
                tokio::time::timeout(timeout, shared.client.http.request(upstream_req)).await;
            let resp = match result {
                Err(_) => return Err(ProxyError::UpstreamTimeout),
                Ok(Err(err)) => {
                    // The request body failed mid-stream; the client's error, not the upstream's.
                    if let Some(fault) = ctx.body_fault.get() {
                        return Err(body_error(&shared, fault));
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
            let (mut parts, body) = resp.into_parts();
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
            Ok(Response::from_parts(parts, Either::Left(body)))
        })
    }
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
