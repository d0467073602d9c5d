//! Token exchange (corpus D01–D07), the `/svc/` and `/agents/` routes, user sign-in with PKCE, delegation,
//! revocation through the topology, OAuth external nodes and an outside exchange endpoint, and the end-to-end
//! flow an agent goes through.

use serde_json::Value;

use crate::common::client::{form, get};
use crate::common::harness::keys;
use crate::common::idp::{
    AGENT_SECRET, ALICE_PASSWORD, CLIENT_SECRET, LLM_KEY, REDIRECT, World, access_token, assertion,
    basic, claims_of, enc, error_of, exchange_form, header_of, jwt_form, world,
};
use crate::common::keys::{b64, now};
use crate::common::mock::{Behavior, Mock};

async fn call(w: &World, path: &str, token: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    let (status, _, body) = get(&w.h.url(path), &headers).await;
    (status, body)
}

/// Fetches the JWKS and verifies `token` for `aud`, returning its claims.
async fn verify_with_jwks(w: &World, token: &str, aud: &str) -> Value {
    let (_, _, body) = get(&w.h.url("/.well-known/jwks.json"), &[]).await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&body).unwrap();
    let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
    let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[aud]);
    v.set_issuer(&[w.issuer()]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

fn bearer_of(mock: &Mock) -> String {
    mock.last()
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

/// The whole flow: `private_key_jwt` → token → an LLM node and an enterprise service through the proxy; the
/// service verifies the exchanged token against the JWKS and sees `aud`, `scope` and `act` as granted.
#[tokio::test]
async fn end_to_end_agent_calls_an_llm_and_an_enterprise_service() {
    let w = world("").await;
    let a = assertion(&keys().es256, "agent-k", &w.issuer(), |_| {});
    let (status, _, body) = w
        .token(&[], &jwt_form("grant_type=client_credentials", &a))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = access_token(&body);

    let (status, _) = call(&w, "/llm/openai/chat/completions", &token, &[]).await;
    assert_eq!(status, 200);
    let llm_seen = w.llm.last();
    assert_eq!(
        llm_seen.header("authorization").unwrap(),
        format!("Bearer {LLM_KEY}")
    );
    assert!(!llm_seen.dump().contains(&token));

    let (status, _) = call(&w, "/svc/crm/accounts/42", &token, &[]).await;
    assert_eq!(status, 200);
    let seen = w.crm.last();
    assert!(seen.uri.starts_with("/crm/accounts/42"), "{}", seen.uri);
    let exchanged = bearer_of(&w.crm);
    assert_ne!(
        exchanged, token,
        "the service never sees the agent's own token"
    );
    assert!(!seen.dump().contains(&token));
    assert!(!seen.dump().contains(LLM_KEY));
    let c = verify_with_jwks(&w, &exchanged, "urn:svc:crm").await;
    assert_eq!(c["aud"], "urn:svc:crm");
    assert_eq!(c["scope"], "crm.read");
    assert_eq!(c["sub"], "agent-k");
    assert_eq!(c["act"], serde_json::json!({"sub": "agent-k"}));
    assert_eq!(header_of(&exchanged)["typ"], "at+jwt");
    let subject_exp = claims_of(&token)["exp"].as_u64().unwrap();
    let exp = c["exp"].as_u64().unwrap();
    assert!(
        exp <= subject_exp && exp <= now() + 300,
        "exp ≤ min(subject, 5 min)"
    );

    // Warm cache: the same exchanged token again, no second exchange.
    let (status, _) = call(&w, "/svc/crm/accounts/43", &token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bearer_of(&w.crm), exchanged);
}

#[tokio::test]
async fn d01_d05_exchange_rules_at_the_token_endpoint() {
    let w = world("").await;
    let agent1 = w.agent1_token().await;
    // D01: scopes within the edge (and the agent's token), act, single aud, issued_token_type.
    let (status, headers, body) = w
        .token(
            &[],
            &exchange_form(&agent1, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(v["token_type"], "Bearer");
    let c = claims_of(v["access_token"].as_str().unwrap());
    assert_eq!(c["scope"], "crm.read crm.write");
    assert_eq!(c["aud"], "urn:svc:crm");
    assert_eq!(c["act"]["sub"], "agent-1");
    // Narrowed on request.
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&agent1, None, Some("urn:svc:crm"), Some("crm.read")),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(claims_of(&access_token(&body))["scope"], "crm.read");
    // D05: more than the edge grants, or more than the subject holds.
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(
                &agent1,
                None,
                Some("urn:svc:crm"),
                Some("crm.read crm.admin"),
            ),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_scope"));
    let narrow = {
        let (_, _, body) = w
            .token(
                &[],
                &format!("grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}&scope=crm.read"),
            )
            .await;
        access_token(&body)
    };
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&narrow, None, Some("urn:svc:crm"), Some("crm.write")),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_scope"));

    // D02: unknown target, by audience or by resource.
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&agent1, None, Some("urn:svc:nope"), None),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_target"));
    let (status, _, body) = w
        .token(
            &[],
            &format!(
                "{}&resource={}",
                exchange_form(&agent1, None, None, None),
                enc("https://unregistered.example/api")
            ),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_target"));
    // ...and the registered one by resource works.
    let (status, _, _) = w
        .token(
            &[],
            &format!(
                "{}&resource={}",
                exchange_form(&agent1, None, None, None),
                enc(&format!("http://{}/crm", w.crm.addr))
            ),
        )
        .await;
    assert_eq!(status, 200);

    // D03: neither audience nor resource; actor_token without its type and the reverse.
    let (status, _, body) = w
        .token(&[], &exchange_form(&agent1, None, None, None))
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));
    let (status, _, body) = w
        .token(
            &[],
            &format!(
                "{}&actor_token={agent1}",
                exchange_form(&agent1, None, Some("urn:svc:crm"), None)
            ),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));
    let (status, _, body) = w
        .token(
            &[],
            &format!(
                "{}&actor_token_type={}",
                exchange_form(&agent1, None, Some("urn:svc:crm"), None),
                enc("urn:ietf:params:oauth:token-type:access_token")
            ),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));

    // D04: a forged, a revoked, and an unsupported-type subject; the token is never echoed.
    let forged = {
        let mut parts: Vec<String> = agent1.split('.').map(str::to_owned).collect();
        let mut c = claims_of(&agent1);
        c["exp"] = (now() + 100_000).into();
        parts[1] = b64(c.to_string().as_bytes());
        parts.join(".")
    };
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&forged, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));
    assert!(!body.contains(&forged[..40]));
    let unsupported = exchange_form(&agent1, None, Some("urn:svc:crm"), None).replace(
        &enc("urn:ietf:params:oauth:token-type:access_token"),
        &enc("urn:ietf:params:oauth:token-type:saml2"),
    );
    let (status, _, body) = w.token(&[], &unsupported).await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));
    let victim = w.agent1_token().await;
    let (status, _, _) = form(
        &w.h.url("/oauth2/revoke"),
        &[("authorization", &basic("agent-1", AGENT_SECRET))],
        &format!("token={victim}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&victim, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_request"));
    assert!(!body.contains(&victim[..40]));

    // An agent without an edge to the service.
    let agentk = w.agentk_token().await;
    let (status, _, _) = w
        .token(
            &[],
            &exchange_form(&agentk, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!(status, 200);
    // Client authentication, when sent, must be the acting agent.
    let (status, _, body) = w
        .token(
            &[("authorization", &basic("web", CLIENT_SECRET))],
            &exchange_form(&agent1, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "unauthorized_client")
    );
}

#[tokio::test]
async fn d06_no_chain_hopping() {
    let w = world(
        "[[enterprise]]\nid = \"erp\"\naudience = \"urn:svc:erp\"\npermissions = [{ scope = \"erp.read\" }]\n\n\
         [[outbound]]\nagent = \"agent-1\"\nnode = \"erp\"\nscopes = [\"erp.read\"]\n",
    )
    .await;
    let agent1 = w.agent1_token().await;
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&agent1, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!(status, 200);
    let for_crm = access_token(&body);
    // The token exchanged for crm is not a way into erp, nor back into crm.
    for aud in ["urn:svc:erp", "urn:svc:crm"] {
        let (status, _, body) = w
            .token(&[], &exchange_form(&for_crm, None, Some(aud), None))
            .await;
        assert_eq!(status, 400, "{aud}: {body}");
    }
    // As an actor it is refused too (the actor must be an agent's own token).
    let (status, _, _) = w
        .token(
            &[],
            &exchange_form(&agent1, Some(&for_crm), Some("urn:svc:erp"), None),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn d07_the_exchange_cache_is_per_agent_and_subject() {
    let w = world("").await;
    let (t1, tk) = (w.agent1_token().await, w.agentk_token().await);
    let (a, b) = tokio::join!(
        call(&w, "/svc/crm/from-agent-1", &t1, &[]),
        call(&w, "/svc/crm/from-agent-k", &tk, &[]),
    );
    assert_eq!((a.0, b.0), (200, 200));
    for r in w.crm.recorded() {
        let token = r
            .header("authorization")
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap()
            .to_owned();
        let c = claims_of(&token);
        let expected = if r.uri.contains("from-agent-1") {
            "agent-1"
        } else {
            "agent-k"
        };
        assert_eq!(c["act"]["sub"], expected, "{}", r.uri);
        assert_eq!(c["sub"], expected);
    }
    // A new token of the same agent is a new subject: a new exchange, not the other token's entry.
    let t1b = w.agent1_token().await;
    call(&w, "/svc/crm/again", &t1, &[]).await;
    let first = bearer_of(&w.crm);
    call(&w, "/svc/crm/again", &t1b, &[]).await;
    let second = bearer_of(&w.crm);
    assert_ne!(first, second);
    // Many concurrent misses for one key make one exchange: every request carries the same token.
    let t1c = w.agent1_token().await;
    let before = w.crm.count();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (url, t) = (w.h.url(&format!("/svc/crm/burst/{i}")), t1c.clone());
        tasks.push(tokio::spawn(async move {
            get(&url, &[("authorization", &format!("Bearer {t}"))])
                .await
                .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let tokens: std::collections::HashSet<String> = w.crm.recorded()[before..]
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn an_exchanged_token_is_not_served_past_exp_minus_30s() {
    // Exchanged tokens live 31 s at most here, so a cached one is stale after about a second.
    let w = crate::common::idp::world_with("exchange_max_ttl_seconds = 31", "").await;
    let t = w.agentk_token().await;
    call(&w, "/svc/crm/a", &t, &[]).await;
    let first = bearer_of(&w.crm);
    w.h.setup.clock.advance(std::time::Duration::from_secs(2));
    call(&w, "/svc/crm/b", &t, &[]).await;
    assert_ne!(
        bearer_of(&w.crm),
        first,
        "a fresh exchange after exp - 30 s"
    );
}

/// Signs `user` in at the authorization endpoint for `client` (`extra`: more authorization parameters), after
/// checking the sign-in page; returns the status and the redirect location (or the page).
async fn sign_in_to(
    w: &World,
    client: &str,
    extra: &str,
    user: &str,
    password: &str,
    challenge: &str,
) -> (u16, String) {
    let params = format!(
        "response_type=code&client_id={client}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256{extra}",
        enc(REDIRECT)
    );
    let (status, headers, body) = get(&w.h.url(&format!("/oauth2/authorize?{params}")), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<form") && body.contains("name=\"password\""));
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    let (cookie, csrf) = crate::common::idp::sign_in_carry(&headers, &body);
    let (status, headers, body) = form(
        &w.h.url("/oauth2/authorize"),
        &[("cookie", &cookie)],
        &format!(
            "{params}&csrf={csrf}&username={user}&password={}",
            enc(password)
        ),
    )
    .await;
    let location = headers
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or(body);
    (status, location)
}

/// [`sign_in_to`] the `web` client with `state=st-123`.
async fn sign_in(w: &World, user: &str, password: &str, challenge: &str) -> (u16, String) {
    sign_in_to(w, "web", "&state=st-123", user, password, challenge).await
}

/// Redeems `code` at the token endpoint as `client`.
async fn redeem(
    w: &World,
    client: &str,
    code: &str,
    verifier: &str,
) -> crate::common::client::Answer {
    form(
        &w.token_url(),
        &[("authorization", &basic(client, CLIENT_SECRET))],
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
            enc(REDIRECT)
        ),
    )
    .await
}

fn pkce() -> (String, String) {
    let verifier = format!(
        "verifier-{}-{}",
        crate::common::keys::rand_hex(16),
        "x".repeat(10)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, b64(digest.as_ref()))
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let q = location.split_once('?')?.1;
    q.split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[tokio::test]
async fn user_sign_in_with_pkce_and_the_inbound_gateway() {
    let w = world("").await;
    let (verifier, challenge) = pkce();
    let (status, location) = sign_in(&w, "alice", ALICE_PASSWORD, &challenge).await;
    assert_eq!(status, 303, "{location}");
    assert!(location.starts_with(REDIRECT));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(enc(&w.issuer()).as_str())
    );
    let code = query_param(&location, "code").unwrap();
    // The wrong verifier fails — and burns the code.
    let (status, _, body) = redeem(
        &w,
        "web",
        &code,
        "wrong-verifier-wrong-verifier-wrong-verifier",
    )
    .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_grant"));
    let (status, _, body) = redeem(&w, "web", &code, &verifier).await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_grant"));

    let (_, location) = sign_in(&w, "alice", ALICE_PASSWORD, &challenge).await;
    let code = query_param(&location, "code").unwrap();
    let (status, _, body) = redeem(&w, "web", &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    let user_token = access_token(&body);
    let c = claims_of(&user_token);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], "web");
    assert_eq!(c["aud"], "urn:idguard:agent:agent-k");
    assert_eq!(c["scope"], "agent.access");
    // A code is good once.
    let (status, _, _) = redeem(&w, "web", &code, &verifier).await;
    assert_eq!(status, 400);

    // The inbound gateway: the agent sees the verified caller, never forged copies.
    let (status, body) = call(
        &w,
        "/agents/agent-k/tasks?x=1",
        &user_token,
        &[("x-idguard-user", "mallory"), ("x-idguard-client", "evil")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = w.agent_ep.last();
    assert!(seen.uri.starts_with("/agent/tasks"), "{}", seen.uri);
    assert_eq!(seen.header_values("x-idguard-user"), vec!["alice"]);
    assert_eq!(seen.header_values("x-idguard-client"), vec!["web"]);
    assert_eq!(seen.header("x-idguard-scope"), Some("agent.access"));
    assert!(seen.header("authorization").is_none());

    // Delegation: the agent acts for alice at the enterprise service, through the proxy.
    let passed = seen.header("x-idguard-subject-token").unwrap().to_owned();
    assert_eq!(passed, user_token);
    let agent = w.agentk_token().await;
    let (status, _) = call(
        &w,
        "/svc/crm/for-alice",
        &agent,
        &[("x-idguard-subject-token", &passed)],
    )
    .await;
    assert_eq!(status, 200);
    let exchanged = bearer_of(&w.crm);
    let c = verify_with_jwks(&w, &exchanged, "urn:svc:crm").await;
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["act"]["sub"], "agent-k");
    assert!(w.crm.last().header("x-idguard-subject-token").is_none());

    // An agent's own token (aud = the proxy) is not a client token for the gateway.
    let (status, _) = call(&w, "/agents/agent-k/tasks", &agent, &[]).await;
    assert_eq!(status, 401);
    // A client token without a user works, for the client itself.
    let web = w.web_token().await;
    let (status, _) = call(&w, "/agents/agent-k/x", &web, &[]).await;
    assert_eq!(status, 200);
    assert!(w.agent_ep.last().header("x-idguard-user").is_none());

    // alice loses agent-k's permission (manual mode, now bob only): her token stops at the gateway, and the agent
    // can no longer act for her.
    w.edit(|t| t.replace("users = [\"alice\"] }", "users = [\"bob\"] }"))
        .await;
    let (status, body) = call(&w, "/agents/agent-k/tasks", &user_token, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("user_not_authorized"));
    let agent = w.agentk_token().await;
    let (status, body) = call(
        &w,
        "/svc/crm/for-alice-again",
        &agent,
        &[("x-idguard-subject-token", &passed)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("exchange_refused"));
}

#[tokio::test]
async fn sign_in_refuses_bad_passwords_unauthorized_users_and_bad_redirects() {
    let w = world("").await;
    let (_, challenge) = pkce();
    let (status, _) = sign_in(&w, "alice", "wrong-password", &challenge).await;
    assert_eq!(status, 401);
    let (status, _) = sign_in(&w, "nobody", "whatever-password", &challenge).await;
    assert_eq!(status, 401);
    // bob may use the client but does not hold agent-k's permission (manual mode: alice only).
    let (status, location) = sign_in(&w, "bob", "bob-password-123", &challenge).await;
    assert_eq!(status, 303);
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert!(query_param(&location, "code").is_none());
    // An unregistered redirect URI gets a page, never a redirect.
    let (status, headers, _) = get(
        &w.h.url(&format!(
            "/oauth2/authorize?response_type=code&client_id=web&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            enc("https://evil.example/cb")
        )),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(headers.get("location").is_none());
    // plain PKCE is refused (redirected with invalid_request).
    let (status, headers, _) = get(
        &w.h.url(&format!(
            "/oauth2/authorize?response_type=code&client_id=web&redirect_uri={}&code_challenge={challenge}&code_challenge_method=plain",
            enc(REDIRECT)
        )),
        &[],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        headers
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("error=invalid_request")
    );
}

#[tokio::test]
async fn revocation_through_the_topology_is_enforced_on_the_next_request() {
    let w = world("").await;
    let web = w.web_token().await;
    let agent1 = w.agent1_token().await;
    let agentk = w.agentk_token().await;
    assert_eq!(call(&w, "/agents/agent-k/x", &web, &[]).await.0, 200);
    assert_eq!(call(&w, "/llm/openai/x", &agent1, &[]).await.0, 200);
    assert_eq!(call(&w, "/svc/crm/x", &agentk, &[]).await.0, 200);

    // Disabling the client refuses its tokens.
    w.edit(|t| {
        t.replace(
            "[[clients]]\nid = \"web\"\n",
            "[[clients]]\nid = \"web\"\nenabled = false\n",
        )
    })
    .await;
    assert_eq!(call(&w, "/agents/agent-k/x", &web, &[]).await.0, 401);
    // Removing the secret a token was obtained with ends that token.
    w.edit(|t| t.replace("secrets = [{ id = \"s1\",", "secrets = [{ id = \"s2\","))
        .await;
    assert_eq!(call(&w, "/llm/openai/x", &agent1, &[]).await.0, 401);
    // Removing the agent → service edge: the proxy refuses, and so does the exchange.
    w.edit(|t| {
        t.replace(
            "[[outbound]]\nagent = \"agent-k\"\nnode = \"crm\"\nscopes = [\"crm.read\"]\n",
            "",
        )
    })
    .await;
    let (status, body) = call(&w, "/svc/crm/y", &agentk, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = w
        .token(
            &[],
            &exchange_form(&agentk, None, Some("urn:svc:crm"), None),
        )
        .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_target"));
    // Removing a registered key ends tokens obtained with it.
    w.edit(|t| t.replace("keys = [{ id = \"es-1\",", "keys = [{ id = \"es-2\","))
        .await;
    assert_eq!(call(&w, "/llm/openai/x", &agentk, &[]).await.0, 401);
}

#[tokio::test]
async fn external_oauth_node_gets_caches_and_injects_a_token() {
    let provider = Mock::start().await;
    provider.set(Behavior::Status(
        200,
        r#"{"access_token":"ext-token-CANARY-77aa","token_type":"Bearer","expires_in":3600}"#
            .into(),
    ));
    let api = Mock::start().await;
    let w = world_oauth(&provider, &api).await;
    let t = w.agent1_token().await;
    for _ in 0..3 {
        assert_eq!(call(&w, "/ext/partner/items", &t, &[]).await.0, 200);
    }
    assert_eq!(provider.count(), 1, "one token request, then the cache");
    let asked = provider.last();
    assert_eq!(
        asked.header("authorization").unwrap(),
        crate::common::idp::basic("idguard-client", "oauth-secret-CANARY-31c4")
    );
    assert_eq!(
        api.last().header("authorization"),
        Some("Bearer ext-token-CANARY-77aa")
    );
    assert!(!api.last().dump().contains(&t));
}

async fn world_oauth(provider: &Mock, api: &Mock) -> World {
    let extra = format!(
        "[[external]]\nid = \"partner\"\nupstream = \"http://{}/api\"\nstyle = \"bearer\"\ncredential = \"cred-oauth\"\n\
         oauth = {{ token_url = \"http://{}/token\", client_id = \"idguard-client\", scopes = [\"read\"] }}\n\n\
         [[outbound]]\nagent = \"agent-1\"\nnode = \"partner\"\n",
        api.addr, provider.addr
    );
    crate::common::idp::world_with_credential(
        "cred-oauth",
        "external",
        "oauth-secret-CANARY-31c4",
        &extra,
    )
    .await
}

#[tokio::test]
async fn an_outside_rfc8693_endpoint_is_used_when_configured() {
    let outside = Mock::start().await;
    outside.set(Behavior::Status(
        200,
        r#"{"access_token":"outside-token-CANARY-12ef","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":600}"#.into(),
    ));
    let svc = Mock::start().await;
    let w = world(&format!(
        "[[enterprise]]\nid = \"hr\"\naudience = \"urn:svc:hr\"\nupstream = \"http://{}/hr\"\n\
         exchange = {{ token_url = \"http://{}/oauth2/token\" }}\n\n\
         [[outbound]]\nagent = \"agent-1\"\nnode = \"hr\"\n",
        svc.addr, outside.addr
    ))
    .await;
    let t = w.agent1_token().await;
    assert_eq!(call(&w, "/svc/hr/people", &t, &[]).await.0, 200);
    assert_eq!(
        svc.last().header("authorization"),
        Some("Bearer outside-token-CANARY-12ef")
    );
    let asked = outside.last();
    let body = String::from_utf8_lossy(&asked.body).into_owned();
    assert!(body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"));
    assert!(body.contains(&format!("subject_token={t}")));
    assert!(body.contains("audience=urn%3Asvc%3Ahr"));
    // Refusals there are refusals here.
    outside.set(Behavior::Status(
        400,
        r#"{"error":"invalid_target"}"#.into(),
    ));
    let t2 = w.agent1_token().await;
    assert_eq!(call(&w, "/svc/hr/people", &t2, &[]).await.0, 403);
}

/// Secrets issued through the admin API: ≥ 256 bits, several at once for rotation, each revocable on its own;
/// a disabled agent gets no token and its tokens stop working.
#[tokio::test]
async fn api_issued_secrets_rotate_and_revoke() {
    use crate::common::harness::admin;
    let w = world("").await;
    let (status, _, agent) = admin(
        &w.h,
        "POST",
        "/admin/v1/agents",
        Some(serde_json::json!({"name": "rotating"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let (status, _, s) = admin(
            &w.h,
            "POST",
            &format!("/admin/v1/agents/{id}/secrets"),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 201, "{s}");
        let secret = s["secret"].as_str().unwrap().to_owned();
        // idgsec_ + 43 base64url characters = 32 random bytes.
        assert!(secret.len() >= 7 + 43, "{secret}");
        secrets.push((s["id"].as_str().unwrap().to_owned(), secret));
    }
    let get_token = |secret: String| {
        let (url, id) = (w.token_url(), id.clone());
        async move {
            form(
                &url,
                &[("authorization", &basic(&id, &secret))],
                "grant_type=client_credentials",
            )
            .await
        }
    };
    // New secrets apply once the reload the API triggered has swapped the snapshot in (milliseconds).
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "new secrets apply",
        async || get_token(secrets[1].1.clone()).await.0 == 200,
    )
    .await;
    let (status, _, body) = get_token(secrets[0].1.clone()).await;
    assert_eq!(status, 200, "{body}");
    let old_token = access_token(&body);
    assert_eq!(get_token(secrets[1].1.clone()).await.0, 200);
    // Retire the first secret: it stops working, its token stops working, the second goes on.
    let (status, _, _) = admin(
        &w.h,
        "DELETE",
        &format!("/admin/v1/agents/{id}/secrets/{}", secrets[0].0),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "secret removal applies",
        async || get_token(secrets[0].1.clone()).await.0 == 401,
    )
    .await;
    assert_eq!(get_token(secrets[1].1.clone()).await.0, 200);
    // The agent has no edge, so the proxy would refuse anyway; introspection shows the token is dead.
    let (_, _, body) = form(
        &w.h.url("/oauth2/introspect"),
        &[("authorization", &basic(&id, &secrets[1].1))],
        &format!("token={old_token}"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["active"],
        false
    );
    // Disabled: no token, and existing tokens are refused at the proxy.
    let live = w.agent1_token().await;
    assert_eq!(call(&w, "/llm/openai/x", &live, &[]).await.0, 200);
    w.edit(|t| {
        t.replace(
            "[[agents]]\nid = \"agent-1\"\n",
            "[[agents]]\nid = \"agent-1\"\nenabled = false\n",
        )
    })
    .await;
    assert_eq!(call(&w, "/llm/openai/x", &live, &[]).await.0, 401);
    let (status, _, _) = w
        .token(
            &[],
            &format!(
                "grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"
            ),
        )
        .await;
    assert_eq!(status, 401);
}

/// Auto mode: every user the client authorizes holds the agent's permission — here through an organizational
/// unit above theirs. Manual mode through a group.
#[tokio::test]
async fn agent_permission_modes_and_the_organization_tree() {
    let w = world(&format!(
        "[[organizations]]\nid = \"eng\"\n\n[[organizations]]\nid = \"eng-ml\"\nparent = \"eng\"\n\n\
         [[groups]]\nid = \"ops\"\n\n\
         [[users]]\nid = \"carol\"\norganization = \"eng-ml\"\npassword_hash = \"{carol}\"\n\n\
         [[users]]\nid = \"dave\"\ngroups = [\"ops\"]\npassword_hash = \"{dave}\"\n\n\
         [[agents]]\nid = \"agent-auto\"\nendpoint = \"http://{ep}/auto\"\n\n\
         [[agents]]\nid = \"agent-ops\"\nendpoint = \"http://{ep}/ops\"\npermission = {{ mode = \"manual\", groups = [\"ops\"] }}\n\n\
         [[clients]]\nid = \"portal\"\nredirect_uris = [\"{REDIRECT}\"]\norganizations = [\"eng\"]\ngroups = [\"ops\"]\n\
         secrets = [{{ id = \"p1\", hash = \"{hash}\" }}]\n\n\
         [[inbound]]\nclient = \"portal\"\nagent = \"agent-auto\"\nscopes = [\"agent.access\"]\n\n\
         [[inbound]]\nclient = \"portal\"\nagent = \"agent-ops\"\nscopes = [\"agent.access\"]\n",
        carol = crate::common::idp::argon2id("carol-password-1"),
        dave = crate::common::idp::argon2id("dave-password-1"),
        ep = "127.0.0.1:9",
        hash = crate::common::idp::secret_hash(CLIENT_SECRET),
    ))
    .await;
    let signin = |user: &'static str, password: &'static str, agent: &'static str| {
        let w = &w;
        async move {
            let (verifier, challenge) = pkce();
            let audience = format!("&audience={}", enc(&format!("urn:idguard:agent:{agent}")));
            let (status, location) =
                sign_in_to(w, "portal", &audience, user, password, &challenge).await;
            assert_eq!(status, 303, "{location}");
            let Some(code) = query_param(&location, "code") else {
                return Err(query_param(&location, "error").unwrap());
            };
            let (status, _, body) = redeem(w, "portal", &code, &verifier).await;
            assert_eq!(status, 200, "{body}");
            Ok(access_token(&body))
        }
    };
    // carol: in eng-ml, under eng, which the client authorizes; agent-auto is in auto mode.
    let t = signin("carol", "carol-password-1", "agent-auto")
        .await
        .unwrap();
    assert_eq!(claims_of(&t)["sub"], "carol");
    // carol is not in ops: agent-ops (manual, group ops) refuses her; dave (ops) gets in.
    assert_eq!(
        signin("carol", "carol-password-1", "agent-ops")
            .await
            .unwrap_err(),
        "access_denied"
    );
    let t = signin("dave", "dave-password-1", "agent-ops")
        .await
        .unwrap();
    assert_eq!(claims_of(&t)["aud"], "urn:idguard:agent:agent-ops");
}

#[tokio::test]
async fn an_external_oauth_token_is_refreshed_30s_before_it_expires() {
    let provider = Mock::start().await;
    // 31 s of life: stale for the cache one second after it arrives.
    provider.set(Behavior::Status(
        200,
        r#"{"access_token":"short-lived-token","expires_in":31}"#.into(),
    ));
    let api = Mock::start().await;
    let w = world_oauth(&provider, &api).await;
    let t = w.agent1_token().await;
    assert_eq!(call(&w, "/ext/partner/a", &t, &[]).await.0, 200);
    assert_eq!(call(&w, "/ext/partner/b", &t, &[]).await.0, 200);
    assert_eq!(provider.count(), 1);
    w.h.setup.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(call(&w, "/ext/partner/c", &t, &[]).await.0, 200);
    assert_eq!(provider.count(), 2, "refreshed once stale");
    // The provider refusing the client secret is a 502 for the caller, never the provider's body.
    provider.set(Behavior::Status(
        401,
        r#"{"error":"invalid_client"}"#.into(),
    ));
    w.h.setup.clock.advance(std::time::Duration::from_secs(2));
    let (status, body) = call(&w, "/ext/partner/d", &t, &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("invalid_client"));
}

/// Passwords set through the admin API: stored only as argon2id, never shown or audited, kept by a `PUT` without
/// one, and used by the sign-in page; a hash or a short password is refused by field.
#[tokio::test]
async fn passwords_set_through_the_admin_api() {
    use crate::common::harness::admin;
    let w = world("").await;
    let password = "erin-CANARY-password-8d1f";
    let (status, _, user) = admin(
        &w.h,
        "POST",
        "/admin/v1/users",
        Some(serde_json::json!({"id": "erin", "password": password})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let (_, _, shown) = admin(&w.h, "GET", "/admin/v1/users/erin", None, &[]).await;
    assert_eq!(shown["has_password"], true);
    for body in [&user, &shown] {
        let text = body.to_string();
        assert!(
            !text.contains(password) && !text.contains("argon2"),
            "{text}"
        );
    }
    let audit =
        std::fs::read_to_string(w.h.setup.dir.path().join("data").join("audit.log")).unwrap();
    assert!(audit.contains("\"erin\"") && !audit.contains("argon2") && !audit.contains(password));
    for (body, field) in [
        (
            serde_json::json!({"id": "x", "password_hash": "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"}),
            "users.password_hash",
        ),
        (
            serde_json::json!({"id": "x", "password": "short"}),
            "users.password",
        ),
    ] {
        let (status, _, resp) = admin(&w.h, "POST", "/admin/v1/users", Some(body), &[]).await;
        assert_eq!(status, 422, "{resp}");
        assert_eq!(resp["error"]["fields"][0]["path"], field);
    }
    // A replacement without a password keeps it.
    let (status, _, _) = admin(
        &w.h,
        "PUT",
        "/admin/v1/users/erin",
        Some(serde_json::json!({"id": "erin", "name": "Erin"})),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    // erin is not authorized on the `web` client: the right password reaches that check (access_denied), a wrong
    // one stops at the password (401).
    let (_, challenge) = pkce();
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "the user applies",
        async || {
            let (status, location) = sign_in(&w, "erin", password, &challenge).await;
            status == 303 && query_param(&location, "error").as_deref() == Some("access_denied")
        },
    )
    .await;
    assert_eq!(
        sign_in(&w, "erin", "not-erins-password", &challenge)
            .await
            .0,
        401
    );
}
