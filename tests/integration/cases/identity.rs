//! The identity service: the token endpoint and client authentication (corpus A01–A11), discovery and the
//! JWKS, a published OAuth client library, access-token claims, introspection and revocation, and the failure
//! limiter.

use serde_json::Value;

use crate::common::client::{form, get};
use crate::common::harness::keys;
use crate::common::idp::{
    AGENT_SECRET, CLIENT_SECRET, World, access_token, assertion, basic, claims_of, error_of,
    header_of, jwt_form, world,
};
use crate::common::keys::{b64, now};

mod discovery;
mod standard_clients;

fn no_store(headers: &hyper::HeaderMap) -> bool {
    headers
        .get("cache-control")
        .is_some_and(|v| v.to_str().unwrap().contains("no-store"))
}

#[tokio::test]
async fn client_secret_basic_and_post_issue_rfc9068_tokens() {
    let w = world("").await;
    let (status, headers, body) = w
        .token(
            &[("authorization", &basic("agent-1", AGENT_SECRET))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(no_store(&headers));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    let token = access_token(&body);
    let header = header_of(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].as_str().unwrap().starts_with("idg-"));
    let c = claims_of(&token);
    assert_eq!(c["iss"], w.issuer());
    assert_eq!(c["sub"], "agent-1");
    assert_eq!(c["client_id"], "agent-1");
    assert_eq!(c["aud"], "urn:idguard:proxy");
    // Default scope: everything the agent's outbound authorizations mention.
    assert_eq!(c["scope"], "crm.read crm.write llm.use");
    assert!(c["jti"].as_str().unwrap().len() >= 32);
    let (iat, exp) = (c["iat"].as_u64().unwrap(), c["exp"].as_u64().unwrap());
    assert!(iat <= now() && exp > now() && exp - iat == 900);

    // client_secret_post, with a narrower scope.
    let (status, _, body) = w
        .token(
            &[],
            &format!("grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}&scope=llm.use"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = access_token(&body);
    assert_eq!(claims_of(&token)["scope"], "llm.use");
    let m = w.h.metrics().await;
    assert_eq!(
        crate::common::harness::metric_value(
            &m,
            "idguard_identity_tokens_issued_total{grant=\"client_credentials\"}"
        ),
        2.0
    );
    // The token works at the proxy: the LLM sees the stored key and never the token.
    let (status, _, _) = get(
        &w.h.url("/llm/openai/models"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(status, 200);
    let seen = w.llm.last();
    assert_eq!(
        seen.header("authorization").unwrap(),
        format!("Bearer {}", crate::common::idp::LLM_KEY)
    );
    assert!(!seen.dump().contains(&token));

    // A10: a scope beyond the registration.
    let (status, headers, body) = w
        .token(
            &[("authorization", &basic("agent-1", AGENT_SECRET))],
            "grant_type=client_credentials&scope=llm.use%20admin.all",
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_scope"));
    assert!(no_store(&headers));
}

#[tokio::test]
async fn a01_a02_wrong_secret_and_unknown_client_answer_identically() {
    let w = world("").await;
    let wrong = w
        .token(
            &[("authorization", &basic("agent-1", "not-the-secret"))],
            "grant_type=client_credentials",
        )
        .await;
    let unknown = w
        .token(
            &[("authorization", &basic("agent-nobody", "not-the-secret"))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(wrong.0, 401);
    assert_eq!(error_of(&wrong.2), "invalid_client");
    assert_eq!(
        wrong.1.get("www-authenticate").unwrap(),
        r#"Basic realm="idguard""#
    );
    assert!(no_store(&wrong.1));
    assert_eq!(wrong.0, unknown.0);
    assert_eq!(wrong.2, unknown.2);
    let strip = |h: &hyper::HeaderMap| {
        let mut v: Vec<(String, String)> = h
            .iter()
            .filter(|(k, _)| k.as_str() != "date")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(&wrong.1), strip(&unknown.1));
    // A secret of a disabled method (agent-k uses private_key_jwt) is refused the same way.
    let other = w
        .token(
            &[("authorization", &basic("agent-k", AGENT_SECRET))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!((other.0, other.2.as_str()), (401, wrong.2.as_str()));
    // Counted by outcome, never by client id.
    let m = w.h.metrics().await;
    assert_eq!(
        crate::common::harness::metric_value(
            &m,
            "idguard_identity_requests_total{endpoint=\"token\",outcome=\"invalid_client\"}"
        ),
        3.0
    );
    assert!(!m.contains("agent-nobody"));
    // Timing (A02): a 40-trial median over HTTP could not see a difference of the size that matters, so the
    // equal-work property is tested structurally instead: `client_auth::match_secret`'s unit test shows an
    // unknown client and a wrong secret run the same comparisons.
}

#[tokio::test]
async fn a03_malformed_requests_are_refused() {
    let w = world("").await;
    type Case<'a> = (Vec<(&'a str, String)>, String, &'a str);
    let cases: Vec<Case> = vec![
        // Basic and client_secret_post together.
        (
            vec![("authorization", basic("agent-1", AGENT_SECRET))],
            format!("grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"),
            "two methods",
        ),
        // A secret and an assertion.
        (
            vec![],
            jwt_form(
                &format!(
                    "grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"
                ),
                &assertion(&keys().es256, "agent-1", &w.issuer(), |_| {}),
            ),
            "secret + assertion",
        ),
        // Basic for one client, client_id of another in the body.
        (
            vec![("authorization", basic("agent-1", AGENT_SECRET))],
            "grant_type=client_credentials&client_id=web".into(),
            "mismatched client_id",
        ),
        // grant_type twice.
        (
            vec![("authorization", basic("agent-1", AGENT_SECRET))],
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            "repeated parameter",
        ),
        // No grant type.
        (
            vec![("authorization", basic("agent-1", AGENT_SECRET))],
            "scope=llm.use".into(),
            "missing grant_type",
        ),
    ];
    for (headers, body, what) in cases {
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, h, resp) = w.token(&hdrs, &body).await;
        assert_eq!(
            (status, error_of(&resp).as_str()),
            (400, "invalid_request"),
            "{what}: {resp}"
        );
        assert!(no_store(&h), "{what}");
    }
    // Parameters in the query string.
    let (status, _, resp) = form(
        &w.h.url(&format!(
            "/oauth2/token?grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"
        )),
        &[],
        "",
    )
    .await;
    assert_eq!((status, error_of(&resp).as_str()), (400, "invalid_request"));
    // A JSON body.
    let (status, _, resp) = crate::common::client::post(
        &w.token_url(),
        &[("authorization", &basic("agent-1", AGENT_SECRET))],
        r#"{"grant_type":"client_credentials"}"#,
    )
    .await;
    assert_eq!((status, error_of(&resp).as_str()), (400, "invalid_request"));
    // GET is not a token request.
    let (status, h, _) = get(&w.token_url(), &[]).await;
    assert_eq!(status, 405);
    assert!(no_store(&h));
    // An unknown grant type.
    let (status, _, resp) = w
        .token(
            &[("authorization", &basic("agent-1", AGENT_SECRET))],
            "grant_type=password&username=a&password=b",
        )
        .await;
    assert_eq!(
        (status, error_of(&resp).as_str()),
        (400, "unsupported_grant_type")
    );
}

#[tokio::test]
async fn private_key_jwt_with_es256_rs256_and_eddsa_keys() {
    let w = world("").await;
    let k = keys();
    for key in [&k.es256, &k.rs256, &k.eddsa] {
        let a = assertion(key, "agent-k", &w.issuer(), |_| {});
        let (status, headers, body) = w
            .token(&[], &jwt_form("grant_type=client_credentials", &a))
            .await;
        assert_eq!(status, 200, "{}: {body}", key.alg_name());
        assert!(no_store(&headers));
        let c = claims_of(&access_token(&body));
        assert_eq!(c["sub"], "agent-k");
        assert_eq!(c["idg_cred"], format!("key:{}", key.kid));
    }
    // With client_id in the form too (it must match).
    let a = assertion(&k.es256, "agent-k", &w.issuer(), |_| {});
    let (status, _, _) = w
        .token(
            &[],
            &jwt_form("grant_type=client_credentials&client_id=agent-k", &a),
        )
        .await;
    assert_eq!(status, 200);
    let a = assertion(&k.es256, "agent-k", &w.issuer(), |_| {});
    let (status, _, _) = w
        .token(
            &[],
            &jwt_form("grant_type=client_credentials&client_id=agent-1", &a),
        )
        .await;
    assert_eq!(status, 401);
}

/// Sends an assertion and returns the status.
async fn try_assertion(w: &World, a: &str) -> u16 {
    w.token(&[], &jwt_form("grant_type=client_credentials", a))
        .await
        .0
}

fn raw_assertion(key: &crate::common::keys::SigningKey, header: Value, claims: Value) -> String {
    key.sign_raw(&header.to_string(), &claims.to_string())
}

fn base_claims(w: &World) -> Value {
    serde_json::json!({
        "iss": "agent-k", "sub": "agent-k", "aud": w.issuer(), "iat": now(), "exp": now() + 120,
        "jti": format!("j-{}", crate::common::keys::rand_hex(8)),
    })
}

#[tokio::test]
async fn a04_a05_a07_a09_assertion_attacks_are_refused() {
    let w = world("").await;
    let k = keys();
    let es = &k.es256;
    let hdr = |alg: &str, kid: &str| serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid});

    // A04: alg none.
    let none = format!(
        "{}.{}.",
        b64(hdr("none", "es-1").to_string().as_bytes()),
        b64(base_claims(&w).to_string().as_bytes())
    );
    assert_eq!(try_assertion(&w, &none).await, 401);
    // A04: HS256 MACed with the registered public key's bytes (the JWK as text, and the x coordinate).
    for secret in [es.jwk.to_string(), es.jwk["x"].as_str().unwrap().to_owned()] {
        let header = hdr("HS256", "es-1").to_string();
        let claims = base_claims(&w).to_string();
        let msg = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let sig = aws_lc_rs::hmac::sign(&key, msg.as_bytes());
        let forged = format!("{msg}.{}", b64(sig.as_ref()));
        assert_eq!(try_assertion(&w, &forged).await, 401);
    }
    // A04: an algorithm other than the key's (RS256 header on the EC key's kid, signed by the RSA key).
    let mixed = raw_assertion(&k.rs256, hdr("RS256", "es-1"), base_claims(&w));
    assert_eq!(try_assertion(&w, &mixed).await, 401);

    // A05: audiences.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = base_claims(&w);
        f(&mut c);
        raw_assertion(es, hdr("ES256", "es-1"), c)
    };
    let issuer = w.issuer();
    assert_eq!(try_assertion(&w, &with(&|_| {})).await, 200);
    let token_ep = w.token_url();
    assert_eq!(
        try_assertion(&w, &with(&|c| c["aud"] = token_ep.clone().into())).await,
        200,
        "the token endpoint URL is accepted by default (RFC 7523 §3)"
    );
    assert_eq!(
        try_assertion(
            &w,
            &with(&|c| c["aud"] = serde_json::json!([issuer.clone(), "https://evil"]))
        )
        .await,
        401
    );
    assert_eq!(
        try_assertion(&w, &with(&|c| c["aud"] = "https://other-as".into())).await,
        401
    );
    assert_eq!(
        try_assertion(
            &w,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })
        )
        .await,
        401
    );
    assert_eq!(
        try_assertion(&w, &with(&|c| c["sub"] = "agent-1".into())).await,
        401,
        "sub ≠ client"
    );
    assert_eq!(
        try_assertion(&w, &with(&|c| c["iss"] = "someone".into())).await,
        401,
        "iss ≠ sub"
    );

    // A07: lifetime abuse.
    for (what, f) in [
        (
            "jti missing",
            Box::new(|c: &mut Value| {
                c.as_object_mut().unwrap().remove("jti");
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "exp missing",
            Box::new(|c: &mut Value| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "exp more than max_assertion_lifetime_seconds (3600) and the clock skew ahead",
            Box::new(|c: &mut Value| c["exp"] = (now() + 3_600 + 120).into()),
        ),
        (
            "iat in the future",
            Box::new(|c: &mut Value| c["iat"] = (now() + 600).into()),
        ),
        (
            "nbf in the future",
            Box::new(|c: &mut Value| c["nbf"] = (now() + 600).into()),
        ),
        (
            "exp as a string",
            Box::new(|c: &mut Value| c["exp"] = (now() + 60).to_string().into()),
        ),
        (
            "exp as a huge float",
            Box::new(|c: &mut Value| c["exp"] = serde_json::json!(1e30)),
        ),
        (
            "iat as a string",
            Box::new(|c: &mut Value| c["iat"] = "now".into()),
        ),
        (
            "expired",
            Box::new(|c: &mut Value| c["exp"] = (now() - 600).into()),
        ),
    ] {
        assert_eq!(try_assertion(&w, &with(&*f)).await, 401, "{what}");
    }

    // A09: header-driven key selection; the attacker's mock is never contacted.
    let attacker = format!("http://{}/jwks", w.attacker.addr);
    for extra in [
        serde_json::json!({"jku": attacker}),
        serde_json::json!({"x5u": attacker}),
        serde_json::json!({"jwk": es.jwk}),
        serde_json::json!({"x5c": ["MIIB"]}),
    ] {
        let mut h = hdr("ES256", "es-1");
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_eq!(
            try_assertion(&w, &raw_assertion(es, h, base_claims(&w))).await,
            401
        );
    }
    for kid in ["../../../../dev/null", "' OR 1=1 --"] {
        assert_eq!(
            try_assertion(&w, &raw_assertion(es, hdr("ES256", kid), base_claims(&w))).await,
            401,
            "{kid}"
        );
    }
    assert_eq!(w.attacker.count(), 0);
}

#[tokio::test]
async fn a05_requiring_the_issuer_alone_refuses_endpoint_audiences() {
    let w = crate::common::idp::world_with("accept_token_endpoint_audience = false", "").await;
    let a = assertion(&keys().es256, "agent-k", &w.token_url(), |_| {});
    let (status, _, body) = w
        .token(&[], &jwt_form("grant_type=client_credentials", &a))
        .await;
    assert_eq!(status, 401);
    assert!(
        body.contains("does not accept the token endpoint URL"),
        "{body}"
    );
    let a = assertion(&keys().es256, "agent-k", &w.issuer(), |_| {});
    assert_eq!(try_assertion(&w, &a).await, 200);
    // By default the token endpoint is accepted, but still as a single audience.
    let w = world("").await;
    let a = assertion(&keys().es256, "agent-k", &w.token_url(), |c| {
        c["aud"] = serde_json::json!([w.token_url(), "https://evil"]);
    });
    assert_eq!(try_assertion(&w, &a).await, 401);
}

#[tokio::test]
async fn a06_an_assertion_is_good_once_even_in_parallel() {
    // 99 replays from one address are 99 failures counted against the assertion's `sub`: a limit above that keeps
    // this test about replays, not about the failure limiter.
    let w = crate::common::idp::world_with("max_failed_auth_per_minute = 500", "").await;
    let a = assertion(&keys().es256, "agent-k", &w.issuer(), |_| {});
    let body = jwt_form("grant_type=client_credentials", &a);
    let url = w.token_url();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (url, body) = (url.clone(), body.clone());
        tasks.push(tokio::spawn(async move { form(&url, &[], &body).await.0 }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            401 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one token for one assertion");
    assert_eq!(try_assertion(&w, &a).await, 401, "replayed later");
}

#[tokio::test]
async fn a08_tokens_are_not_client_assertions() {
    let w = world("").await;
    let access = w.agentk_token().await;
    assert_eq!(try_assertion(&w, &access).await, 401);
    // An exchanged token neither.
    let (status, _, body) = w
        .token(
            &[],
            &crate::common::idp::exchange_form(&access, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(try_assertion(&w, &access_token(&body)).await, 401);
}

#[tokio::test]
async fn a10_a11_scope_limits_brute_force_and_log_injection() {
    let w = world("").await;
    // A10: a client application asking beyond its inbound authorization.
    let (status, _, body) = w
        .token(
            &[("authorization", &basic("web", CLIENT_SECRET))],
            "grant_type=client_credentials&scope=agent.access%20crm.write",
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_scope"));
    // A11: an 8 KiB client_id with a forged log line and ANSI escapes.
    let evil = format!(
        "{}%0A%7B%22level%22%3A%22info%22%7D%1B%5B31m",
        "x".repeat(8 * 1024)
    );
    let (status, _, body) = w
        .token(
            &[],
            &format!("grant_type=client_credentials&client_id={evil}&client_secret=x"),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));
    // A11: more than 50 failures a minute → 429 with Retry-After, for that client only.
    let mut limited = None;
    for i in 0..60 {
        let (status, headers, _) = w
            .token(
                &[("authorization", &basic("agent-1", &format!("wrong-{i}")))],
                "grant_type=client_credentials",
            )
            .await;
        if status == 429 {
            limited = Some((i, headers));
            break;
        }
        assert_eq!(status, 401);
    }
    let (at, headers) = limited.expect("rate limited");
    assert_eq!(at, 50);
    let retry: u64 = headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Even the right secret waits now; another client is unaffected.
    let (status, _, _) = w
        .token(
            &[("authorization", &basic("agent-1", AGENT_SECRET))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, 429);
    w.web_token().await;
}
