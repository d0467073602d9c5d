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
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use idguard_config::Snapshot;
use idguard_config::snapshot::{ClientAuth, PublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

pub use self::limiter::Limiter;

mod limiter;
pub(crate) mod secret_use;
mod shared_limiter;

use super::error::OAuthError;
use super::{Form, IdentityService, log_value, sha256};

/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest `client_id` considered at all.
const MAX_CLIENT_ID: usize = 256;
/// Longest assertion considered.
const MAX_ASSERTION: usize = 16 * 1024;
/// How far ahead an assertion's `exp` may be.
const MAX_ASSERTION_LIFETIME: u64 = 300;
/// How far in the future an `iat` may be.
const MAX_CLOCK_SKEW: u64 = 60;

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
    /// Authenticates the client of a token-endpoint-style request.
    ///
    /// # Errors
    /// [`OAuthError::InvalidRequest`] for zero-or-two methods or a malformed id, [`OAuthError::InvalidClient`],
    /// [`OAuthError::RateLimited`], or [`OAuthError::Unavailable`] when a `jti` cannot be recorded.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &Form,
        peer: Option<IpAddr>,
    ) -> Result<Authenticated, OAuthError> {
        let method = method(headers, form)?;
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
            (Method::Jwt { assertion, .. }, None) => assertion_ids(assertion),
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
                self.check_assertion(&snapshot, id.as_deref(), &assertion, now)
                    .await
            }
        };
        match outcome {
            Ok(auth) => Ok(auth),
            Err((reason, id, err)) => {
                tracing::warn!(reason, client_id = %log_value(id.as_deref().unwrap_or("")), "client authentication failed");
                if err != OAuthError::InvalidClient {
                    return Err(err);
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
                Err(err)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn check_secret(
        &self,
        snapshot: &Snapshot,
        id: &str,
        secret: &str,
    ) -> Result<Authenticated, (&'static str, Option<String>, OAuthError)> {
        let presented = self.inner.hasher.client_secret(secret);
        let fail = |reason| Err((reason, Some(id.to_owned()), OAuthError::InvalidClient));
        let p = principal(snapshot, id);
        let secrets: &[(String, Vec<u8>)] = p.as_ref().map_or(&[], |p| p.secrets);
        let matched = match_secret(&presented, secrets, &self.inner.dummy_hash, |a, b| {
            bool::from(a.ct_eq(b))
        })
        .map(str::to_owned);
        let Some(p) = p else {
            return fail("unknown_client");
        };
        match (matched, p.auth, p.enabled) {
            (None, _, _) => fail("bad_client_secret"),
            (Some(_), ClientAuth::PrivateKeyJwt, _) => fail("auth_method_not_allowed"),
            (Some(_), _, false) => fail("client_disabled"),
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

    /// `private_key_jwt` (RFC 7523): the assertion's header and identity, the client and its registered keys,
    /// then each candidate key in turn — the key fixes the algorithm — and the claims; the `jti` is claimed once
    /// in the shared store. A failure is `(log reason, client id if known, error)`.
    #[allow(clippy::type_complexity)]
    async fn check_assertion(
        &self,
        snapshot: &Snapshot,
        form_id: Option<&str>,
        assertion: &str,
        now: u64,
    ) -> Result<Authenticated, (&'static str, Option<String>, OAuthError)> {
        let (header, id) = peek_assertion(assertion, form_id)
            .map_err(|(reason, id)| (reason, id, OAuthError::InvalidClient))?;
        let bad_id = |reason: &'static str| (reason, Some(id.clone()), OAuthError::InvalidClient);
        check_assertion_header(&header).map_err(bad_id)?;
        let Some(p) = principal(snapshot, &id) else {
            return Err(bad_id("unknown_client"));
        };
        if p.auth != ClientAuth::PrivateKeyJwt {
            return Err(bad_id("auth_method_not_allowed"));
        }
        if !p.enabled {
            return Err(bad_id("client_disabled"));
        }
        let candidates: Vec<&PublicKey> = p
            .keys
            .iter()
            .filter(|k| header.kid.as_deref().is_none_or(|kid| kid == k.id))
            .collect();
        if candidates.is_empty() {
            return Err(bad_id("unknown_kid"));
        }
        let settings = self
            .settings(snapshot)
            .map_err(|e| ("no_identity", Some(id.clone()), e))?;
        let mut audiences = vec![settings.issuer.clone()];
        if settings.accept_token_endpoint_audience {
            audiences.push(settings.token_endpoint());
        }
        let mut last = "alg_not_allowed";
        for key in candidates {
            let claims = match verify_assertion(assertion, &header.alg, key, &id) {
                Ok(claims) => claims,
                Err(reason) => {
                    last = reason;
                    continue;
                }
            };
            let jti = check_assertion_claims(&claims, &id, &audiences, now).map_err(bad_id)?;
            let digest = sha256(format!("assertion\n{id}\n{jti}").as_bytes());
            let store = self.inner.store.clone();
            let expires = claims.exp + 60;
            let unavailable = |_| {
                (
                    "store_unavailable",
                    Some(id.clone()),
                    OAuthError::Unavailable,
                )
            };
            let first = tokio::task::spawn_blocking(move || store.claim_jti(&digest, expires))
                .await
                .map_err(|_| unavailable(()))?
                .map_err(|_| unavailable(()))?;
            if !first {
                return Err(bad_id("assertion_replay"));
            }
            return Ok(Authenticated {
                id: p.id,
                kind: p.kind,
                credential: format!("key:{}", key.id),
            });
        }
        Err(bad_id(last))
    }
}

/// The assertion's header and the client it speaks for, read before any verification only to find the key
/// (everything is re-checked after). The client id is the form's `client_id` or else the payload's `sub`; they
/// must agree when both are there.
fn peek_assertion(
    assertion: &str,
    form_id: Option<&str>,
) -> Result<(AssertionHeader, String), (&'static str, Option<String>)> {
    let bad = |reason: &'static str, id: Option<&str>| (reason, id.map(str::to_owned));
    if assertion.len() > MAX_ASSERTION {
        return Err(bad("bad_assertion", form_id));
    }
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad_assertion", form_id));
    };
    let header: AssertionHeader = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("bad_assertion", form_id))?;
    let peek: PeekClaims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("bad_assertion", form_id))?;
    let id = match (form_id, peek.sub.as_deref()) {
        (Some(f), Some(s)) if f != s => return Err(bad("bad_assertion_sub", Some(f))),
        (Some(f), _) => f.to_owned(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => return Err(bad("bad_assertion_sub", None)),
    };
    if check_client_id(&id).is_err() {
        return Err(bad("bad_assertion_sub", None));
    }
    Ok((header, id))
}

/// Header rules: no key by reference or embedded, no `crit`, and a `typ` (if any) of a client assertion — an
/// access token or exchanged token is not a client assertion, whatever key signed it.
fn check_assertion_header(header: &AssertionHeader) -> Result<(), &'static str> {
    if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some()
    {
        return Err("header_key_reference");
    }
    if header.crit.is_some() {
        return Err("unsupported_crit");
    }
    if let Some(typ) = &header.typ {
        let t = idguard_config::validate::normalize_typ(typ);
        if t != "jwt" && t != "client-authentication+jwt" {
            return Err("bad_assertion_typ");
        }
    }
    Ok(())
}

/// Verifies the signature with one registered key and the time claims (30 s leeway), `iss` = the client. The
/// registered key fixes the algorithm: `none`, HS256 "signed" with the public key, or any other family never
/// reaches a verifier. `Err` is the log reason; the caller tries the next candidate key.
fn verify_assertion(
    assertion: &str,
    header_alg: &str,
    key: &PublicKey,
    id: &str,
) -> Result<AssertionClaims, &'static str> {
    use jsonwebtoken::errors::ErrorKind;
    let alg = match key.alg {
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return Err("alg_not_allowed"),
    };
    if header_alg != key.alg {
        return Err("alg_not_allowed");
    }
    let decoding = DecodingKey::from_jwk(&key.jwk).map_err(|_| "alg_not_allowed")?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[id]);
    validation.validate_aud = false;
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidIssuer => "bad_assertion_sub",
            ErrorKind::ExpiredSignature => "assertion_expired",
            ErrorKind::ImmatureSignature => "assertion_not_yet_valid",
            ErrorKind::InvalidSignature => "bad_assertion_signature",
            _ => "bad_assertion",
        })
}

