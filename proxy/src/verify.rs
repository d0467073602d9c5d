//! Access-token verification with a cache of verified tokens.
//!
//! A first sight of a token parses its header strictly (duplicate keys and `crit` refused), picks the key by
//! `kid`, requires the header `alg` to equal the key's algorithm, verifies the signature and the `iss`, `aud`,
//! `exp`, `nbf` rules with jsonwebtoken, then applies the rules jsonwebtoken leaves to us: a single audience,
//! the `typ` media type, typed claims, a well-formed agent id. The outcome is cached under the token's SHA-256
//! until `exp` + leeway, so a repeat sight costs one hash and one map lookup. Cache entries are tied to the key
//! store's epoch: a key rotation or snapshot swap voids them.

use idguard_config::Clock;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use crate::error::TokenReason;
use crate::keys::{KeyStore, VerifyKey};

/// Who a verified token speaks for.
#[derive(Debug)]
pub struct Identity {
    /// The OAuth client: the agent on outbound routes, the client application on `/agents/` (`client_id`, else
    /// `sub`).
    pub agent: Box<str>,
    /// `sub`, when it differs from the client: the user a client application's token carries.
    pub user: Option<Box<str>>,
    /// The token's one audience.
    pub audience: Box<str>,
    /// Whether `audience` is the issuer's proxy audience (outbound routes need it).
    pub for_proxy: bool,
    /// Issued by idguard's own identity service.
    pub local: bool,
    /// SHA-256 of `jti\n<jti>` (the revocation key), when the token has a `jti`.
    pub jti_digest: Option<[u8; 32]>,
    /// `idg_cred`: the client credential that obtained it (idguard-issued tokens).
    pub credential: Option<Box<str>>,
    /// SHA-256 of the token itself (cache keys derived from the token never hold it).
    pub token_digest: [u8; 32],
    /// Granted scopes, in token order.
    pub scopes: Box<[Box<str>]>,
    /// `exp`.
    pub exp: u64,
}

impl Identity {
    /// Whether the token carries `scope` exactly.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }
}

struct Cached {
    identity: Arc<Identity>,
    valid_until: u64,
    epoch: u64,
}

/// Verifies tokens against a [`KeyStore`], caching successes.
pub struct Verifier {
    keys: Arc<KeyStore>,
    cache: DashMap<[u8; 32], Cached>,
    max_entries: usize,
    clock: Clock,
}

#[derive(Deserialize)]
struct StrictHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    // Present is enough: `"crit": null` is still a `crit` member (RFC 7515 §4.1.11 requires an array).
    #[serde(default, deserialize_with = "member_present")]
    crit: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    #[allow(dead_code)] // present and typed is what matters; jsonwebtoken compares it
    iss: String,
    aud: Audience,
    #[allow(dead_code)]
    exp: u64,
    #[serde(default)]
    #[allow(dead_code)]
    nbf: Option<u64>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    idg_cred: Option<String>,
}

/// The result of the synchronous part of verification.
pub enum Attempt {
    /// Verified (from cache or now).
    Verified(Arc<Identity>),
    /// Refused.
    Rejected(TokenReason),
    /// No key has this `kid`: the caller may refresh keys and try once more.
    UnknownKid,
}

// === impl Verifier ===

impl Verifier {
    /// A verifier over `keys` caching at most `max_entries` tokens, each until its `exp` by `clock`.
    pub fn new(keys: Arc<KeyStore>, max_entries: usize, clock: Clock) -> Self {
        Self {
            keys,
            cache: DashMap::new(),
            max_entries,
            clock,
        }
    }

    /// The key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Verifies `token` without awaiting: a cache hit, a full verification, or [`Attempt::UnknownKid`].
    pub fn attempt(&self, token: &str) -> Attempt {
        let now = self.clock.now();
        let digest = sha256(token.as_bytes());
        let epoch = self.keys.epoch();
        if let Some(hit) = self.cache.get(&digest)
            && hit.epoch == epoch
            && now <= hit.valid_until
        {
            return Attempt::Verified(hit.identity.clone());
        }
        match self.verify_uncached(token, digest) {
            Ok((identity, leeway)) => {
                let identity = Arc::new(identity);
                self.remember(
                    digest,
                    identity.clone(),
                    identity.exp.saturating_add(leeway),
                    epoch,
                    now,
                );
                Attempt::Verified(identity)
            }
            Err(None) => Attempt::UnknownKid,
            Err(Some(reason)) => Attempt::Rejected(reason),
        }
    }

    /// Verifies `token`, refreshing the issuers' keys (rate-limited) once if its `kid` is unknown.
    ///
    /// # Errors
    /// The reason the token was refused.
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, TokenReason> {
        match self.attempt(token) {
            Attempt::Verified(id) => Ok(id),
            Attempt::Rejected(r) => Err(r),
            Attempt::UnknownKid => {
                if self.keys.refresh_on_unknown_kid().await {
                    match self.attempt(token) {
                        Attempt::Verified(id) => Ok(id),
                        Attempt::Rejected(r) => Err(r),
                        Attempt::UnknownKid => Err(TokenReason::UnknownKey),
                    }
                } else {
                    Err(TokenReason::UnknownKey)
                }
            }
        }
    }

