//! Credentials obtained at run time rather than stored: tokens exchanged for enterprise services (RFC 8693) and
//! OAuth client-credentials tokens of external nodes.
//!
//! [`TokenCache`] keeps each one, ready to inject, until 30 s before it expires, under a key that is a hash (of
//! the agent, the subject token's digest, the service and the scopes — never a token itself). One fetch is in
//! flight per key: concurrent requests that miss wait for the same answer. [`HttpExchanger`] performs an
//! exchange at an outside authorization server.

use std::future::Future;
use std::sync::Arc;

use dashmap::DashMap;
use idguard_config::Clock;
use idguard_config::identity::{
    ACCESS_TOKEN_TYPE, BoxFuture, ExchangeError, ExchangeRequest, ExchangedToken,
    TOKEN_EXCHANGE_GRANT, TokenExchanger,
};
use idguard_config::secret::Secret;
use tokio::sync::OnceCell;

use crate::error::ProxyError;
use crate::routes::Injection;
use crate::upstream::{AddressPolicy, TokenAnswer, TokenFailure, UpstreamClient};
pub(crate) use crate::verify::sha256;

/// How long before `exp` a cached token stops being served.
pub const REFRESH_MARGIN: u64 = 30;
/// Most cached tokens.
const MAX_ENTRIES: usize = 100_000;

/// A token ready to inject, and when to stop using it.
#[derive(Clone)]
pub struct Obtained {
    /// The prepared header or query pair.
    pub injection: Arc<Injection>,
    /// Unix seconds after which a new token is fetched (`exp` − [`REFRESH_MARGIN`]).
    pub refresh_at: u64,
}

type Slot = OnceCell<Result<Obtained, ProxyError>>;

/// Obtained tokens by hashed key, with single flight.
pub struct TokenCache {
    slots: DashMap<[u8; 32], Arc<Slot>>,
    clock: Clock,
}

impl TokenCache {
    /// An empty cache judging freshness by `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            slots: DashMap::new(),
            clock,
        }
    }

    /// Forgets every token (a new topology is in force; entries of the old one could never be hit again).
    pub fn clear(&self) {
        self.slots.clear();
    }

    /// The cached token for `key` if it is still fresh. Never waits.
    pub fn fresh(&self, key: &[u8; 32]) -> Option<Arc<Injection>> {
        let slot = self.slots.get(key)?;
        match slot.get() {
            Some(Ok(o)) if self.clock.now() < o.refresh_at => Some(o.injection.clone()),
            _ => None,
        }
    }

    /// The token for `key`: the fresh cached one, the one another request is already fetching, or the result of
    /// `fetch`. A failed or stale slot is replaced, so an error is shared by the requests that waited for it
    /// but never cached beyond them.
    ///
    /// # Errors
    /// The fetch's [`ProxyError`].
    pub async fn obtain<F, Fut>(
        &self,
        key: [u8; 32],
        fetch: F,
    ) -> Result<Arc<Injection>, ProxyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Obtained, ProxyError>>,
    {
        let slot = {
            if self.slots.len() >= MAX_ENTRIES {
                let now = self.clock.now();
                self.slots.retain(|_, s| match s.get() {
                    None => true,
                    Some(Ok(o)) => o.refresh_at > now,
                    Some(Err(_)) => false,
                });
            }
            let mut entry = self.slots.entry(key).or_default();
            let done_and_unusable = match entry.get() {
                Some(Ok(o)) => self.clock.now() >= o.refresh_at,
                Some(Err(_)) => true,
                None => false,
            };
            if done_and_unusable {
                *entry = Arc::new(Slot::new());
            }
            entry.clone()
            // The map guard is dropped here, before any await.
        };
        slot.get_or_init(fetch).await.clone().map(|o| o.injection)
    }
}

