//! Token verification and topology authorization: corpus sections B01–B10 and C01–C02, all three algorithms,
//! unknown and disabled agents, and the JWKS refetch limit against a real TLS JWKS endpoint.

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys};
use crate::common::keys::{AUDIENCE, ISSUER, SigningKey, b64, claims, now, rand_hex};
use crate::common::mock::{Behavior, Mock};
use crate::common::tls::TestCa;

async fn call(h: &Harness, headers: &[(&str, &str)]) -> (u16, Value, Option<String>) {
    let (status, hdrs, body) = get(&h.url("/llm/openai/models"), headers).await;
    let www = hdrs
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        www,
    )
}

async fn with_token(h: &Harness, token: &str) -> u16 {
    call(h, &[("authorization", &bearer(token))]).await.0
}

async fn standard() -> (Mock, Harness) {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    (mock, h)
}

fn es() -> &'static SigningKey {
    &keys().es256
}

#[tokio::test]
async fn es256_rs256_and_eddsa_tokens_are_accepted() {
    let (mock, h) = standard().await;
    // No [identity] here: the identity service's paths are not found (the proxy trusts [[issuers]] only).
    for path in ["/oauth2/token", "/.well-known/jwks.json"] {
        assert_eq!(get(&h.url(path), &[]).await.0, 404, "{path}");
    }
    for key in [&keys().es256, &keys().rs256, &keys().eddsa] {
        let token = key.token(&claims("agent-1", ""));
        assert_eq!(with_token(&h, &token).await, 200, "{}", key.alg_name());
        // A second sight is served from the verified-token cache and must agree.
        assert_eq!(
            with_token(&h, &token).await,
            200,
            "{} repeat",
            key.alg_name()
        );
    }
    assert_eq!(mock.count(), 6);
}

#[tokio::test]
async fn b01_missing_or_misplaced_tokens() {
    let (mock, h) = standard().await;
    let token = es().token(&claims("agent-1", ""));
    for headers in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
    ] {
        let (status, body, www) = call(&h, &headers).await;
        assert_eq!(status, 401, "{headers:?}");
        assert!(www.unwrap().starts_with("Bearer"), "{headers:?}");
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    // A token in the query string, alone or beside a header token.
    let (status, _, _) = get(
        &h.url(&format!("/llm/openai/models?access_token={token}")),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = get(
        &h.url(&format!("/llm/openai/models?access_token={token}")),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 400);
    // Two Authorization headers; two different tokens in two slots.
    let other = es().token(&claims("agent-1", "x"));
    let (status, body, _) = call(
        &h,
        &[
            ("authorization", &bearer(&token)),
            ("authorization", &bearer(&token)),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, _) = call(
        &h,
        &[("authorization", &bearer(&token)), ("x-api-key", &other)],
    )
    .await;
    assert_eq!(status, 400);
    // Every slot an SDK uses is accepted on its own.
    for slot in ["x-api-key", "api-key", "x-goog-api-key"] {
        assert_eq!(call(&h, &[(slot, &token)]).await.0, 200, "{slot}");
    }
    assert_eq!(mock.count(), 3);
}

#[tokio::test]
async fn b02_signature_attacks() {
    let (mock, h) = standard().await;
    let token = es().token(&claims("agent-1", ""));
    // One bit flipped in the signature, and in the payload.
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 3;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        with_token(&h, &String::from_utf8(flipped).unwrap()).await,
        401
    );
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["client_id"] = json!("agent-2");
    assert_eq!(
        with_token(
            &h,
            &format!(
                "{}.{}.{}",
                parts[0],
                b64(payload.to_string().as_bytes()),
                parts[2]
            )
        )
        .await,
        401
    );
    // alg: none.
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": "es-1"}).to_string();
    let unsigned = format!(
        "{}.{}.",
        b64(header.as_bytes()),
        b64(claims("agent-1", "").to_string().as_bytes())
    );
    assert_eq!(with_token(&h, &unsigned).await, 401);
    // HS256 keyed with the issuer's public key (as JWK JSON and as the raw x coordinate).
    for secret in [
        es().jwk.to_string(),
        es().jwk["x"].as_str().unwrap().to_owned(),
    ] {
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "es-1"}).to_string();
        let msg = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims("agent-1", "").to_string().as_bytes())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, msg.as_bytes());
        assert_eq!(
            with_token(&h, &format!("{msg}.{}", b64(tag.as_ref()))).await,
            401
        );
    }
    // Right kid, wrong key.
    assert_eq!(
        with_token(&h, &keys().rogue.token(&claims("agent-1", ""))).await,
        401
    );
    assert_eq!(mock.count(), 0);
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

