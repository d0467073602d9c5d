//! `ObtainCredential`: for routes whose credential is a token obtained at run time — an exchanged token on
//! `/svc/`, an OAuth client-credentials token on an external node — find it in the cache or fetch it (one
//! fetch per key at a time), and leave it in the context for `InjectCredential`. Stored keys and the inbound
//! gateway pass straight through. A cache hit completes without awaiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use idguard_config::identity::{ExchangeError, ExchangeRequest, TokenExchanger};
use idguard_config::snapshot::InjectStyle;
use tower::{Layer, Service};

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::middleware::{Req, Resp};
use crate::routes::{CredentialSource, Injection};
use crate::state::Shared;
use crate::tokens::{self, HttpExchanger, Obtained, exchange_key, oauth_key, prepared};
use crate::upstream::{AddressPolicy, TokenAnswer, TokenFailure};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds [`ObtainCredential`].
#[derive(Clone)]
pub struct ObtainCredentialLayer {
    shared: Arc<Shared>,
}

impl ObtainCredentialLayer {
    /// Obtains through `shared`'s cache, client and exchanger.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<S> Layer<S> for ObtainCredentialLayer {
    type Service = ObtainCredential<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ObtainCredential {
            shared: self.shared.clone(),
            inner,
        }
    }
}

/// Obtains run-time credentials.
#[derive(Clone)]
pub struct ObtainCredential<S> {
    shared: Arc<Shared>,
    inner: S,
}

/// What a miss must fetch.
enum Fetch {
    Exchange {
        exchanger: Arc<dyn TokenExchanger>,
        request: ExchangeRequest,
    },
    OAuth {
        url: http::Uri,
        client_id: String,
        secret: idguard_config::Secret,
        scope: String,
        style: InjectStyle,
        policy: AddressPolicy,
    },
}

impl<S> Service<Req> for ObtainCredential<S>
where
    S: Service<Req, Response = Resp, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Resp;
    type Error = ProxyError;
    type Future = Either<S::Future, BoxFuture<Result<Resp, ProxyError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let plan = match plan(&self.shared, &mut req) {
            Ok(None) => return Either::Left(self.inner.call(req)),
            Ok(Some(plan)) => plan,
            Err(e) => return Either::Right(Box::pin(std::future::ready(Err(e)))),
        };
        let (key, fetch) = plan;
        if let Some(hit) = self.shared.tokens.fresh(&key) {
            set_obtained(&mut req, hit);
            return Either::Left(self.inner.call(req));
        }
        let shared = self.shared.clone();
        let mut inner = self.inner.clone();
        Either::Right(Box::pin(async move {
            let injection = shared
                .tokens
                .obtain(key, || run(shared.clone(), fetch))
                .await?;
            set_obtained(&mut req, injection);
            inner.call(req).await
        }))
    }
}

fn set_obtained(req: &mut Req, injection: Arc<Injection>) {
    if let Some(ctx) = req.extensions_mut().get_mut::<Ctx>() {
        ctx.obtained = Some(injection);
    }
}

