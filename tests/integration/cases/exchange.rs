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

mod oauth_nodes;
mod sign_in;

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