    fn remember(
        &self,
        digest: [u8; 32],
        identity: Arc<Identity>,
        valid_until: u64,
        epoch: u64,
        now: u64,
    ) {
        if self.cache.len() >= self.max_entries {
            self.cache
                .retain(|_, c| c.epoch == epoch && c.valid_until >= now);
            if self.cache.len() >= self.max_entries {
                return;
            }
        }
        self.cache.insert(
            digest,
            Cached {
                identity,
                valid_until,
                epoch,
            },
        );
    }

    /// Full verification. `Err(None)` means "no key with this kid".
    fn verify_uncached(
        &self,
        token: &str,
        digest: [u8; 32],
    ) -> Result<(Identity, u64), Option<TokenReason>> {
        let mut parts = token.split('.');
        let (Some(h), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Some(TokenReason::Malformed));
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| Some(TokenReason::Malformed))?;
        let header: StrictHeader =
            serde_json::from_slice(&header_bytes).map_err(|_| Some(TokenReason::Malformed))?;
        if header.crit {
            return Err(Some(TokenReason::UnsupportedCrit));
        }
        let candidates = self.keys.candidates(header.kid.as_deref());
        if candidates.is_empty() {
            return Err(None);
        }
        let mut last = TokenReason::AlgNotAllowed;
        for key in candidates.iter().filter(|k| alg_name(k) == header.alg) {
            match check_with(key, token, header.typ.as_deref(), digest) {
                Ok(identity) => return Ok((identity, key.issuer.leeway_seconds)),
                Err(reason) => last = reason,
            }
        }
        Err(Some(last))
    }
}

fn check_with(
    key: &VerifyKey,
    token: &str,
    typ: Option<&str>,
    token_digest: [u8; 32],
) -> Result<Identity, TokenReason> {
    let data =
        jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => TokenReason::BadSignature,
                ErrorKind::ExpiredSignature => TokenReason::Expired,
                ErrorKind::ImmatureSignature => TokenReason::NotYetValid,
                ErrorKind::InvalidIssuer => TokenReason::BadIssuer,
                ErrorKind::InvalidAudience => TokenReason::BadAudience,
                ErrorKind::MissingRequiredClaim(_) => TokenReason::MissingClaim,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm => TokenReason::AlgNotAllowed,
                ErrorKind::Json(_) | ErrorKind::Utf8(_) => TokenReason::BadClaims,
                _ => TokenReason::Malformed,
            }
        })?;
    // Signature and standard claims hold; now the rules jsonwebtoken does not enforce.
    let typ = typ
        .map(idguard_config::validate::normalize_typ)
        .ok_or(TokenReason::BadTyp)?;
    if !key.issuer.accepted_typ.contains(&typ) {
        return Err(TokenReason::BadTyp);
    }
    let claims = data.claims;
    // Single-audience policy: a token that also names another audience could be replayed there (RFC 9700 §4.10.2).
    let audience = match claims.aud {
        Audience::One(a) => a,
        Audience::Many(list) if !list.is_empty() && list.iter().all(|a| *a == list[0]) => {
            list.into_iter().next().unwrap_or_default()
        }
        Audience::Many(_) => return Err(TokenReason::BadAudience),
    };
    let local = matches!(key.issuer.keys, idguard_config::snapshot::KeySource::Local);
    // Other issuers' tokens were held to the proxy audience by jsonwebtoken already.
    let for_proxy = audience == key.issuer.audience;
    if !local && !for_proxy {
        return Err(TokenReason::BadAudience);
    }
    let sub = claims.sub;
    let agent = claims
        .client_id
        .or_else(|| sub.clone())
        .ok_or(TokenReason::MissingClaim)?;
    let user = sub.filter(|s| *s != agent);
    if user.as_ref().is_some_and(|u| u.is_empty() || u.len() > 256) {
        return Err(TokenReason::BadClaims);
    }
    if agent.is_empty()
        || agent.len() > 128
        || !agent
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(TokenReason::BadClaims);
    }
    let scopes: Box<[Box<str>]> = match (claims.scope, claims.scp) {
        // Space is the only delimiter (RFC 6749 §3.3): a tab or a unicode space is part of a scope, not a gap.
        (Some(s), _) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Box::from)
            .collect(),
        (None, Some(list)) => list.into_iter().map(String::into_boxed_str).collect(),
        (None, None) => Box::new([]),
    };
    Ok(Identity {
        agent: agent.into_boxed_str(),
        user: user.map(String::into_boxed_str),
        audience: audience.into_boxed_str(),
        for_proxy,
        local,
        jti_digest: claims
            .jti
            .as_deref()
            .map(idguard_config::identity::jti_digest),
        credential: claims.idg_cred.map(String::into_boxed_str),
        token_digest,
        scopes,
        exp: claims.exp,
    })
}

fn member_present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

fn alg_name(key: &VerifyKey) -> &'static str {
    use jsonwebtoken::Algorithm as A;
    match key.alg {
        A::HS256 => "HS256",
        A::HS384 => "HS384",
        A::HS512 => "HS512",
        A::ES256 => "ES256",
        A::ES384 => "ES384",
        A::RS256 => "RS256",
        A::RS384 => "RS384",
        A::RS512 => "RS512",
        A::PS256 => "PS256",
        A::PS384 => "PS384",
        A::PS512 => "PS512",
        A::EdDSA => "EdDSA",
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod proptests;
