//! `private_key_jwt` (RFC 7523 §3): the assertion's form, header and claims are checked first, from the
//! assertion alone — so those answers are the same whether or not the client exists — then the client and its
//! registered keys, each candidate key in turn (the key fixes the algorithm), and last the `jti`, claimed once in
//! the shared store and remembered until the assertion could no longer be accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::Snapshot;
use idguard_config::snapshot::{ClientAuth, IdentitySettings, PublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Authenticated, Endpoint, Failed, check_client_id, is_client_id, principal};
use crate::error::{AuthFailure, OAuthError};
use crate::{IdentityService, sha256};

/// Longest assertion considered.
const MAX_ASSERTION: usize = 16 * 1024;
/// How far in the future an `iat` or `nbf` may be, and how far past the lifetime bound an `exp` may be: the
/// client's clock may run ahead of ours.
const MAX_CLOCK_SKEW: u64 = 60;
/// How long after `exp` an assertion is still accepted (the client's clock may run behind ours).
const EXP_LEEWAY: u64 = 30;
/// How long after `exp` its `jti` is remembered: past the leeway, so a replay is refused as long as the
/// assertion itself would be accepted.
const JTI_KEPT_AFTER_EXP: u64 = 60;

/// The audiences an assertion sent to `endpoint` may name: the issuer, and — unless the settings require the
/// issuer alone — the token endpoint URL and the URL of the endpoint it is sent to (RFC 7523 §3 allows the token
/// endpoint; common clients sign the URL they post to).
pub(super) fn audiences(settings: &IdentitySettings, endpoint: Endpoint) -> Vec<String> {
    let mut out = vec![settings.issuer.clone()];
    if settings.accept_token_endpoint_audience {
        out.push(settings.token_endpoint());
        let called = format!("{}{}", settings.issuer, endpoint.path());
        if !out.contains(&called) {
            out.push(called);
        }
    }
    out
}

impl IdentityService {
    /// Authenticates a client by its assertion (see the module's documentation for the order of the checks).
    pub(super) async fn check_assertion(
        &self,
        snapshot: &Snapshot,
        form_id: Option<&str>,
        assertion: &str,
        endpoint: Endpoint,
        now: u64,
    ) -> Result<Authenticated, Failed> {
        let (header, claims, id) =
            peek(assertion, form_id).map_err(|(failure, id)| Failed::client(id, failure))?;
        let fail = |failure| Failed::client(Some(id.clone()), failure);
        check_header(&header).map_err(fail)?;
        let settings = self.settings(snapshot).map_err(|error| Failed {
            id: Some(id.clone()),
            reason: "no_identity",
            error,
        })?;
        let jti = check_claims(&claims, &id, &settings, endpoint, now).map_err(fail)?;
        let Some(p) = principal(snapshot, &id) else {
            return Err(fail(AuthFailure::UnknownAssertionClient));
        };
        if p.auth != ClientAuth::PrivateKeyJwt {
            return Err(fail(AuthFailure::AssertionNotAllowed));
        }
        let candidates: Vec<&PublicKey> = p
            .keys
            .iter()
            .filter(|k| header.kid.as_deref().is_none_or(|kid| kid == k.id))
            .collect();
        if candidates.is_empty() {
            return Err(fail(AuthFailure::UnknownKid));
        }
        let mut last = AuthFailure::AlgNotAllowed;
        for key in candidates {
            if let Err(failure) = verify_signature(assertion, &header.alg, key, &id) {
                last = failure;
                continue;
            }
            // Told only to the holder of a registered key.
            if !p.enabled {
                return Err(fail(AuthFailure::Disabled));
            }
            let digest = sha256(format!("assertion\n{id}\n{jti}").as_bytes());
            let store = self.inner.store.clone();
            let expires = claims.exp + JTI_KEPT_AFTER_EXP;
            let unavailable = || Failed {
                id: Some(id.clone()),
                reason: "store_unavailable",
                error: OAuthError::Unavailable,
            };
            let first = tokio::task::spawn_blocking(move || store.claim_jti(&digest, expires))
                .await
                .map_err(|_| unavailable())?
                .map_err(|_| unavailable())?;
            if !first {
                return Err(fail(AuthFailure::Replay));
            }
            return Ok(Authenticated {
                id: p.id,
                kind: p.kind,
                credential: format!("key:{}", key.id),
            });
        }
        Err(fail(last))
    }
}

