//! Client authentication at the token, revocation and introspection endpoints: `client_secret_basic`,
//! `client_secret_post` and `private_key_jwt` (RFC 7523), exactly one per request.
//!
//! Secrets are compared as keyed hashes in constant time, and an unknown `client_id` runs the same comparison
//! against a dummy hash, so the two cases cost the same and answer the same. Assertions are verified with the
//! registered key's own algorithm (never the header's choice), their header never selects a key by URL or
//! embedded key, and each `jti` is claimed once in the shared store. Failures are counted per client id (locally,
//! and with Redis across every replica: `shared_limiter`); past the limit the client gets 429 until the minute is
//! over. A secret that authenticates has its use recorded in the shared store (`secret_use`), for the admin
//! API's `last_used`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use idguard_config::Snapshot;
use idguard_config::snapshot::{ClientAuth, PublicKey};
use subtle::ConstantTimeEq;

pub use self::limiter::Limiter;

mod assertion;
mod limiter;
pub(crate) mod secret_use;
mod shared_limiter;

use super::error::{AuthFailure, OAuthError};
use super::{Form, IdentityService, log_value};

/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest `client_id` considered at all.
const MAX_CLIENT_ID: usize = 256;

/// The endpoint a client authenticates at: an assertion may name its URL as audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/oauth2/token`.
    Token,
    /// `/oauth2/revoke`.
    Revocation,
    /// `/oauth2/introspect`.
    Introspection,
}

impl Endpoint {
    /// Its path under the issuer.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Token => "/oauth2/token",
            Endpoint::Revocation => "/oauth2/revoke",
            Endpoint::Introspection => "/oauth2/introspect",
        }
    }
}

/// A failed authentication: the client id it named (when one is known), the `reason` logged, and the error.
struct Failed {
    id: Option<String>,
    reason: &'static str,
    error: OAuthError,
}

impl Failed {
    fn client(id: Option<String>, failure: AuthFailure) -> Self {
        Self {
            id,
            reason: failure.reason(),
            error: OAuthError::InvalidClient(failure),
        }
    }
}

/// Who authenticated, and with which of its credentials.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The client id.
    pub id: Arc<str>,
    /// Agent or client application.
    pub kind: PrincipalKind,
    /// `secret:<id>` or `key:<id>`: carried in tokens so removing the credential ends them.
    pub credential: String,
}

/// The two kinds of OAuth client idguard has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An agent.
    Agent,
    /// A client application.
    Client,
}

/// A principal's authentication material, from the snapshot.
struct Principal<'a> {
    id: Arc<str>,
    kind: PrincipalKind,
    enabled: bool,
    auth: ClientAuth,
    secrets: &'a [(String, Vec<u8>)],
    keys: &'a [PublicKey],
}

fn principal<'a>(snapshot: &'a Snapshot, id: &str) -> Option<Principal<'a>> {
    if let Some((k, a)) = snapshot.agents.get_key_value(id) {
        return Some(Principal {
            id: k.clone(),
            kind: PrincipalKind::Agent,
            enabled: a.enabled,
            auth: a.auth,
            secrets: &a.secrets,
            keys: &a.keys,
        });
    }
    snapshot.clients.get_key_value(id).map(|(k, c)| Principal {
        id: k.clone(),
        kind: PrincipalKind::Client,
        enabled: c.enabled,
        auth: c.auth,
        secrets: &c.secrets,
        keys: &c.keys,
    })
}

/// The id of the stored secret `presented` matches. Every stored hash is compared (no early exit), and a client
/// with none — an unknown id included — is compared against `dummy`, so an unknown client and a wrong secret
/// cost the same: one HMAC (by the caller) and the same comparisons (corpus A02). `equal` is the constant-time
/// comparison; it is a parameter so a test can count the calls.
fn match_secret<'a>(
    presented: &[u8; 32],
    secrets: &'a [(String, Vec<u8>)],
    dummy: &[u8; 32],
    mut equal: impl FnMut(&[u8], &[u8]) -> bool,
) -> Option<&'a str> {
    if secrets.is_empty() {
        let _ = equal(presented, dummy);
        return None;
    }
    let mut matched = None;
    for (sid, hash) in secrets {
        if equal(presented, hash) {
            matched = Some(sid.as_str());
        }
    }
    matched
}

enum Method {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    Jwt {
        id: Option<String>,
        assertion: String,
    },
}