#[tokio::test]
async fn b03_b04_b05_time_and_required_claims() {
    let (mock, h) = standard().await;
    let base = claims("agent-1", "");
    let now = now() as i64;
    let refused: Vec<(&str, Value)> = vec![
        (
            "expired beyond leeway",
            with(base.clone(), "exp", json!(now - 120)),
        ),
        ("exp 0", with(base.clone(), "exp", json!(0))),
        ("exp 1", with(base.clone(), "exp", json!(1))),
        ("exp negative", with(base.clone(), "exp", json!(-5))),
        ("exp 1e300", with(base.clone(), "exp", json!(1e300))),
        ("exp string", with(base.clone(), "exp", json!("never"))),
        ("exp null", with(base.clone(), "exp", Value::Null)),
        ("exp array", with(base.clone(), "exp", json!([now + 600]))),
        ("exp missing", without(base.clone(), "exp")),
        ("nbf future", with(base.clone(), "nbf", json!(now + 300))),
        (
            "nbf string",
            with(base.clone(), "nbf", json!(format!("{}", now - 10))),
        ),
        ("aud missing", without(base.clone(), "aud")),
        ("iss missing", without(base.clone(), "iss")),
        (
            "iss other",
            with(base.clone(), "iss", json!("https://evil.test")),
        ),
        (
            "no agent",
            without(without(base.clone(), "sub"), "client_id"),
        ),
        (
            "agent with CRLF",
            with(
                with(base.clone(), "client_id", json!("agent-1\r\nX-Api-Key: x")),
                "sub",
                json!("x"),
            ),
        ),
    ];
    for (name, c) in refused {
        let (status, body, www) = call(&h, &[("authorization", &bearer(&es().token(&c)))]).await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(
            www.as_deref(),
            Some(r#"Bearer realm="idguard", error="invalid_token""#),
            "{name}"
        );
        assert_eq!(body["error"]["code"], "invalid_token", "{name}");
    }
    assert_eq!(mock.count(), 0);
    // Within the leeway is still good.
    assert_eq!(
        with_token(&h, &es().token(&with(base.clone(), "exp", json!(now - 10)))).await,
        200
    );
    assert_eq!(
        with_token(&h, &es().token(&with(base, "nbf", json!(now + 10)))).await,
        200
    );
}

#[tokio::test]
async fn b06_single_audience_policy() {
    let (_mock, h) = standard().await;
    let base = claims("agent-1", "");
    assert_eq!(
        with_token(
            &h,
            &es().token(&with(base.clone(), "aud", json!("another-agent")))
        )
        .await,
        401
    );
    assert_eq!(
        with_token(
            &h,
            &es().token(&with(
                base.clone(),
                "aud",
                json!([AUDIENCE, "another-agent"])
            ))
        )
        .await,
        401
    );
    assert_eq!(
        with_token(&h, &es().token(&with(base, "aud", json!([AUDIENCE])))).await,
        200
    );
}

#[tokio::test]
async fn b07_typ_is_compared_as_a_media_type() {
    let (_mock, h) = standard().await;
    let payload = claims("agent-1", "").to_string();
    let token = |typ: Option<&str>| {
        let mut header = json!({"alg": "ES256", "kid": "es-1"});
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        es().sign_raw(&header.to_string(), &payload)
    };
    for bad in [
        Some("JWT"),
        None,
        Some("client-authentication+jwt"),
        Some("at+jwt+x"),
    ] {
        assert_eq!(with_token(&h, &token(bad)).await, 401, "{bad:?}");
    }
    for good in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        assert_eq!(with_token(&h, &token(Some(good))).await, 200, "{good}");
    }
}