/// The cache key and what to fetch on a miss, or `None` when the route injects a stored key.
fn plan(shared: &Shared, req: &mut Req) -> Result<Option<([u8; 32], Fetch)>, ProxyError> {
    let ctx = req.extensions().get::<Ctx>().ok_or(ProxyError::Internal)?;
    let route = ctx.route.as_ref().ok_or(ProxyError::Internal)?;
    match &route.node.credential {
        CredentialSource::Static(_) | CredentialSource::Caller => Ok(None),
        CredentialSource::OAuth(src) => {
            let secret = src
                .secret
                .clone()
                .ok_or(ProxyError::CredentialUnavailable)?;
            Ok(Some((
                oauth_key(&route.node.id, ctx.routes.snapshot.generation),
                Fetch::OAuth {
                    url: src.token_url.clone(),
                    client_id: src.client_id.clone(),
                    secret,
                    scope: src.scope.clone(),
                    style: src.style.clone(),
                    policy: src.policy,
                },
            )))
        }
        CredentialSource::Exchange(src) => {
            let identity = ctx.identity.as_ref().ok_or(ProxyError::Internal)?;
            let agent_token = ctx.token.clone().ok_or(ProxyError::Internal)?;
            // With delegation the user's token is the subject and the agent's the actor.
            let (subject_digest, request) = match &ctx.subject_token {
                Some(user_token) => (
                    tokens::sha256(user_token.expose().as_bytes()),
                    ExchangeRequest {
                        subject_token: user_token.clone(),
                        actor_token: Some(agent_token),
                        audience: src.audience.clone(),
                        scope: None,
                    },
                ),
                None => (
                    identity.token_digest,
                    ExchangeRequest {
                        subject_token: agent_token,
                        actor_token: None,
                        audience: src.audience.clone(),
                        scope: None,
                    },
                ),
            };
            let exchanger: Arc<dyn TokenExchanger> = match &src.external {
                Some(ext) => Arc::new(HttpExchanger::new(
                    shared.client.clone(),
                    ext.token_url.clone(),
                    ext.client.clone(),
                    ext.policy,
                    shared.clock.clone(),
                )),
                None => shared
                    .exchanger
                    .clone()
                    .ok_or(ProxyError::CredentialUnavailable)?,
            };
            let key = exchange_key(
                &identity.agent,
                &subject_digest,
                &route.node.id,
                "",
                ctx.routes.snapshot.generation,
            );
            Ok(Some((key, Fetch::Exchange { exchanger, request })))
        }
    }
}

async fn run(shared: Arc<Shared>, fetch: Fetch) -> Result<Obtained, ProxyError> {
    match fetch {
        Fetch::Exchange { exchanger, request } => match exchanger.exchange(request).await {
            Ok(token) => prepared(&InjectStyle::Bearer, &token.access_token, token.expires_at),
            Err(ExchangeError::Refused(code)) => {
                tracing::warn!(reason = "exchange_refused", code = %code, "token exchange refused");
                Err(ProxyError::ExchangeRefused)
            }
            Err(ExchangeError::Unavailable(why)) => {
                tracing::warn!(
                    reason = "token_endpoint_unavailable",
                    "token exchange failed: {why}"
                );
                Err(ProxyError::TokenEndpointUnavailable)
            }
            Err(ExchangeError::Blocked(address)) => {
                tracing::warn!(
                    reason = "upstream_ip_blocked",
                    address = %address,
                    "the exchange endpoint's address is not one this route may reach; not connected"
                );
                Err(ProxyError::UpstreamIpBlocked)
            }
        },
        Fetch::OAuth {
            url,
            client_id,
            secret,
            scope,
            style,
            policy,
        } => {
            let form = {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "client_credentials");
                if !scope.is_empty() {
                    form.append_pair("scope", &scope);
                }
                zeroize::Zeroizing::new(form.finish())
            };
            match shared
                .client
                .token_request(&url, form, Some((&client_id, secret.expose())), policy)
                .await
            {
                Ok(TokenAnswer::Issued {
                    access_token,
                    expires_in,
                }) => {
                    // Without `expires_in`, assume a short life rather than caching forever.
                    let ttl = expires_in.unwrap_or(300);
                    prepared(&style, &access_token, shared.clock.now() + ttl)
                }
                Ok(TokenAnswer::Refused(code)) => {
                    tracing::warn!(reason = "oauth_refused", code = %code, "the provider refused the client credentials");
                    Err(ProxyError::CredentialUnavailable)
                }
                Err(TokenFailure::Blocked(b)) => {
                    tracing::warn!(
                        reason = "upstream_ip_blocked",
                        address = %b.addr,
                        "the OAuth token endpoint's address is not one this route may reach; not connected"
                    );
                    Err(ProxyError::UpstreamIpBlocked)
                }
                Err(TokenFailure::Failed(why)) => {
                    tracing::warn!(
                        reason = "token_endpoint_unavailable",
                        "OAuth token request failed: {why}"
                    );
                    Err(ProxyError::TokenEndpointUnavailable)
                }
            }
        }
    }
}
