//! idguard's identity service: an OAuth 2.0 authorization server for agents and client applications, served
//! on the public listener next to the proxy and reading the same snapshot. It depends only on `idguard-config`:
//! its shared state goes through [`idguard_config::store::IdentityStore`], the client-secret hash format comes
//! from [`idguard_config::hashes`], and the binary hands its keys, revocations, exchange and routes to the proxy.
//!
//! # Layout
//! - [`endpoints`]: the axum routes: `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect`,
//!   `/oauth2/authorize` (sign-in page), discovery and `/.well-known/jwks.json`.
//! - [`client_auth`]: `client_secret_basic`, `client_secret_post`, `private_key_jwt`; the failure limiter.
//! - [`grants`]: what each grant issues: `client_credentials`, `authorization_code` (PKCE), token exchange
//!   (RFC 8693), and the in-process [`idguard_config::identity::TokenExchanger`].
//! - [`login`]: the server-rendered sign-in page for directory users (argon2id passwords) and its codes.
//! - [`signing`]: the rotating ES256 signing keys and the JWKS.
//! - [`error`]: [`error::OAuthError`] and its one mapping to HTTP.

pub mod client_auth;
pub mod endpoints;
pub mod error;
pub mod grants;
pub mod login;
pub mod signing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::Clock;
use idguard_config::defaults::ACCESS_TOKEN_TYP;
use idguard_config::hashes::KeyedHasher;
use idguard_config::identity::{LocalKeys, Revocations, jti_digest};
use idguard_config::snapshot::IdentitySettings;
use idguard_config::store::IdentityStore;
use idguard_config::{Readiness, Snapshot, SnapshotRx};
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use self::client_auth::Limiter;
use self::error::OAuthError;
use self::signing::SigningKeys;

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct IdentityService {
    inner: Arc<Inner>,
}

/// Starting the identity service failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The system gave no randomness.
    #[error("no randomness available")]
    Randomness,
    /// Its metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// `idguard_identity_requests_total{endpoint, outcome}` and `idguard_identity_tokens_issued_total{grant}`. Label
/// values are fixed names and RFC 6749 error codes only.
struct Metrics {
    requests: prometheus::IntCounterVec,
    issued: prometheus::IntCounterVec,
}

impl Metrics {
    fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "idguard_identity_requests_total",
                "Requests to the identity service by endpoint and outcome (ok or the OAuth error code).",
            ),
            &["endpoint", "outcome"],
        )?;
        let issued = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "idguard_identity_tokens_issued_total",
                "Access tokens issued, by grant type.",
            ),
            &["grant"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(issued.clone()))?;
        Ok(Self { requests, issued })
    }
}

struct Inner {
    metrics: Metrics,
    snapshots: SnapshotRx,
    store: Arc<dyn IdentityStore>,
    /// Set once the shared seed has been read (at start, or as soon as the store answers).
    keys: std::sync::OnceLock<SigningKeys>,
    hasher: KeyedHasher,
    clock: Clock,
    dummy_hash: [u8; 32],
    limiter: Limiter,
    /// When this replica last wrote each client secret's use to the store.
    secret_use: client_auth::secret_use::Throttle,
    revocations: Arc<Revocations>,
    jwks: watch::Sender<Arc<JwkSet>>,
    /// Whether the topology may be trusted: past `redis_max_staleness_ms`, or before the store's objects were
    /// ever loaded, the service answers 503 instead of judging from what it has.
    readiness: Arc<Readiness>,
    /// The admin console's exact redirect URI (set once by the binary, which knows the admin listener's address);
    /// unset, the built-in console client accepts no sign-in.
    console_redirect: std::sync::OnceLock<String>,
}

/// The claims of every token the service issues (RFC 9068), plus `act` for exchanged tokens and `idg_cred`, the
/// client credential that obtained it (removing that credential ends the token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The agent, client application or user the token speaks for.
    pub sub: String,
    /// One audience.
    pub aud: String,
    /// The OAuth client that obtained it.
    pub client_id: String,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Issued at.
    pub iat: u64,
    /// Expires at.
    pub exp: u64,
    /// Unique id.
    pub jti: String,
    /// The acting party (RFC 8693 §4.1), on exchanged tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Who may act for the subject (RFC 8693 §4.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<Actor>,
    /// `secret:<id>` or `key:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idg_cred: Option<String>,
}

