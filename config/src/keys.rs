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
        AlgorithmParameters::RSA(p) => {
            use base64::Engine;
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.n.trim_end_matches('='))
                .map_err(|_| "the JWK's n is not base64url".to_string())?;
            let start = n.iter().position(|b| *b != 0).unwrap_or(n.len());
            check_rsa_modulus(&n[start..])?;
            "RS256"
        }
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

/// A public key in PEM as a JWK: a SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) holding an EC P-256, Ed25519 or RSA
/// key, or a PKCS#1 `BEGIN RSA PUBLIC KEY`.
fn jwk_from_pem(pem: &str) -> Result<jsonwebtoken::jwk::Jwk, String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if pem.contains("PRIVATE KEY") {
        return Err("this PEM holds a private key; register the public key only".into());
    }
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| "the PEM is not base64".to_string())?;
    let json = if pem.contains("BEGIN RSA PUBLIC KEY") {
        rsa_jwk(&der)?
    } else {
        // The algorithm OID says what the key is; the key bytes close the structure.
        const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        if contains(P256) && der.len() == 91 && der[26] == 0x04 {
            let point = &der[26..];
            serde_json::json!({"kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
        } else if contains(ED25519) && der.len() == 44 {
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&der[12..])})
        } else if let Some(rsa) = rsa_spki(&der) {
            rsa_jwk(rsa)?
        } else {
            return Err(
                "a PEM key must be an EC P-256, RSA or Ed25519 public key (SubjectPublicKeyInfo, \
                 \"BEGIN PUBLIC KEY\")"
                    .into(),
            );
        }
    };
    serde_json::from_value(json).map_err(|e| e.to_string())
}

/// The `RSAPublicKey` inside an RSA SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { OID rsaEncryption, NULL },
/// BIT STRING { 0 unused bits, RSAPublicKey } }`; `None` for any other structure.
fn rsa_spki(der: &[u8]) -> Option<&[u8]> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (spki, rest) = der_read(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (algorithm, rest) = der_read(spki, 0x30)?;
    let (oid, _params) = der_read(algorithm, 0x06)?;
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (bits, rest) = der_read(rest, 0x03)?;
    match (bits.split_first(), rest.is_empty()) {
        (Some((0, key)), true) => Some(key),
        _ => None,
    }
}

/// A PKCS#1 `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`) as a JWK's JSON. The modulus must be 2048 to
/// 8192 bits: what RS256 verification accepts.
fn rsa_jwk(der: &[u8]) -> Result<serde_json::Value, String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let malformed = || "the PEM's RSA key is malformed".to_string();
    let (seq, rest) = der_read(der, 0x30).ok_or_else(malformed)?;
    let (n, after_n) = der_read(seq, 0x02).ok_or_else(malformed)?;
    let (e, after_e) = der_read(after_n, 0x02).ok_or_else(malformed)?;
    if !rest.is_empty() || !after_e.is_empty() {
        return Err(malformed());
    }
    // DER integers are signed: a leading zero keeps a high bit positive and is not part of the value.
    let unsigned = |i: &'_ [u8]| -> Vec<u8> {
        let start = i.iter().position(|b| *b != 0).unwrap_or(i.len());
        i[start..].to_vec()
    };
    let (n, e) = (unsigned(n), unsigned(e));
    check_rsa_modulus(&n)?;
    if e.is_empty() {
        return Err(malformed());
    }
    Ok(
        serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e)}),
    )
}

/// RS256 verification takes moduli of 2048 to 8192 bits; a key outside that could be registered but never verify.
fn check_rsa_modulus(n: &[u8]) -> Result<(), String> {
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if (2048..=8192).contains(&bits) {
        Ok(())
    } else {
        Err(format!(
            "an RSA key must be 2048 to 8192 bits; this one has {bits}"
        ))
    }
}

/// One DER element of `tag` at the start of `der`: its contents and what follows it.
fn der_read(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    fn raw(pem: String) -> RawPublicKey {
        RawPublicKey {
            id: "k1".into(),
            jwk: None,
            pem: Some(pem),
        }
    }

    #[test]
    fn an_rsa_public_key_in_pem_is_the_same_key_as_its_jwk() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let spki = AsDer::<PublicKeyX509Der>::as_der(public).unwrap();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let key = public_key(&raw(pem("PUBLIC KEY", spki.as_ref()))).unwrap();
        assert_eq!(key.alg, "RS256");
        let json = serde_json::to_value(&key.jwk).unwrap();
        assert_eq!(
            (json["n"].as_str(), json["e"].as_str()),
            (Some(&*n), Some(&*e))
        );
        assert_eq!(json["kid"], "k1");
        // PKCS#1 ("BEGIN RSA PUBLIC KEY") is the same key without the algorithm wrapper.
        let pkcs1 = rsa_spki(spki.as_ref()).unwrap();
        let key = public_key(&raw(pem("RSA PUBLIC KEY", pkcs1))).unwrap();
        assert_eq!(serde_json::to_value(&key.jwk).unwrap()["n"], json["n"]);
    }

    #[test]
    fn rsa_keys_that_could_never_verify_and_broken_der_are_refused_by_name() {
        // SEQUENCE { INTEGER (1024-bit n), INTEGER 65537 }.
        let mut der = vec![0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00];
        der.extend([0xc3; 128]);
        der.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let err = public_key(&raw(pem("RSA PUBLIC KEY", &der))).unwrap_err();
        assert!(
            err.contains("2048 to 8192 bits; this one has 1024"),
            "{err}"
        );
        let err = public_key(&raw(pem("RSA PUBLIC KEY", &der[..40]))).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        let err = public_key(&raw(pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x01]))).unwrap_err();
        assert!(err.contains("EC P-256, RSA or Ed25519"), "{err}");
        let err = public_key(&raw(pem("PRIVATE KEY", &der))).unwrap_err();
        assert!(err.contains("private key"), "{err}");
    }
}
