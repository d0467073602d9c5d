//! Public keys of the trusted issuers, by `kid`.
//!
//! Keys come from each issuer's JWKS (a file, or an https URL fetched through the upstream client). The key
//! fixes the algorithm: an EC P-256 key verifies ES256 only, an RSA key RS256 (or what its JWK `alg` says), an
//! Ed25519 key EdDSA. A token's header never chooses the algorithm, and its `jku`/`x5u`/`jwk`/`x5c` headers are
//! never read. An unknown `kid` triggers a refetch of the issuers' keys at most once per 30 s per issuer, so a
//! flood of random `kid`s costs at most one fetch.
//!
//! The index is an `ArcSwap` read lock-free on the hot path; the bookkeeping behind it sits in a `std` mutex that
//! is never held across an `.await`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use idguard_config::files::{MAX_JWKS_FILE_BYTES, read_text_bounded};
use idguard_config::snapshot::{Issuer, KeySource};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The shortest time between two fetches of one issuer's keys triggered by unknown `kid`s.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// A future fetching a JWKS document's text.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Fetches a JWKS URL (implemented over the upstream client; a stub in tests).
pub trait JwksFetch: Send + Sync {
    /// GETs `url` and returns the body text.
    fn fetch(&self, url: &str) -> FetchFuture;
}

/// One verification key with everything needed to check a token against it.
pub struct VerifyKey {
    /// The issuer whose JWKS it came from.
    pub issuer: Arc<Issuer>,
    /// Its `kid`, if the JWK had one.
    pub kid: Option<String>,
    /// The only algorithm it verifies.
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
    /// `iss`, `aud`, `exp`, `nbf` rules for this issuer and algorithm, built once.
    pub validation: Validation,
}

#[derive(Default)]
struct KeyIndex {
    by_kid: HashMap<String, Vec<Arc<VerifyKey>>>,
    without_kid: Vec<Arc<VerifyKey>>,
}

#[derive(Default)]
struct KeyState {
    issuers: Vec<Arc<Issuer>>,
    /// The in-process identity service's keys (for the issuer with `KeySource::Local`).
    local: Option<Arc<JwkSet>>,
    keys: HashMap<String, Vec<Arc<VerifyKey>>>,
    last_fetch: HashMap<String, Instant>,
}

/// The key store shared by every request.
pub struct KeyStore {
    index: ArcSwap<KeyIndex>,
    state: Mutex<KeyState>,
    fetcher: Arc<dyn JwksFetch>,
    epoch: AtomicU64,
}

// === impl KeyStore ===

impl KeyStore {
    /// An empty store that fetches JWKS URLs with `fetcher`.
    pub fn new(fetcher: Arc<dyn JwksFetch>) -> Self {
        Self {
            index: ArcSwap::from_pointee(KeyIndex::default()),
            state: Mutex::new(KeyState::default()),
            fetcher,
            epoch: AtomicU64::new(1),
        }
    }

    /// Changes whenever any key or issuer changes; verified-token cache entries of an older epoch are void.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Candidates for a token's `kid` (or, without a `kid`, every key that has none).
    pub fn candidates(&self, kid: Option<&str>) -> Vec<Arc<VerifyKey>> {
        let index = self.index.load();
        match kid {
            Some(kid) => index.by_kid.get(kid).cloned().unwrap_or_default(),
            None => index.without_kid.clone(),
        }
    }

    /// Installs a snapshot's issuers: file keys are read now; URL keys are kept if the issuer is unchanged and
    /// fetched by [`KeyStore::refresh`] otherwise.
    pub fn set_issuers(&self, issuers: &[Arc<Issuer>]) {
        let mut state = lock(&self.state);
        let mut keys = HashMap::new();
        for issuer in issuers {
            let unchanged = state.issuers.iter().any(|old| **old == **issuer);
            let loaded = match &issuer.keys {
                KeySource::File(path) => match read_text_bounded(path, MAX_JWKS_FILE_BYTES) {
                    Ok(text) => parse_jwks(issuer, &text),
                    Err(e) => {
                        tracing::error!(issuer = %issuer.issuer, reason = "jwks_unavailable", "cannot read JWKS file: {e}");
                        Vec::new()
                    }
                },
                KeySource::Url(_) if unchanged => {
                    state.keys.get(&issuer.issuer).cloned().unwrap_or_default()
                }
                KeySource::Url(_) => Vec::new(),
                KeySource::Local => local_keys(issuer, state.local.as_deref()),
            };
            keys.insert(issuer.issuer.clone(), loaded);
        }
        state.issuers = issuers.to_vec();
        state.keys = keys;
        state
            .last_fetch
            .retain(|iss, _| issuers.iter().any(|i| &i.issuer == iss));
        self.publish(&state);
    }

    /// Issuers whose keys come from a URL and have none yet, or whose refresh interval has passed.
    pub fn due_for_refresh(&self) -> Vec<Arc<Issuer>> {
        let state = lock(&self.state);
        state
            .issuers
            .iter()
            .filter(|i| match &i.keys {
                KeySource::Url(_) => match state.last_fetch.get(&i.issuer) {
                    None => true,
                    Some(at) => at.elapsed() >= i.jwks_refresh,
                },
                KeySource::File(_) | KeySource::Local => false,
            })
            .cloned()
            .collect()
    }

