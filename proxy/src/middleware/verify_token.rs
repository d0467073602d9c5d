//! `VerifyAgentToken`: find the caller's token in whichever slot its SDK fills (`Authorization: Bearer`,
//! `x-api-key`, `api-key`, `x-goog-api-key`), refuse ambiguity (two tokens, a token in the query), verify it,
//! and require its agent to exist in the topology and be enabled. A cache hit or a full verification completes
//! synchronously; only an unknown `kid`, which may need a key refetch, takes the boxed slow path.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::HeaderMap;
use idguard_config::identity::Revocations;
use idguard_config::secret::Secret;
use tower::{Layer, Service};

use crate::ctx::Ctx;
use crate::error::{ProxyError, RequestReason, TokenReason};
use crate::metrics::ProxyMetrics;
use crate::middleware::strip::decode_name;
use crate::middleware::{Req, Resp};
use crate::routes::RouteClass;
use crate::verify::{Attempt, Identity, Verifier};

/// The header in which an agent passes a user's token to act on the user's behalf on `/svc/` (and in which the
/// inbound gateway hands the caller's token to the agent).
pub const SUBJECT_TOKEN_HEADER: &str = "x-idguard-subject-token";

/// Header slots a token may arrive in, besides `Authorization: Bearer`.
pub const KEY_SLOTS: &[&str] = &["x-api-key", "api-key", "x-goog-api-key"];
/// Longest token considered at all.
const MAX_TOKEN_LEN: usize = 16 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds [`VerifyAgentToken`].
#[derive(Clone)]
pub struct VerifyAgentTokenLayer {
    verifier: Arc<Verifier>,
    metrics: Arc<ProxyMetrics>,
    revocations: Arc<Revocations>,
}

impl VerifyAgentTokenLayer {
    /// Verifies with `verifier`, refusing idguard-issued tokens listed in `revocations`, counting refusals in
    /// `metrics`. (An unknown agent or client on a replica whose store objects were never loaded becomes 503
    /// where errors become responses: `fresh::while_incomplete`.)
    pub fn new(
        verifier: Arc<Verifier>,
        metrics: Arc<ProxyMetrics>,
        revocations: Arc<Revocations>,
    ) -> Self {
        Self {
            verifier,
            metrics,
            revocations,
        }
    }
}

impl<S> Layer<S> for VerifyAgentTokenLayer {
    type Service = VerifyAgentToken<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifyAgentToken {
            verifier: self.verifier.clone(),
            metrics: self.metrics.clone(),
            revocations: self.revocations.clone(),
            inner,
        }
    }
}

/// Verifies the agent's token.
#[derive(Clone)]
pub struct VerifyAgentToken<S> {
    verifier: Arc<Verifier>,
    metrics: Arc<ProxyMetrics>,
    revocations: Arc<Revocations>,
    inner: S,
}

impl<S> Service<Req> for VerifyAgentToken<S>
where
    S: Service<Req, Response = Resp, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Resp;
    type Error = ProxyError;
    type Future = Either<
        Ready<Result<Resp, ProxyError>>,
        Either<S::Future, BoxFuture<Result<Resp, ProxyError>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let token = match extract_token(req.headers(), req.uri().query()) {
            Ok(t) => t,
            Err(e) => return Either::Left(ready(Err(deny(&self.metrics, &req, e)))),
        };
        match self.verifier.attempt(&token) {
            Attempt::Verified(identity) => {
                match admit(&mut req, identity, token, &self.revocations) {
                    Ok(()) => Either::Right(Either::Left(self.inner.call(req))),
                    Err(e) => Either::Left(ready(Err(deny(&self.metrics, &req, e)))),
                }
            }
            Attempt::Rejected(reason) => Either::Left(ready(Err(deny(
                &self.metrics,
                &req,
                ProxyError::InvalidToken(reason),
            )))),
            Attempt::UnknownKid => {
                let verifier = self.verifier.clone();
                let metrics = self.metrics.clone();
                let revocations = self.revocations.clone();
                let mut inner = self.inner.clone();
                Either::Right(Either::Right(Box::pin(async move {
                    let outcome = match verifier.verify(&token).await {
                        Ok(identity) => admit(&mut req, identity, token, &revocations),
                        Err(reason) => Err(ProxyError::InvalidToken(reason)),
                    };
                    if let Err(e) = outcome {
                        return Err(deny(&metrics, &req, e));
                    }
                    inner.call(req).await
                })))
            }
        }
    }
}

/// Records a refusal (metric and log decision) and hands the error back.
fn deny(metrics: &ProxyMetrics, req: &Req, e: ProxyError) -> ProxyError {
    metrics.decision(false, e.reason());
    if let Some(ctx) = req.extensions().get::<Ctx>() {
        let _ = ctx.log.decision.set("deny");
    }
    e
}