/// The cache key of an exchanged token: agent, subject, service and scopes, hashed, within one topology
/// `generation` — a token exchanged under an older topology (a user who has since lost the agent's permission,
/// say) is never served from the cache.
pub fn exchange_key(
    agent: &str,
    subject_digest: &[u8; 32],
    service: &str,
    scope: &str,
    generation: u64,
) -> [u8; 32] {
    let mut text = Vec::with_capacity(agent.len() + service.len() + scope.len() + 56);
    text.extend_from_slice(b"exchange\n");
    text.extend_from_slice(&generation.to_be_bytes());
    text.extend_from_slice(agent.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(subject_digest);
    text.push(b'\n');
    text.extend_from_slice(service.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(scope.as_bytes());
    sha256(&text)
}

/// The cache key of an external node's OAuth token (its client settings may change with the topology).
pub fn oauth_key(node: &str, generation: u64) -> [u8; 32] {
    sha256(format!("oauth\n{generation}\n{node}").as_bytes())
}

/// Turns an issued token into what the cache keeps: `Authorization: Bearer` (or the node's style), refreshed
/// [`REFRESH_MARGIN`] seconds before `expires_at`.
///
/// # Errors
/// [`ProxyError::TokenEndpointUnavailable`] when the token cannot be carried in a header.
pub fn prepared(
    style: &idguard_config::snapshot::InjectStyle,
    token: &Secret,
    expires_at: u64,
) -> Result<Obtained, ProxyError> {
    let injection = crate::routes::prepare(style, token.expose())
        .ok_or(ProxyError::TokenEndpointUnavailable)?;
    Ok(Obtained {
        injection: Arc::new(injection),
        refresh_at: expires_at.saturating_sub(REFRESH_MARGIN),
    })
}

/// RFC 8693 at an outside authorization server, through the upstream client.
pub struct HttpExchanger {
    client: UpstreamClient,
    token_url: http::Uri,
    basic: Option<(String, Secret)>,
    policy: AddressPolicy,
    clock: Clock,
}

impl HttpExchanger {
    /// Exchanges at `token_url`, reached under `policy`, authenticating with `basic` when given; `expires_in`
    /// is counted from `clock`.
    pub fn new(
        client: UpstreamClient,
        token_url: http::Uri,
        basic: Option<(String, Secret)>,
        policy: AddressPolicy,
        clock: Clock,
    ) -> Self {
        Self {
            client,
            token_url,
            basic,
            policy,
            clock,
        }
    }
}

impl TokenExchanger for HttpExchanger {
    fn exchange(
        &self,
        request: ExchangeRequest,
    ) -> BoxFuture<Result<ExchangedToken, ExchangeError>> {
        let client = self.client.clone();
        let url = self.token_url.clone();
        let basic = self.basic.clone();
        let clock = self.clock.clone();
        let policy = self.policy;
        // The form is built before the future so no non-Send serializer lives across an await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", TOKEN_EXCHANGE_GRANT)
                .append_pair("subject_token", request.subject_token.expose())
                .append_pair("subject_token_type", ACCESS_TOKEN_TYPE)
                .append_pair("audience", &request.audience)
                .append_pair("requested_token_type", ACCESS_TOKEN_TYPE);
            if let Some(actor) = &request.actor_token {
                form.append_pair("actor_token", actor.expose())
                    .append_pair("actor_token_type", ACCESS_TOKEN_TYPE);
            }
            if let Some(scope) = &request.scope {
                form.append_pair("scope", scope);
            }
            zeroize::Zeroizing::new(form.finish())
        };
        Box::pin(async move {
            let basic_ref = basic.as_ref().map(|(id, s)| (id.as_str(), s.expose()));
            match client.token_request(&url, body, basic_ref, policy).await {
                Ok(TokenAnswer::Issued {
                    access_token,
                    expires_in,
                }) => Ok(ExchangedToken {
                    access_token,
                    expires_at: clock.now() + expires_in.unwrap_or(60),
                }),
                Ok(TokenAnswer::Refused(code)) => Err(ExchangeError::Refused(code)),
                Err(TokenFailure::Blocked(b)) => Err(ExchangeError::Blocked(b.addr.to_string())),
                Err(TokenFailure::Failed(why)) => Err(ExchangeError::Unavailable(why)),
            }
        })
    }
}