/// An `act` (or `may_act`) claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actor.
    pub sub: String,
    /// The actor before it, when the chain is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain holds.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// A parsed `application/x-www-form-urlencoded` body: each parameter at most once (RFC 6749 §3.1). It holds
/// secrets (`client_secret`, `password`, tokens), so it prints its parameter names only.
#[derive(Default)]
pub struct Form(HashMap<String, String>);

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Form")
            .field("parameters", &names)
            .finish_non_exhaustive()
    }
}

impl Form {
    /// Parses `body`, refusing repeated parameters.
    ///
    /// # Errors
    /// [`OAuthError::InvalidRequest`].
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::InvalidRequest(
                    "A parameter was sent more than once.",
                ));
            }
        }
        Ok(Self(map))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

// === impl IdentityService ===

impl IdentityService {
    /// The service over the snapshots in `snapshots` and the shared `store` (replay records, codes, the signing
    /// seed). `hasher` holds the fingerprint key client-secret hashes are made under (see
    /// [`idguard_config::hashes`]).
    ///
    /// When the store cannot be reached at start (a replica starting while Redis is down), the service answers
    /// 503 until [`IdentityService::run_key_publisher`] has read the seed. `readiness` says whether the topology
    /// is trusted (see [`Readiness::topology_expired`], [`Readiness::store_topology_missing`]). Its metrics go to
    /// `registry`.
    ///
    /// # Errors
    /// [`StartError`].
    pub fn new(
        snapshots: SnapshotRx,
        store: Arc<dyn IdentityStore>,
        hasher: KeyedHasher,
        clock: Clock,
        readiness: Arc<Readiness>,
        registry: &prometheus::Registry,
    ) -> Result<Self, StartError> {
        let mut dummy_hash = [0u8; 32];
        aws_lc_rs::rand::fill(&mut dummy_hash).map_err(|_| StartError::Randomness)?;
        let metrics = Metrics::new(registry)?;
        let (jwks, _) = watch::channel(Arc::new(JwkSet { keys: vec![] }));
        let svc = Self {
            inner: Arc::new(Inner {
                metrics,
                snapshots,
                store,
                keys: std::sync::OnceLock::new(),
                hasher,
                clock,
                dummy_hash,
                limiter: Limiter::default(),
                secret_use: client_auth::secret_use::Throttle::default(),
                revocations: Arc::new(Revocations::default()),
                jwks,
                readiness,
                console_redirect: std::sync::OnceLock::new(),
            }),
        };
        svc.init_keys();
        Ok(svc)
    }

    /// Reads (or creates) the shared signing seed; `false` while the store cannot be reached.
    fn init_keys(&self) -> bool {
        if self.inner.keys.get().is_some() {
            return true;
        }
        let mut init = zeroize::Zeroizing::new([0u8; 32]);
        if aws_lc_rs::rand::fill(init.as_mut()).is_err() {
            return false;
        }
        match self
            .inner
            .store
            .shared_secret("identity-signing-seed", &init)
        {
            Ok(seed) => {
                let rotation = self
                    .snapshot()
                    .identity
                    .as_ref()
                    .map_or(86_400, |i| i.key_rotation.as_secs());
                let _ = self.inner.keys.set(SigningKeys::new(seed, rotation));
                self.publish_keys();
                true
            }
            Err(e) => {
                tracing::warn!(
                    reason = "signing_seed_unavailable",
                    "the identity service waits for the store: {e}"
                );
                false
            }
        }
    }

    fn signing(&self) -> Result<&SigningKeys, OAuthError> {
        self.inner.keys.get().ok_or(OAuthError::Unavailable)
    }

    /// The published signing keys, for the proxy's key store.
    pub fn local_keys(&self) -> LocalKeys {
        self.inner.jwks.subscribe()
    }