    /// Refetches one issuer's keys now. Returns whether anything changed.
    pub async fn refresh(&self, issuer: &Arc<Issuer>) -> bool {
        {
            let mut state = lock(&self.state);
            state
                .last_fetch
                .insert(issuer.issuer.clone(), Instant::now());
        }
        let text = match &issuer.keys {
            KeySource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_text_bounded(&path, MAX_JWKS_FILE_BYTES))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|read| read.map_err(|e| e.to_string()))
            }
            KeySource::Url(url) => self.fetcher.fetch(url).await,
            // Pushed by the identity service through `set_local_keys`; nothing to fetch.
            KeySource::Local => return false,
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(issuer = %issuer.issuer, reason = "jwks_fetch_failed", "fetching JWKS failed: {e}");
                return false;
            }
        };
        let keys = parse_jwks(issuer, &text);
        if keys.is_empty() {
            tracing::warn!(issuer = %issuer.issuer, reason = "jwks_empty", "the JWKS holds no usable key; keeping the old keys");
            return false;
        }
        let mut state = lock(&self.state);
        // The snapshot may have dropped this issuer while we fetched.
        if !state
            .issuers
            .iter()
            .any(|i| Arc::ptr_eq(i, issuer) || **i == **issuer)
        {
            return false;
        }
        let changed = state
            .keys
            .get(&issuer.issuer)
            .map(|old| fingerprint(old) != fingerprint(&keys))
            .unwrap_or(true);
        if changed {
            state.keys.insert(issuer.issuer.clone(), keys);
            self.publish(&state);
            tracing::info!(issuer = %issuer.issuer, reason = "jwks_updated", "issuer keys updated");
        }
        changed
    }

    /// Called on an unknown `kid`: refetches every issuer whose last fetch is older than [`REFETCH_INTERVAL`].
    /// Returns whether any key changed (so the caller retries once).
    pub async fn refresh_on_unknown_kid(&self) -> bool {
        let due: Vec<Arc<Issuer>> = {
            let mut state = lock(&self.state);
            let now = Instant::now();
            let due: Vec<_> = state
                .issuers
                .iter()
                .filter(|i| {
                    !matches!(i.keys, KeySource::Local)
                        && state
                            .last_fetch
                            .get(&i.issuer)
                            .is_none_or(|at| now.duration_since(*at) >= REFETCH_INTERVAL)
                })
                .cloned()
                .collect();
            // Claim the slot before fetching so concurrent requests with unknown kids do not fetch too.
            for i in &due {
                state.last_fetch.insert(i.issuer.clone(), now);
            }
            due
        };
        let mut changed = false;
        for issuer in &due {
            changed |= self.refresh(issuer).await;
        }
        changed
    }

    /// Installs the in-process identity service's current keys (called whenever it publishes new ones).
    pub fn set_local_keys(&self, set: Arc<JwkSet>) {
        let mut state = lock(&self.state);
        state.local = Some(set);
        let locals: Vec<Arc<Issuer>> = state
            .issuers
            .iter()
            .filter(|i| matches!(i.keys, KeySource::Local))
            .cloned()
            .collect();
        for issuer in locals {
            let keys = local_keys(&issuer, state.local.as_deref());
            state.keys.insert(issuer.issuer.clone(), keys);
        }
        self.publish(&state);
    }

    fn publish(&self, state: &KeyState) {
        let mut index = KeyIndex::default();
        for issuer in &state.issuers {
            for key in state.keys.get(&issuer.issuer).into_iter().flatten() {
                match &key.kid {
                    Some(kid) => index
                        .by_kid
                        .entry(kid.clone())
                        .or_default()
                        .push(key.clone()),
                    None => index.without_kid.push(key.clone()),
                }
            }
        }
        self.index.store(Arc::new(index));
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the maps half-written in a way that matters more than losing
    // key rotation, so recover the guard instead of propagating the poison.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn fingerprint(keys: &[Arc<VerifyKey>]) -> Vec<(Option<String>, Algorithm)> {
    keys.iter().map(|k| (k.kid.clone(), k.alg)).collect()
}

fn local_keys(issuer: &Arc<Issuer>, set: Option<&JwkSet>) -> Vec<Arc<VerifyKey>> {
    set.map(|set| {
        set.keys
            .iter()
            .filter_map(|jwk| verify_key(issuer, jwk))
            .map(Arc::new)
            .collect()
    })
    .unwrap_or_default()
}

/// Parses a JWKS document into verification keys for `issuer`, skipping (and logging) keys it cannot use:
/// encryption keys, symmetric keys, unsupported curves or algorithms.
pub fn parse_jwks(issuer: &Arc<Issuer>, text: &str) -> Vec<Arc<VerifyKey>> {
    let set: JwkSet = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(issuer = %issuer.issuer, reason = "jwks_invalid", "JWKS is not valid: {e}");
            return Vec::new();
        }
    };
    set.keys
        .iter()
        .filter_map(|jwk| verify_key(issuer, jwk))
        .map(Arc::new)
        .collect()
}

fn verify_key(issuer: &Arc<Issuer>, jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
            _ => None,
        },
        // Symmetric keys can never verify a third party's token.
        AlgorithmParameters::OctetKey(_) => None,
    }?;
    let alg = match jwk.common.key_algorithm {
        None => implied,
        Some(declared) => {
            let declared = match declared {
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => return None,
            };
            // The declared algorithm must belong to the key's family (RSA may name RS*/PS*).
            let same_family = match implied {
                Algorithm::RS256 => matches!(
                    declared,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ),
                other => declared == other,
            };
            if !same_family {
                return None;
            }
            declared
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer.issuer.as_str()]);
    validation.leeway = issuer.leeway_seconds;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    if matches!(issuer.keys, KeySource::Local) {
        // idguard's own tokens have one audience each — the proxy's, an agent's, or a service's — and the
        // route decides which it needs (`Identity::audience`); a single value is still required.
        validation.validate_aud = false;
    } else {
        validation.set_audience(&[issuer.audience.as_str()]);
    }
    Some(VerifyKey {
        issuer: issuer.clone(),
        kid: jwk.common.key_id.clone(),
        alg,
        key,
        validation,
    })
}