/// The assertion's header, claims and the client it speaks for, read before any verification (the signature
/// covers these very bytes, checked after). The client id is the form's `client_id` or else the payload's `sub`;
/// they must agree when both are there. `Err` carries the client id when one is known.
fn peek(
    assertion: &str,
    form_id: Option<&str>,
) -> Result<(AssertionHeader, AssertionClaims, String), (AuthFailure, Option<String>)> {
    let bad = |failure, id: Option<&str>| (failure, id.map(str::to_owned));
    let malformed = || bad(AuthFailure::MalformedAssertion, form_id);
    if assertion.len() > MAX_ASSERTION {
        return Err(malformed());
    }
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header: AssertionHeader = decode_json(h).ok_or_else(malformed)?;
    let peek: PeekClaims = decode_json(p).ok_or_else(malformed)?;
    let id = match (form_id, peek.sub.as_deref()) {
        (Some(f), Some(s)) if f != s => return Err(bad(AuthFailure::BadSubject, Some(f))),
        (Some(f), _) => f.to_owned(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => return Err(bad(AuthFailure::BadSubject, None)),
    };
    if check_client_id(&id).is_err() {
        return Err(bad(AuthFailure::BadSubject, None));
    }
    let claims: AssertionClaims =
        decode_json(p).ok_or((AuthFailure::MalformedAssertion, Some(id.clone())))?;
    Ok((header, claims, id))
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Header rules: no key by reference or embedded, no `crit`, and a `typ` (if any) of a client assertion — an
/// access token or exchanged token is not a client assertion, whatever key signed it.
fn check_header(header: &AssertionHeader) -> Result<(), AuthFailure> {
    if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some()
    {
        return Err(AuthFailure::HeaderKeyReference);
    }
    if header.crit.is_some() {
        return Err(AuthFailure::UnsupportedCrit);
    }
    if let Some(typ) = &header.typ {
        let t = idguard_config::validate::normalize_typ(typ);
        if t != "jwt" && t != "client-authentication+jwt" {
            return Err(AuthFailure::BadTyp);
        }
    }
    Ok(())
}

/// The claims' rules: `sub` = `iss` = the client, a single audience among [`audiences`] (an array naming
/// another party too could be replayed there), not expired, `exp` within the lifetime bound (plus clock skew),
/// no `iat`/`nbf` in the future, and a `jti`. Returns the `jti`.
fn check_claims<'c>(
    claims: &'c AssertionClaims,
    id: &str,
    settings: &IdentitySettings,
    endpoint: Endpoint,
    now: u64,
) -> Result<&'c str, AuthFailure> {
    if claims.sub != id || claims.iss != id {
        return Err(AuthFailure::BadSubject);
    }
    let accepted = audiences(settings, endpoint);
    let aud_ok = match &claims.aud {
        serde_json::Value::String(a) => accepted.contains(a),
        serde_json::Value::Array(list) => {
            list.len() == 1
                && list[0]
                    .as_str()
                    .is_some_and(|a| accepted.iter().any(|x| x == a))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(AuthFailure::BadAudience {
            token_endpoint: settings.accept_token_endpoint_audience,
        });
    }
    if claims.exp.saturating_add(EXP_LEEWAY) < now {
        return Err(AuthFailure::Expired);
    }
    let max = settings.max_assertion_lifetime.as_secs();
    if claims.exp > now + max + MAX_CLOCK_SKEW {
        return Err(AuthFailure::Lifetime(max));
    }
    if claims.iat.is_some_and(|iat| iat > now + MAX_CLOCK_SKEW) {
        return Err(AuthFailure::IssuedInFuture);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + MAX_CLOCK_SKEW) {
        return Err(AuthFailure::NotYetValid);
    }
    claims
        .jti
        .as_deref()
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(AuthFailure::MissingJti)
}

/// Verifies the signature with one registered key (and again `exp`, `iss`). The registered key fixes the
/// algorithm: `none`, HS256 "signed" with the public key, or any other family never reaches a verifier. The
/// caller tries the next candidate key on `Err`.
fn verify_signature(
    assertion: &str,
    header_alg: &str,
    key: &PublicKey,
    id: &str,
) -> Result<(), AuthFailure> {
    use jsonwebtoken::errors::ErrorKind;
    let alg = match key.alg {
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return Err(AuthFailure::AlgNotAllowed),
    };
    if header_alg != key.alg {
        return Err(AuthFailure::AlgNotAllowed);
    }
    let decoding = DecodingKey::from_jwk(&key.jwk).map_err(|_| AuthFailure::AlgNotAllowed)?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[id]);
    validation.validate_aud = false;
    validation.leeway = EXP_LEEWAY;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<serde::de::IgnoredAny>(assertion, &decoding, &validation)
        .map(|_| ())
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidIssuer => AuthFailure::BadSubject,
            ErrorKind::ExpiredSignature => AuthFailure::Expired,
            ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
            // The form was checked before: what fails here is the key, the algorithm or the signature.
            _ => AuthFailure::BadSignature,
        })
}

/// The client ids an assertion sent without `client_id` claims to be — its unverified `sub` and `iss` — so that
/// its attempts are counted (and limited) like any other client's.
pub(super) fn assertion_ids(assertion: &str) -> Vec<String> {
    let Some(peek) = assertion
        .split('.')
        .nth(1)
        .and_then(decode_json::<PeekClaims>)
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
