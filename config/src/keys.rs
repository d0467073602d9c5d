//! Registered public keys and secret digests as the file and the admin API give them: a JWK or PEM becomes a
//! [`PublicKey`] with a fixed algorithm; a client secret's hex digest becomes its bytes. Private and symmetric
//! keys are refused here, so no other code has to.

use crate::raw::RawPublicKey;
use crate::snapshot::PublicKey;

/// Normalizes a registered key to a JWK with a fixed algorithm: EC P-256 → ES256, RSA → RS256, Ed25519 → EdDSA.
/// Symmetric keys and private keys are refused.
pub fn public_key(k: &RawPublicKey) -> Result<PublicKey, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
    let mut jwk: Jwk = match (&k.jwk, &k.pem) {
        (Some(v), None) => {
            if v.get("d").is_some() {
                return Err("this JWK holds a private key; register the public key only".into());
            }
            serde_json::from_value(v.clone()).map_err(|e| format!("not a JWK: {e}"))?
        }
        (None, Some(pem)) => jwk_from_pem(pem)?,
        _ => return Err("set exactly one of jwk and pem".into()),
    };
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => "ES256",
        AlgorithmParameters::RSA(_) => "RS256",
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => "EdDSA",
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys cannot be registered".into());
        }
        _ => return Err("only EC P-256, RSA and Ed25519 keys are supported".into()),
    };
    jwk.common.key_id = Some(k.id.clone());
    Ok(PublicKey {
        id: k.id.clone(),
        alg,
        jwk,
    })
}

/// An EC P-256 or Ed25519 public key in PEM (SubjectPublicKeyInfo) as a JWK. RSA keys are registered as JWKs.
fn jwk_from_pem(pem: &str) -> Result<jsonwebtoken::jwk::Jwk, String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if pem.contains("PRIVATE KEY") {
        return Err("this PEM holds a private key; register the public key only".into());
    }
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| "the PEM is not base64".to_string())?;
    // The algorithm OID says what the key is; the key bytes close the structure.
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    let json = if contains(P256) && der.len() == 91 && der[26] == 0x04 {
        let point = &der[26..];
        serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
    } else if contains(ED25519) && der.len() == 44 {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&der[12..])})
    } else {
        return Err(
            "a PEM key must be an EC P-256 or Ed25519 public key (register RSA keys as a JWK)"
                .into(),
        );
    };
    serde_json::from_value(json).map_err(|e| e.to_string())
}

/// A client secret's HMAC-SHA256 digest written as 64 hex characters, as its 32 bytes; `None` for anything else.
pub(crate) fn decode_hex32(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..32)
        .map(|j| u8::from_str_radix(&text[2 * j..2 * j + 2], 16).ok())
        .collect()
}