impl IdentityService {
    /// Authenticates the client of a request to `endpoint`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidRequest`] for two methods or a malformed id, [`OAuthError::InvalidClient`] with what
    /// failed, [`OAuthError::RateLimited`], or [`OAuthError::Unavailable`] when a `jti` cannot be recorded.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &Form,
        peer: Option<IpAddr>,
        endpoint: Endpoint,
    ) -> Result<Authenticated, OAuthError> {
        let method = method(headers, form).inspect_err(|e| {
            if let OAuthError::InvalidClient(failure) = e {
                tracing::warn!(reason = failure.reason(), "client authentication failed");
            }
        })?;
        let claimed = match &method {
            Method::Basic { id, .. } | Method::Post { id, .. } => Some(id.clone()),
            Method::Jwt { id, .. } => id.clone(),
        };
        if let Some(id) = &claimed {
            check_client_id(id)?;
        }
        // Whom the attempt is counted against: the named client, or what an assertion without `client_id`
        // claims to be (its `sub` and `iss`).
        let counted: Vec<String> = match (&method, &claimed) {
            (_, Some(id)) => vec![id.clone()],
            (Method::Jwt { assertion, .. }, None) => assertion::assertion_ids(assertion),
            _ => Vec::new(),
        };
        let snapshot = self.snapshot();
        let settings = self.settings(&snapshot)?;
        let now = self.now();
        for id in &counted {
            if let Err(retry) = self
                .check_failures(id, peer, settings.max_failed_auth_per_minute, now)
                .await
            {
                tracing::warn!(reason = "rate_limited", client_id = %log_value(id), "client authentication rate-limited");
                return Err(OAuthError::RateLimited(retry));
            }
        }
        let outcome = match method {
            Method::Basic { id, secret } | Method::Post { id, secret } => {
                self.check_secret(&snapshot, &id, &secret)
            }
            Method::Jwt { id, assertion } => {
                self.check_assertion(&snapshot, id.as_deref(), &assertion, endpoint, now)
                    .await
            }
        };
        match outcome {
            Ok(auth) => Ok(auth),
            Err(Failed { id, reason, error }) => {
                // The one log line of the failure: its detail, never the secret or the assertion.
                tracing::warn!(reason, client_id = %log_value(id.as_deref().unwrap_or("")), "client authentication failed");
                if !matches!(error, OAuthError::InvalidClient(_)) {
                    return Err(error);
                }
                let named = id.filter(|i| !counted.contains(i));
                let incomplete = self.topology_incomplete();
                for id in counted.iter().chain(named.as_ref()) {
                    // While the store's objects were never loaded, a client this replica does not know may well
                    // exist: its failure is this replica's outage, not the client's, and is not counted. A
                    // client the routing file declares is counted as always (its guesses stay limited).
                    if !incomplete || principal(&snapshot, id).is_some() {
                        self.count_failure(id, peer, now).await;
                    }
                }
                if incomplete {
                    // Every failure answers the same 503, so an outage does not tell known ids from unknown ones.
                    tracing::warn!(
                        reason = "topology_incomplete",
                        "client authentication failed before the store's objects were loaded; answering 503"
                    );
                    return Err(OAuthError::Unavailable);
                }
                Err(error)
            }
        }
    }

    /// `client_secret_basic` and `client_secret_post`: the failures before the secret matched read alike.
    fn check_secret(
        &self,
        snapshot: &Snapshot,
        id: &str,
        secret: &str,
    ) -> Result<Authenticated, Failed> {
        let presented = self.inner.hasher.client_secret(secret);
        let fail = |failure| Err(Failed::client(Some(id.to_owned()), failure));
        let p = principal(snapshot, id);
        let secrets: &[(String, Vec<u8>)] = p.as_ref().map_or(&[], |p| p.secrets);
        let matched = match_secret(&presented, secrets, &self.inner.dummy_hash, |a, b| {
            bool::from(a.ct_eq(b))
        })
        .map(str::to_owned);
        let Some(p) = p else {
            return fail(AuthFailure::UnknownClient);
        };
        match (matched, p.auth, p.enabled) {
            (None, _, _) => fail(AuthFailure::BadSecret),
            (Some(_), ClientAuth::PrivateKeyJwt, _) => fail(AuthFailure::SecretNotAllowed),
            (Some(_), _, false) => fail(AuthFailure::Disabled),
            (Some(sid), ClientAuth::ClientSecret, true) => {
                if let Some((_, hash)) = p.secrets.iter().find(|(s, _)| *s == sid) {
                    self.note_secret_use(&p.id, &sid, hash);
                }
                Ok(Authenticated {
                    id: p.id,
                    kind: p.kind,
                    credential: format!("secret:{sid}"),
                })
            }
        }
    }
}

/// A client id worth looking up: bounded length, printable ASCII (so it cannot forge a log line either).
fn check_client_id(id: &str) -> Result<(), OAuthError> {
    if !is_client_id(id) {
        tracing::warn!(reason = "bad_client_id", client_id = %log_value(id), "malformed client_id");
        return Err(OAuthError::InvalidRequest("client_id is malformed."));
    }
    Ok(())
}

fn is_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

fn method(headers: &HeaderMap, form: &Form) -> Result<Method, OAuthError> {
    let mut methods = Vec::new();
    let mut auth = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(OAuthError::InvalidRequest("Send one Authorization header."));
        }
        let bad_header = || OAuthError::InvalidClient(AuthFailure::BadAuthorizationHeader);
        let text = value.to_str().map_err(|_| bad_header())?;
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(bad_header());
        }
        let decoded = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad_header)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad_header)?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
        let decode = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let id = decode(id);
        // A client_id in the body too must name the same client.
        if form.get("client_id").is_some_and(|f| f != id) {
            return Err(OAuthError::InvalidRequest(
                "client_id does not match the authenticated client.",
            ));
        }
        methods.push(Method::Basic {
            id,
            secret: decode(secret),
        });
    }
    if let Some(secret) = form.get("client_secret") {
        let id = form
            .get("client_id")
            .ok_or(OAuthError::InvalidRequest("client_secret needs client_id."))?;
        methods.push(Method::Post {
            id: id.to_owned(),
            secret: secret.to_owned(),
        });
    }
    match (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) {
        (Some(t), Some(a)) if t == JWT_BEARER => methods.push(Method::Jwt {
            id: form.get("client_id").map(str::to_owned),
            assertion: a.to_owned(),
        }),
        (None, None) => {}
        _ => {
            return Err(OAuthError::InvalidRequest(
                "client_assertion and client_assertion_type (jwt-bearer) go together.",
            ));
        }
    }
    if methods.len() > 1 {
        tracing::warn!(
            reason = "multiple_auth_methods",
            "more than one client authentication method"
        );
        return Err(OAuthError::InvalidRequest(
            "Use exactly one client authentication method.",
        ));
    }
    methods
        .pop()
        .ok_or(OAuthError::InvalidClient(AuthFailure::Missing))
}

#[cfg(test)]
mod tests;