/// The verified claims' rules: `sub` = `iss` = the client, a single audience that is this issuer (an array
/// naming another party too could be replayed there), a short lifetime, no `iat`/`nbf` in the future, and a
/// `jti`. Returns the `jti`.
fn check_assertion_claims<'c>(
    claims: &'c AssertionClaims,
    id: &str,
    audiences: &[String],
    now: u64,
) -> Result<&'c str, &'static str> {
    if claims.sub != id || claims.iss != id {
        return Err("bad_assertion_sub");
    }
    let aud_ok = match &claims.aud {
        serde_json::Value::String(a) => audiences.contains(a),
        serde_json::Value::Array(list) => {
            list.len() == 1
                && list[0]
                    .as_str()
                    .is_some_and(|a| audiences.iter().any(|x| x == a))
        }
        _ => false,
    };
    if !aud_ok {
        return Err("bad_assertion_aud");
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME {
        return Err("assertion_lifetime");
    }
    if claims.iat.is_some_and(|iat| iat > now + MAX_CLOCK_SKEW) {
        return Err("assertion_iat_future");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + MAX_CLOCK_SKEW) {
        return Err("assertion_not_yet_valid");
    }
    claims
        .jti
        .as_deref()
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("assertion_missing_jti")
}

#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    jku: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5u: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    jwk: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5c: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct PeekClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

/// Typed claims: a string or float `exp` fails to deserialize and the assertion is refused.
#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
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

/// The client ids an assertion sent without `client_id` claims to be — its unverified `sub` and `iss` — so that
/// its attempts are counted (and limited) like any other client's.
fn assertion_ids(assertion: &str) -> Vec<String> {
    let Some(payload) = assertion.split('.').nth(1) else {
        return Vec::new();
    };
    let Some(peek) = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<PeekClaims>(&b).ok())
    else {
        return Vec::new();
    };
    let mut ids: Vec<String> = [peek.sub, peek.iss]
        .into_iter()
        .flatten()
        .filter(|id| is_client_id(id))
        .collect();
    ids.dedup();
    ids
}

fn method(headers: &HeaderMap, form: &Form) -> Result<Method, OAuthError> {
    let mut methods = Vec::new();
    let mut auth = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(OAuthError::InvalidRequest("Send one Authorization header."));
        }
        let text = value.to_str().map_err(|_| OAuthError::InvalidClient)?;
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::InvalidClient);
        }
        let decoded = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(OAuthError::InvalidClient)?;
        let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
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
    methods.pop().ok_or(OAuthError::InvalidClient)
}

#[cfg(test)]
mod tests;