#[tokio::test]
async fn b08_c01_a_valid_token_without_an_edge_is_forbidden_before_any_upstream_call() {
    let (mock, h) = standard().await;
    let (status, body, www) = call(
        &h,
        &[(
            "authorization",
            &bearer(&es().token(&claims("agent-2", "llm.use"))),
        )],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "no_edge");
    assert!(www.unwrap().contains("insufficient_scope"));
    assert_eq!(mock.count(), 0);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains(r#"idguard_authz_decisions_total{decision="deny",reason="no_edge"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_and_disabled_agents_are_refused() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    s.disabled_agent("agent-off")
        .edge("agent-off", "openai", &[]);
    let h = s.start().await;
    assert_eq!(
        with_token(&h, &es().token(&claims("agent-off", ""))).await,
        401
    );
    assert_eq!(
        with_token(&h, &es().token(&claims("nobody", ""))).await,
        401
    );
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn b10_hostile_token_structure() {
    let (mock, h) = standard().await;
    // A 64 KiB token is refused by the header limit before any parsing.
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(100),
        "b".repeat(64 * 1024),
        "c".repeat(100)
    );
    let (status, _, _) = get(
        &h.url("/llm/openai/models"),
        &[("authorization", &bearer(&huge))],
    )
    .await;
    assert_eq!(status, 431);
    // Claims nested 10 000 deep, within the size limit: a clean 401, no stack overflow.
    let nested = format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{},"client_id":"agent-1","x":{}{}}}"#,
        now() + 600,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}).to_string();
    assert_eq!(with_token(&h, &es().sign_raw(&header, &nested)).await, 401);
    // Duplicate keys: `aud` twice, `alg` twice.
    let dup = format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","aud":"other","exp":{},"client_id":"agent-1"}}"#,
        now() + 600
    );
    assert_eq!(with_token(&h, &es().sign_raw(&header, &dup)).await, 401);
    let dup_header = r#"{"alg":"ES256","alg":"none","typ":"at+jwt","kid":"es-1"}"#;
    assert_eq!(
        with_token(
            &h,
            &es().sign_raw(dup_header, &claims("agent-1", "").to_string())
        )
        .await,
        401
    );
    // An unknown crit extension.
    let crit =
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "es-1", "crit": ["urn:x"], "urn:x": 1})
            .to_string();
    assert_eq!(
        with_token(
            &h,
            &es().sign_raw(&crit, &claims("agent-1", "").to_string())
        )
        .await,
        401
    );
    // Header-driven key selection is never followed (jku/x5u/jwk point at nothing we fetch).
    let attacker = Mock::start().await;
    let jku = json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "jku": format!("http://{}/jwks", attacker.addr),
                     "x5u": format!("http://{}/x5u", attacker.addr), "jwk": keys().rogue.jwk});
    assert_eq!(
        with_token(
            &h,
            &keys()
                .rogue
                .sign_raw(&jku.to_string(), &claims("agent-1", "").to_string())
        )
        .await,
        401
    );
    // Garbage in every position.
    for junk in [
        "abc",
        "a.b",
        "a.b.c.d",
        "....",
        "eyJ.eyJ.sig",
        "%%%.%%%.%%%",
    ] {
        assert_eq!(with_token(&h, junk).await, 401, "{junk}");
    }
    assert_eq!(attacker.count() + mock.count(), 0);
}

