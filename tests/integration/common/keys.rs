//! Signing keys for a test issuer (ES256, RS256, EdDSA), their JWKS, and token builders, including raw ones
//! for attacks that serde cannot express (duplicate keys, `alg: none`).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "idguard-proxy-test";

pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// Private key bytes (PKCS#8 DER), for canary sweeps.
    pub private_der: Vec<u8>,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let p = pair.public_key().as_ref();
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty":"EC","crv":"P-256","kid":kid,"use":"sig","x":b64(&p[1..33]),"y":b64(&p[33..65])}),
            private_der: pkcs8.as_ref().to_vec(),
        }
    }

    pub fn eddsa(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty":"OKP","crv":"Ed25519","kid":kid,"x":b64(pair.public_key().as_ref())}),
            private_der: pkcs8.as_ref().to_vec(),
        }
    }

    pub fn rs256(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk: json!({"kty":"RSA","kid":kid,"n":b64(&n),"e":b64(&e)}),
            private_der: pkcs8.as_ref().to_vec(),
        }
    }

    pub fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
            _ => unreachable!(),
        }
    }

    /// A standard access token: header `{alg, typ: at+jwt, kid}` and the given claims.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg_name(), "typ": "at+jwt", "kid": self.kid});
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// Signs exactly these header and payload bytes.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{message}.{signature}")
    }
}

pub fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid claims for `agent` with `scope`.
pub fn claims(agent: &str, scope: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": agent, "client_id": agent, "scope": scope,
        "iat": now, "exp": now + 600, "jti": format!("jti-{agent}-{}", rand_hex(8)),
    })
}

pub fn rand_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
