//! The identity service's signing keys: ES256, one per rotation period, derived from a seed every replica shares
//! (`IdentityStore::shared_secret`). Deriving instead of storing keeps replicas in agreement without any coordination:
//! each computes the same key for the same period. The JWKS publishes the current key, the next one (so
//! verifiers that cache keys already hold it when rotation comes), and every earlier key that may still have
//! signed a live token — a retired key stays until the last token it signed has expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use zeroize::Zeroizing;

/// One period's key.
pub struct SigningKey {
    /// `kid`: the period and a digest of the public key.
    pub kid: String,
    encoding: EncodingKey,
    /// The public half as a JWK.
    pub jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key schedule.
pub struct SigningKeys {
    seed: Zeroizing<[u8; 32]>,
    rotation: u64,
    keys: Mutex<HashMap<u64, Arc<SigningKey>>>,
}

/// Signing failed (a key could not be derived or the claims not encoded). Never expected.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

impl SigningKeys {
    /// A schedule over `seed`, one key per `rotation_seconds`.
    pub fn new(seed: [u8; 32], rotation_seconds: u64) -> Self {
        Self {
            seed: Zeroizing::new(seed),
            rotation: rotation_seconds.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The key that signs at `now`.
    ///
    /// # Errors
    /// [`SignError`] if the key cannot be derived.
    pub fn current(&self, now: u64) -> Result<Arc<SigningKey>, SignError> {
        self.key(now / self.rotation)
    }

    /// Signs `claims` as a JWT with `typ`, using the current key.
    ///
    /// # Errors
    /// [`SignError`].
    pub fn sign(&self, claims: &impl Serialize, typ: &str, now: u64) -> Result<String, SignError> {
        let key = self.current(now)?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| SignError(e.to_string()))
    }

    /// The published keys at `now` for tokens living at most `max_ttl` seconds.
    pub fn jwks(&self, now: u64, max_ttl: u64) -> JwkSet {
        let current = now / self.rotation;
        let first = current.saturating_sub(max_ttl / self.rotation + 1);
        let keys = (first..=current + 1)
            // Period p's key signs until (p + 1) * rotation; its tokens live max_ttl beyond that.
            .filter(|&p| p >= current || (p + 1) * self.rotation + max_ttl > now)
            .filter_map(|p| self.key(p).ok())
            .map(|k| k.jwk.clone())
            .collect();
        JwkSet { keys }
    }

    fn key(&self, period: u64) -> Result<Arc<SigningKey>, SignError> {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = keys.get(&period) {
            return Ok(k.clone());
        }
        let key = Arc::new(derive(&self.seed, period)?);
        // Keep the cache small: only periods around the ones in use are ever asked for.
        if keys.len() > 16 {
            keys.retain(|p, _| p.abs_diff(period) <= 4);
        }
        keys.insert(period, key.clone());
        Ok(key)
    }
}

/// Derives period `period`'s P-256 key: the private scalar is HMAC-SHA256(seed, label), retried with a counter in
/// the (2^-32) case that it is not a valid scalar.
fn derive(seed: &[u8; 32], period: u64) -> Result<SigningKey, SignError> {
    let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, seed);
    for counter in 0u8..8 {
        let label = format!("idguard signing key\n{period}\n{counter}");
        let tag = aws_lc_rs::hmac::sign(&hmac, label.as_bytes());
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(tag.as_ref());
        // RFC 5915 ECPrivateKey without the optional public key; aws-lc computes it.
        let mut der = Zeroizing::new(Vec::with_capacity(51));
        der.extend_from_slice(&[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
        der.extend_from_slice(scalar.as_slice());
        der.extend_from_slice(&[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        let Ok(pair) = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        else {
            continue;
        };
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| SignError("pkcs8 encoding".into()))?;
        let public = pair.public_key().as_ref();
        if public.len() != 65 {
            return Err(SignError("unexpected public key encoding".into()));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public);
        let kid = format!(
            "idg-{period}-{}",
            digest.as_ref()[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::ES256),
                key_id: Some(kid.clone()),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(&public[1..33]),
                y: URL_SAFE_NO_PAD.encode(&public[33..65]),
            }),
        };
        return Ok(SigningKey {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        });
    }
    Err(SignError("no valid scalar".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_sign_verifiably_and_rotate() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let keys = SigningKeys::new([7; 32], 100);
        let again = SigningKeys::new([7; 32], 100);
        let now = 10_050;
        let a = keys.current(now).unwrap();
        assert_eq!(a.kid, again.current(now).unwrap().kid, "replicas agree");
        assert_ne!(a.kid, keys.current(now + 100).unwrap().kid, "rotates");
        let token = keys
            .sign(
                &serde_json::json!({"sub": "x", "exp": now + 60}),
                idguard_config::defaults::ACCESS_TOKEN_TYP,
                now,
            )
            .unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&a.jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &v).unwrap();
        // Period 100 is current, 101 is next; 99 retired at 10_000 but its tokens (ttl 300) still live.
        let kids: Vec<_> = keys
            .jwks(now, 300)
            .keys
            .into_iter()
            .filter_map(|k| k.common.key_id)
            .collect();
        // 97's last token expires at 10_100, 96's at 10_000: gone.
        assert_eq!(kids.len(), 5, "{kids:?}");
        assert!(kids.iter().any(|k| k.starts_with("idg-97-")));
        assert!(kids.iter().any(|k| k.starts_with("idg-99-")));
        assert!(kids.iter().any(|k| k.starts_with("idg-101-")));
        // With a short ttl the retired key is dropped once its last token has expired.
        let kids: Vec<_> = keys
            .jwks(now, 10)
            .keys
            .into_iter()
            .filter_map(|k| k.common.key_id)
            .collect();
        assert!(!kids.iter().any(|k| k.starts_with("idg-99-")), "{kids:?}");
    }
}