/// Checks the verified caller against the request's snapshot and route, and records it in the context: an agent
/// with the proxy audience on outbound routes, a client application with the agent's audience on the inbound
/// gateway. idguard-issued tokens must also not be revoked, and the client credential that obtained them must
/// still exist.
fn admit(
    req: &mut Req,
    identity: Arc<Identity>,
    token: String,
    revocations: &Revocations,
) -> Result<(), ProxyError> {
    let class = req
        .extensions()
        .get::<Ctx>()
        .and_then(|ctx| ctx.route.as_ref())
        .map(|r| r.node.class)
        .ok_or(ProxyError::Internal)?;
    // Only `/svc/` reads a delegated user's token; other routes never look at (or pay for) the header.
    let subject = match class {
        RouteClass::Service => match req.headers().get(SUBJECT_TOKEN_HEADER) {
            None => None,
            Some(v) => {
                let t = v
                    .to_str()
                    .ok()
                    .filter(|t| is_token_shaped(t))
                    .ok_or(ProxyError::InvalidToken(TokenReason::Malformed))?;
                Some(Secret::new(t.to_owned()))
            }
        },
        RouteClass::Llm | RouteClass::External | RouteClass::Inbound => None,
    };
    let ctx = req
        .extensions_mut()
        .get_mut::<Ctx>()
        .ok_or(ProxyError::Internal)?;
    let snapshot = &ctx.routes.snapshot;
    if identity.local {
        if identity
            .jti_digest
            .is_some_and(|d| revocations.is_revoked(&d))
        {
            return Err(ProxyError::InvalidToken(TokenReason::Revoked));
        }
        if let Some(cred) = &identity.credential
            && !snapshot.credential_current(&identity.agent, cred)
        {
            // A disabled principal's credentials are not current either; the log says why it really failed.
            return Err(ProxyError::InvalidToken(
                disabled(snapshot, &identity.agent).unwrap_or(TokenReason::CredentialRevoked),
            ));
        }
    }
    let id = if class == RouteClass::Inbound {
        let expected = ctx.route.as_ref().and_then(|r| r.node.audience.as_deref());
        if !identity.local || expected != Some(&*identity.audience) {
            return Err(ProxyError::InvalidToken(TokenReason::BadAudience));
        }
        let Some((id, client)) = snapshot.clients.get_key_value(&*identity.agent) else {
            return Err(ProxyError::InvalidToken(TokenReason::UnknownClient));
        };
        if !client.enabled {
            return Err(ProxyError::InvalidToken(TokenReason::ClientDisabled));
        }
        id.clone()
    } else {
        if !identity.for_proxy || (identity.local && identity.user.is_some()) {
            return Err(ProxyError::InvalidToken(TokenReason::BadAudience));
        }
        let Some((id, agent)) = snapshot.agents.get_key_value(&*identity.agent) else {
            return Err(ProxyError::InvalidToken(TokenReason::UnknownAgent));
        };
        if !agent.enabled {
            return Err(ProxyError::InvalidToken(TokenReason::AgentDisabled));
        }
        id.clone()
    };
    let _ = ctx.log.agent.set(id);
    // Only the routes that pass the token on (as an exchange subject, or to the agent it is for) keep it.
    if matches!(class, RouteClass::Service | RouteClass::Inbound) {
        ctx.token = Some(Secret::new(token));
    }
    ctx.subject_token = subject;
    ctx.identity = Some(identity);
    Ok(())
}

/// [`TokenReason::AgentDisabled`] or [`TokenReason::ClientDisabled`] when `id` names a disabled agent or client.
fn disabled(snapshot: &idguard_config::Snapshot, id: &str) -> Option<TokenReason> {
    if snapshot.agents.get(id).is_some_and(|a| !a.enabled) {
        Some(TokenReason::AgentDisabled)
    } else if snapshot.clients.get(id).is_some_and(|c| !c.enabled) {
        Some(TokenReason::ClientDisabled)
    } else {
        None
    }
}

fn is_token_shaped(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Finds exactly one token. Two `Authorization` headers, different tokens in different slots, or a token in
/// the query string are refused as ambiguous (RFC 6750 §2: one method per request).
///
/// # Errors
/// [`ProxyError::MissingToken`], [`ProxyError::InvalidToken`] for a malformed credential, or
/// [`ProxyError::InvalidRequest`].
pub fn extract_token(headers: &HeaderMap, query: Option<&str>) -> Result<String, ProxyError> {
    if let Some(q) = query
        && q.split('&').any(|pair| {
            decode_name(pair.split('=').next().unwrap_or(pair)).eq_ignore_ascii_case("access_token")
        })
    {
        return Err(ProxyError::InvalidRequest(RequestReason::TokenInQuery));
    }
    let mut found: Vec<&str> = Vec::with_capacity(1);
    let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(ProxyError::InvalidRequest(RequestReason::AmbiguousToken));
        }
        let text = value
            .to_str()
            .map_err(|_| ProxyError::InvalidToken(TokenReason::Malformed))?;
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ProxyError::MissingToken);
        }
        let token = rest.trim();
        if token.is_empty() {
            return Err(ProxyError::MissingToken);
        }
        found.push(token);
    }
    for slot in KEY_SLOTS {
        let mut values = headers.get_all(*slot).iter();
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(ProxyError::InvalidRequest(RequestReason::AmbiguousToken));
            }
            let token = value
                .to_str()
                .map_err(|_| ProxyError::InvalidToken(TokenReason::Malformed))?
                .trim();
            if !token.is_empty() {
                found.push(token);
            }
        }
    }
    // The same token in two slots is tolerated (some SDKs fill both); two different ones are not.
    if found.windows(2).any(|w| w[0] != w[1]) {
        return Err(ProxyError::InvalidRequest(RequestReason::AmbiguousToken));
    }
    let token = found.first().copied().ok_or(ProxyError::MissingToken)?;
    if !is_token_shaped(token) {
        return Err(ProxyError::InvalidToken(TokenReason::Malformed));
    }
    Ok(token.to_owned())
}
