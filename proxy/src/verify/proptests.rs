//! Properties of the strict header parse and what follows it, with one Ed25519 key (`kid` "k") of a local issuer
//! and valid claims: over generated headers the outcome is exactly the one the rules give (a duplicate member is
//! malformed, any `crit` member is refused, an unknown `kid` asks for a refresh, an algorithm other than the
//! key's is refused, then `typ` is checked); a token changed in any one byte, or signed by another key under the
//! same `kid`, never verifies; arbitrary text never panics. The fuzz target `fuzz/fuzz_targets/jwt.rs` goes on
//! from here with arbitrary headers and claims.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use idguard_config::snapshot::{Issuer, KeySource};
use proptest::prelude::*;

use super::*;
use crate::keys::{FetchFuture, JwksFetch};

const ISSUER: &str = "https://idguard.test";
const AUDIENCE: &str = "idguard-proxy-test";

struct NoFetch;

impl JwksFetch for NoFetch {
    fn fetch(&self, _url: &str) -> FetchFuture {
        Box::pin(async { Err("no fetch in property tests".to_owned()) })
    }
}

struct Fixture {
    verifier: Verifier,
    key: Ed25519KeyPair,
    rogue: Ed25519KeyPair,
    claims: String,
}

fn ed25519() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let (key, rogue) = (ed25519(), ed25519());
    let store = Arc::new(KeyStore::new(Arc::new(NoFetch)));
    store.set_issuers(&[Arc::new(Issuer {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        keys: KeySource::Local,
        accepted_typ: vec![idguard_config::defaults::ACCESS_TOKEN_TYP.into()],
        leeway_seconds: 30,
        jwks_refresh: Duration::from_secs(300),
    })]);
    let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": x}]});
    store.set_local_keys(Arc::new(serde_json::from_value(jwks).unwrap()));
    let exp = Clock::system().now() + 3600;
    let claims =
        serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": exp, "client_id": "agent-1"});
    Fixture {
        // No cache: every attempt verifies in full.
        verifier: Verifier::new(store, 0, Clock::system()),
        key,
        rogue,
        claims: claims.to_string(),
    }
});

fn sign(key: &Ed25519KeyPair, header: &str, claims: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()).as_ref());
    format!("{message}.{signature}")
}

#[derive(Debug, Clone)]
struct Header {
    alg: &'static str,
    kid: Option<&'static str>,
    typ: Option<&'static str>,
    crit: Option<&'static str>,
    extra: Option<&'static str>,
    duplicate: Option<&'static str>,
}

impl Header {
    fn json(&self) -> String {
        let mut members = vec![format!("\"alg\":\"{}\"", self.alg)];
        members.extend(self.kid.map(|k| format!("\"kid\":\"{k}\"")));
        members.extend(self.typ.map(|t| format!("\"typ\":\"{t}\"")));
        members.extend(self.crit.map(|c| format!("\"crit\":{c}")));
        members.extend(self.extra.map(str::to_owned));
        members.extend(self.duplicate.map(|d| format!("\"{d}\":\"EdDSA\"")));
        format!("{{{}}}", members.join(","))
    }

    /// What the verifier must answer, from the rules in the order it applies them.
    fn expected(&self) -> Result<(), Option<TokenReason>> {
        if self.duplicate.is_some_and(|d| {
            d == "alg" || (d == "kid" && self.kid.is_some()) || (d == "typ" && self.typ.is_some())
        }) {
            return Err(Some(TokenReason::Malformed));
        }
        if self.crit.is_some() {
            return Err(Some(TokenReason::UnsupportedCrit));
        }
        let kid = match self.duplicate {
            Some("kid") => Some("EdDSA"),
            _ => self.kid,
        };
        if kid != Some("k") {
            return Err(None);
        }
        if self.alg != "EdDSA" {
            return Err(Some(TokenReason::AlgNotAllowed));
        }
        let typ = match self.duplicate {
            Some("typ") => Some("EdDSA"),
            _ => self.typ,
        };
        if typ.map(normalize) != Some("at+jwt".to_owned()) {
            return Err(Some(TokenReason::BadTyp));
        }
        Ok(())
    }
}

fn normalize(typ: &str) -> String {
    idguard_config::validate::normalize_typ(typ)
}

fn header() -> impl Strategy<Value = Header> {
    let alg = prop::sample::select(vec![
        "EdDSA", "eddsa", "ES256", "RS256", "HS256", "none", "",
    ]);
    let kid = prop::option::of(prop::sample::select(vec!["k", "K", "other", ""]));
    let typ = prop::option::of(prop::sample::select(vec![
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        " at+jwt ",
        "JWT",
        "jwt",
        "",
    ]));
    let crit = prop::option::weighted(
        0.2,
        prop::sample::select(vec!["[\"exp\"]", "[]", "null", "{}", "1"]),
    );
    let extra = prop::option::weighted(
        0.3,
        prop::sample::select(vec![
            "\"jku\":\"https://evil.example/jwks\"",
            "\"x5u\":\"https://evil.example/x5u\"",
            // RFC 8037's example public key: an embedded key is never used.
            "\"jwk\":{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
            "\"cty\":\"JWT\"",
        ]),
    );
    let duplicate = prop::option::weighted(0.15, prop::sample::select(vec!["alg", "kid", "typ"]));
    (alg, kid, typ, crit, extra, duplicate).prop_map(|(alg, kid, typ, crit, extra, duplicate)| {
        Header {
            alg,
            kid,
            typ,
            crit,
            extra,
            duplicate,
        }
    })
}

fn outcome(attempt: Attempt) -> Result<(), Option<TokenReason>> {
    match attempt {
        Attempt::Verified(_) => Ok(()),
        Attempt::Rejected(reason) => Err(Some(reason)),
        Attempt::UnknownKid => Err(None),
    }
}

/// Found by the property tests: `"crit": null` was read as no `crit` member at all.
#[test]
fn a_crit_member_is_refused_whatever_its_value() {
    let f = &*FIXTURE;
    for crit in ["null", "[]", "[\"exp\"]", "{}", "\"x\""] {
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"k","crit":{crit}}}"#);
        let token = sign(&f.key, &header, &f.claims);
        assert_eq!(
            outcome(f.verifier.attempt(&token)),
            Err(Some(TokenReason::UnsupportedCrit)),
            "{header}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_header_rules_decide_exactly(header in header()) {
        let f = &*FIXTURE;
        let token = sign(&f.key, &header.json(), &f.claims);
        prop_assert_eq!(outcome(f.verifier.attempt(&token)), header.expected(), "{}", header.json());
    }

    #[test]
    fn a_changed_byte_or_another_key_never_verifies(at in any::<prop::sample::Index>(), to in 0x20u8..0x7f) {
        let f = &*FIXTURE;
        let header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k"}"#;
        let good = sign(&f.key, header, &f.claims);
        prop_assert!(matches!(f.verifier.attempt(&good), Attempt::Verified(_)));
        let rogue = sign(&f.rogue, header, &f.claims);
        prop_assert_eq!(outcome(f.verifier.attempt(&rogue)), Err(Some(TokenReason::BadSignature)));
        let i = at.index(good.len());
        prop_assume!(good.as_bytes()[i] != to);
        let mut bytes = good.into_bytes();
        bytes[i] = to;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(!matches!(f.verifier.attempt(&changed), Attempt::Verified(_)), "{}", changed);
    }

    #[test]
    fn arbitrary_text_never_verifies(token in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}",
    ]) {
        prop_assert!(!matches!(FIXTURE.verifier.attempt(&token), Attempt::Verified(_)));
    }
}