#[tokio::test]
async fn c02_scopes_are_matched_exactly() {
    let mock = Mock::start().await;
    let mut s = Setup::new();
    s.agent("agent-1").credential("c", "llm", &canary("k"));
    s.node(
        "llm",
        "openai",
        &format!("http://{}/v1", mock.addr),
        "style = \"bearer\"",
        "c",
    );
    s.edge("agent-1", "openai", &["llm.chat", "llm.read"]);
    let h = s.start().await;
    let (status, body, www) = call(
        &h,
        &[(
            "authorization",
            &bearer(&es().token(&claims("agent-1", "llm.read"))),
        )],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "insufficient_scope");
    assert_eq!(
        www.unwrap(),
        r#"Bearer realm="idguard", error="insufficient_scope", scope="llm.chat""#
    );
    for scope in [json!(["llm.chat", "llm.read"]), json!(42)] {
        let c = with(claims("agent-1", ""), "scope", scope.clone());
        assert_eq!(with_token(&h, &es().token(&c)).await, 401, "scope {scope}");
    }
    for literal in [
        "llm:* llm.read",
        "llm.chat\tllm.read",
        "llm.chat\u{00a0}llm.read",
        "LLM.CHAT llm.read",
    ] {
        assert_eq!(
            with_token(&h, &es().token(&claims("agent-1", literal))).await,
            403,
            "{literal:?}"
        );
    }
    assert_eq!(mock.count(), 0);
    assert_eq!(
        with_token(
            &h,
            &es().token(&claims("agent-1", "llm.read other llm.chat"))
        )
        .await,
        200
    );
    let scp = with(
        without(claims("agent-1", ""), "scope"),
        "scp",
        json!(["llm.chat", "llm.read"]),
    );
    assert_eq!(with_token(&h, &es().token(&scp)).await, 200);
}

#[tokio::test]
async fn b09_unknown_kids_cost_at_most_one_jwks_fetch() {
    // A second issuer whose keys come from an https JWKS URL (real TLS, a test CA trusted via extra_ca_file).
    let ca = TestCa::new();
    let url_key = SigningKey::es256("url-1");
    let jwks = Mock::start_tls(ca.server(&["localhost"]).server_config(&[b"http/1.1"])).await;
    jwks.set(Behavior::Status(
        200,
        crate::common::keys::jwks(&[&url_key]),
    ));
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("k"));
    let ca_path = ca.write_ca(s.dir.path());
    s.upstream_extra = format!("extra_ca_file = {:?}\n", ca_path.display().to_string());
    s.raw(&format!(
        "[[issuers]]\nissuer = \"https://url-issuer.test\"\naudience = \"{AUDIENCE}\"\njwks_url = \"https://localhost:{}/jwks\"\n",
        jwks.addr.port()
    ));
    let h = s.start().await;
    // The proxy fetches URL keys before it starts accepting, so the first request already verifies.
    let url_claims = with(
        claims("agent-1", ""),
        "iss",
        json!("https://url-issuer.test"),
    );
    assert_eq!(with_token(&h, &url_key.token(&url_claims)).await, 200);
    let fetched_at_start = jwks.count();
    assert_eq!(fetched_at_start, 1, "keys are fetched once at start");
    for _ in 0..300 {
        let stranger = SigningKey::es256(&format!("kid-{}", rand_hex(6)));
        assert_eq!(with_token(&h, &stranger.token(&url_claims)).await, 401);
    }
    assert!(
        jwks.count() <= fetched_at_start + 1,
        "{} JWKS fetches for 300 unknown kids",
        jwks.count()
    );
    assert!(jwks.recorded().iter().all(|r| r.uri == "/jwks"));
}

#[tokio::test]
async fn b01_a_token_in_a_form_body_besides_the_header_is_refused_before_it_is_forwarded() {
    use bytes::Bytes;
    use http_body_util::Full;
    let (mock, h) = standard().await;
    let token = es().token(&claims("agent-1", ""));
    let form = |body: String| {
        hyper::Request::post(h.url("/llm/openai/files"))
            .header("authorization", bearer(&token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let (status, _, body) =
        crate::common::client::send(form(format!("purpose=x&access_token={token}"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_request"));
    // Split across chunks, and percent-encoded.
    let (status, _, _) = crate::common::client::send(form(format!(
        "{}&access%5Ftoken={token}",
        "p=1".repeat(3000)
    )))
    .await;
    assert_eq!(status, 400);
    for r in mock.recorded() {
        assert!(
            !r.dump().contains(&token),
            "the body token reached the upstream"
        );
    }
    // Ordinary form bodies, and JSON that merely mentions the word, pass.
    let (status, _, _) =
        crate::common::client::send(form("purpose=fine-tune&note=access_token".into())).await;
    assert_eq!(status, 200);
    let (status, _, _) = crate::common::client::post(
        &h.url("/llm/openai/chat"),
        &[("authorization", &bearer(&token))],
        &format!(r#"{{"access_token":"{}"}}"#, "x"),
    )
    .await;
    assert_eq!(status, 200);
}