    /// Lets the built-in console client ([`idguard_config::identity::CONSOLE_CLIENT_ID`]) sign users in, with
    /// `redirect_uri` (the admin listener's `/console/callback`) as its one redirect URI. Set once; later calls are
    /// ignored.
    pub fn set_console_redirect_uri(&self, redirect_uri: String) {
        let _ = self.inner.console_redirect.set(redirect_uri);
    }

    /// Tokens revoked here, for the proxy to refuse.
    pub fn revocations(&self) -> Arc<Revocations> {
        self.inner.revocations.clone()
    }

    /// Re-publishes the JWKS as periods turn; run for the life of the process.
    /// Also pulls, every second, the revocations other replicas recorded in the shared store — the whole log at
    /// the first pull that succeeds, then what is new — so their proxies refuse those tokens too. While the store
    /// cannot be read, what was recorded meanwhile is pulled at the first read that succeeds.
    pub async fn run_key_publisher(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = 0u64;
        // From the start of the store's log (it keeps a day), not from now: a replica started after a revocation
        // must refuse that token too.
        let mut since = 0;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tick += 1;
            let svc = self.clone();
            let from = since;
            let outcome = tokio::task::spawn_blocking(move || {
                let ready = svc.init_keys();
                (ready, svc.inner.store.revocations_since(from))
            })
            .await;
            let Ok((ready, revocations)) = outcome else {
                continue;
            };
            if let Ok(list) = revocations {
                let now = self.now();
                for (digest, exp, at) in list {
                    self.inner.revocations.revoke(digest, exp, now);
                    // Re-read the last second next time: entries recorded in the same second may arrive late.
                    since = since.max(at);
                }
            }
            if ready && tick.is_multiple_of(15) {
                self.publish_keys();
            }
        }
    }

    fn publish_keys(&self) {
        // A retired key stays published while any token it signed may live: an agent's own lifetime included.
        let snapshot = self.snapshot();
        let longest_agent = snapshot.agents.values().filter_map(|a| a.token_ttl).max();
        let max_ttl = snapshot.identity.as_ref().map_or(86_400, |i| {
            i.access_token_ttl
                .max(i.exchange_max_ttl)
                .max(longest_agent.unwrap_or_default())
                .as_secs()
        });
        let Some(keys) = self.inner.keys.get() else {
            return;
        };
        let set = keys.jwks(self.now(), max_ttl);
        self.inner.jwks.send_if_modified(|old| {
            let changed = old.keys.len() != set.keys.len()
                || old
                    .keys
                    .iter()
                    .zip(&set.keys)
                    .any(|(a, b)| a.common.key_id != b.common.key_id);
            if changed {
                *old = Arc::new(set);
            }
            changed
        });
    }

    /// Counts one request to `endpoint` ending in `outcome` (`ok` or an OAuth error code).
    fn count(&self, endpoint: &str, outcome: &str) {
        self.inner
            .metrics
            .requests
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    /// Unix seconds by the service's clock (every lifetime it issues or checks is counted on it).
    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshots.borrow().clone()
    }

    /// `Err(Unavailable)` while the topology is older than `redis_max_staleness_ms` allows: the proxy refuses it
    /// then, so tokens, codes and introspection answers are not judged from it either.
    fn topology_current(&self) -> Result<(), OAuthError> {
        if self.inner.readiness.topology_expired() {
            tracing::warn!(
                reason = "topology_expired",
                "the store has been unreachable too long; the identity service answers 503"
            );
            return Err(OAuthError::Unavailable);
        }
        Ok(())
    }

    /// Whether the topology in force lacks the store's objects (the store has not been read since start).
    fn topology_incomplete(&self) -> bool {
        self.inner.readiness.store_topology_missing()
    }

    fn settings(&self, snapshot: &Snapshot) -> Result<Arc<IdentitySettings>, OAuthError> {
        snapshot.identity.clone().ok_or(OAuthError::Unavailable)
    }

    /// Signs `claims` as an RFC 9068 access token.
    fn sign(&self, claims: &AccessClaims) -> Result<String, OAuthError> {
        self.signing()?
            .sign(claims, ACCESS_TOKEN_TYP, claims.iat)
            .map_err(|e| {
                tracing::error!(reason = "signing_failed", "{e}");
                OAuthError::Unavailable
            })
    }

    /// Verifies a token this service issued: signature with a published key, `typ` `at+jwt`, `iss`, `exp`, and
    /// not revoked (here, or in the shared store). `Ok(None)` when any of that fails.
    ///
    /// # Errors
    /// [`OAuthError::Unavailable`] when the shared store cannot say whether the token is revoked: "cannot check"
    /// is not "invalid", so callers answer 503 rather than treating the token as unknown.
    pub async fn verify_local(&self, token: &str) -> Result<Option<AccessClaims>, OAuthError> {
        let Some(claims) = self.verify_signature(token) else {
            return Ok(None);
        };
        let digest = jti_digest(&claims.jti);
        if self.inner.revocations.is_revoked(&digest) {
            return Ok(None);
        }
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || store.is_revoked(&digest)).await {
            Ok(Ok(false)) => Ok(Some(claims)),
            Ok(Ok(true)) => Ok(None),
            Ok(Err(e)) => {
                tracing::warn!(
                    reason = "revocation_unchecked",
                    "cannot check a token's revocation in the store: {e}"
                );
                Err(OAuthError::Unavailable)
            }
            Err(_) => Err(OAuthError::Unavailable),
        }
    }

    /// The signature, `typ`, `iss` and `exp` checks of [`IdentityService::verify_local`], without revocation:
    /// enough to revoke a token (revoking one already revoked changes nothing).
    fn verify_signature(&self, token: &str) -> Option<AccessClaims> {
        let snapshot = self.snapshot();
        let settings = snapshot.identity.as_ref()?;
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != jsonwebtoken::Algorithm::ES256
            || header
                .typ
                .as_deref()
                .map(idguard_config::validate::normalize_typ)
                .as_deref()
                != Some(ACCESS_TOKEN_TYP)
        {
            return None;
        }
        let kid = header.kid?;
        let jwks = self.inner.jwks.borrow().clone();
        let jwk = jwks.find(&kid)?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Revokes a token by `jti` until `exp`: here at once (whatever the store says), and in the shared store for
    /// other replicas and for this one after a restart.
    ///
    /// # Errors
    /// [`OAuthError::Unavailable`] when the store did not record it: the caller must not acknowledge it.
    async fn revoke(&self, claims: &AccessClaims) -> Result<(), OAuthError> {
        let digest = jti_digest(&claims.jti);
        self.inner
            .revocations
            .revoke(digest, claims.exp, self.now());
        let store = self.inner.store.clone();
        let exp = claims.exp;
        match tokio::task::spawn_blocking(move || store.revoke(&digest, exp)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!(
                    reason = "revocation_not_recorded",
                    "a revocation could not be recorded in the store (enforced here only): {e}"
                );
                Err(OAuthError::Unavailable)
            }
            Err(_) => Err(OAuthError::Unavailable),
        }
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// 32 random bytes, base64url: token ids and authorization codes.
pub(crate) fn random_id() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| OAuthError::Unavailable)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A caller-supplied value made safe for one log field: at most 64 characters, control characters escaped.
pub(crate) fn log_value(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_token_responses_never_print_their_secrets() {
        let form = Form::parse(
            b"grant_type=client_credentials&client_secret=CANARY-secret&password=CANARY-pw",
        )
        .unwrap();
        let printed = format!("{form:?}");
        assert!(
            printed.contains("client_secret") && !printed.contains("CANARY"),
            "{printed}"
        );
        let response = grants::TokenResponse {
            access_token: "eyJ.CANARY-token.sig".into(),
            token_type: "Bearer",
            expires_in: 60,
            scope: "a".into(),
            issued_token_type: None,
        };
        let printed = format!("{response:?}");
        assert!(
            printed.contains("[redacted]") && !printed.contains("CANARY"),
            "{printed}"
        );
        // A repeated parameter is refused rather than one value silently winning.
        assert!(Form::parse(b"a=1&a=2").is_err());
        assert_eq!(Form::parse(b"a=&b=x").unwrap().get("a"), None);
    }
}

#[cfg(test)]
mod form_proptests;
