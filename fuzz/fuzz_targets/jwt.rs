//! The token verifier (`proxy/src/verify.rs`): the strict header parse, the `kid`/`alg` match, jsonwebtoken's
//! checks and the claim rules after the signature, with a fixed key set of two issuers (one JWKS file, one local).
//!
//! Input: one mode byte, then the header JSON, a NUL byte, and the claims JSON.
//! - mode 0: the rest is the whole token text. It must never verify: nothing can sign for the test keys.
//! - mode 1 / 2: the harness signs header and claims as given with the file issuer's / the local issuer's key,
//!   so the fuzzer reaches the claim rules; a token that verifies must satisfy every rule the verifier promises.
//! - mode 3: the same, signed by a rogue key that reuses the file key's `kid`. It must never verify.
//!
//! Never panics in any mode.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::Clock;
use idguard_config::snapshot::{Issuer, KeySource};
use idguard_proxy::keys::{FetchFuture, JwksFetch, KeyStore};
use idguard_proxy::verify::{Attempt, Identity, Verifier};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::{Map, Value};

const FILE_ISSUER: &str = "https://issuer.test";
const LOCAL_ISSUER: &str = "https://idguard.test";
const AUDIENCE: &str = "idguard-proxy-test";
const LEEWAY: u64 = 30;

struct Harness {
    verifier: Verifier,
    file_key: Ed25519KeyPair,
    local_key: Ed25519KeyPair,
    rogue_key: Ed25519KeyPair,
}

struct NoFetch;

impl JwksFetch for NoFetch {
    fn fetch(&self, _url: &str) -> FetchFuture {
        Box::pin(async { Err("the fuzz harness fetches nothing".to_owned()) })
    }
}

fn ed25519() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key generation");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key parse")
}

fn jwk(key: &Ed25519KeyPair, kid: &str) -> Value {
    serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
    })
}

fn issuer(name: &str, keys: KeySource) -> Arc<Issuer> {
    Arc::new(Issuer {
        issuer: name.into(),
        audience: AUDIENCE.into(),
        keys,
        accepted_typ: vec![idguard_config::defaults::ACCESS_TOKEN_TYP.into()],
        leeway_seconds: LEEWAY,
        jwks_refresh: Duration::from_secs(300),
    })
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let (file_key, local_key, rogue_key) = (ed25519(), ed25519(), ed25519());
    let dir = std::env::temp_dir().join(format!("idguard-fuzz-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [jwk(&file_key, "file")]}).to_string(),
    )
    .expect("jwks");
    let store = Arc::new(KeyStore::new(Arc::new(NoFetch)));
    store.set_issuers(&[
        issuer(FILE_ISSUER, KeySource::File(jwks)),
        issuer(LOCAL_ISSUER, KeySource::Local),
    ]);
    let local = serde_json::from_value(serde_json::json!({"keys": [jwk(&local_key, "local")]}))
        .expect("jwk set");
    store.set_local_keys(Arc::new(local));
    // No cache: every attempt is a full verification of the bytes at hand.
    let verifier = Verifier::new(store, 0, Clock::system());
    Harness {
        verifier,
        file_key,
        local_key,
        rogue_key,
    }
});

fn sign(key: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = key.sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let h = &*HARNESS;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (header, claims) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    match mode % 4 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            if let Attempt::Verified(_) = h.verifier.attempt(token) {
                panic!("an unsigned token verified: {token:?}");
            }
        }
        3 => {
            let token = sign(&h.rogue_key, header, claims);
            if let Attempt::Verified(_) = h.verifier.attempt(&token) {
                panic!("a token signed by a rogue key verified: {token:?}");
            }
        }
        m => {
            let (key, iss) = if m == 1 {
                (&h.file_key, FILE_ISSUER)
            } else {
                (&h.local_key, LOCAL_ISSUER)
            };
            let token = sign(key, header, claims);
            if let Attempt::Verified(id) = h.verifier.attempt(&token) {
                assert_rules(&id, header, claims, iss, m == 2);
            }
        }
    }
});

/// The header members the verifier reads; `crit` is there when the member is, whatever its value.
#[derive(Deserialize)]
struct HeaderMembers {
    alg: Option<Value>,
    typ: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<()>,
}

/// The claims the verifier reads.
#[derive(Deserialize)]
struct Members {
    iss: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    client_id: Option<Value>,
    sub: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| Some(()))
}

impl Members {
    fn into_map(self) -> Map<String, Value> {
        [
            ("iss", self.iss),
            ("aud", self.aud),
            ("exp", self.exp),
            ("nbf", self.nbf),
            ("client_id", self.client_id),
            ("sub", self.sub),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .collect()
    }
}

/// What a verified token must be, whatever bytes were signed.
fn assert_rules(id: &Identity, header: &[u8], claims: &[u8], iss: &str, local: bool) {
    // Members the verifier does not read are skipped without checking their text (serde_json does so, and so
    // does jsonwebtoken), so only the members it reads are parsed here.
    let header: HeaderMembers =
        serde_json::from_slice(header).expect("a verified header is a JSON object");
    assert_eq!(
        header.alg,
        Some(Value::from("EdDSA")),
        "the key's algorithm only"
    );
    assert!(header.crit.is_none(), "crit is refused");
    let typ = header
        .typ
        .as_ref()
        .and_then(Value::as_str)
        .expect("typ is required");
    assert_eq!(idguard_config::validate::normalize_typ(typ), "at+jwt");
    let claims: Members =
        serde_json::from_slice(claims).expect("verified claims are a JSON object");
    let claims: Map<String, Value> = claims.into_map();
    assert_eq!(claims.get("iss"), Some(&Value::from(iss)));
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .expect("exp is a number");
    assert_eq!(id.exp, exp);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    assert!(exp + LEEWAY >= now, "expired");
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_u64) {
        assert!(nbf <= now + LEEWAY, "not yet valid");
    }
    let audience = match claims.get("aud") {
        Some(Value::String(a)) => a.clone(),
        Some(Value::Array(list)) => {
            let first = list
                .first()
                .and_then(Value::as_str)
                .expect("a non-empty list of strings");
            assert!(
                list.iter().all(|a| a.as_str() == Some(first)),
                "one audience only: {list:?}"
            );
            first.to_owned()
        }
        other => panic!("aud must be a string or a list: {other:?}"),
    };
    assert_eq!(&*id.audience, audience);
    assert_eq!(id.local, local);
    assert_eq!(id.for_proxy, audience == AUDIENCE);
    assert!(
        local || id.for_proxy,
        "another issuer's token is for this proxy only"
    );
    let agent = ["client_id", "sub"]
        .iter()
        .find_map(|name| claims.get(*name).and_then(Value::as_str))
        .expect("an agent");
    assert_eq!(&*id.agent, agent);
    assert!(
        !agent.is_empty()
            && agent.len() <= 128
            && agent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)),
        "agent id shape: {agent:?}"
    );
    if let Some(user) = &id.user {
        assert!(!user.is_empty() && user.len() <= 256 && **user != *agent);
    }
}
