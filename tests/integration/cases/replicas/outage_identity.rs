//! The identity service during a Redis outage (issue "Replicas you can trust", item 4): a replica started while
//! Redis is down answers 503, not `invalid_client`, for clients it cannot know yet, and does not count those
//! failures against them; once the topology is stale past `redis_max_staleness_ms` the token, authorization and
//! introspection endpoints answer 503 like the proxy does.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::{bearer, form, get};
use crate::common::harness::{Harness, Setup, canary, keys, within};
use crate::common::idp::{AGENT_SECRET, basic, fleet_secret_hash};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

async fn token(h: &Harness, id: &str, secret: &str) -> (u16, bool, String) {
    let (status, headers, body) = form(
        &h.url("/oauth2/token"),
        &[("authorization", &basic(id, secret))],
        "grant_type=client_credentials",
    )
    .await;
    (status, headers.contains_key("retry-after"), body)
}

#[tokio::test]
async fn a_replica_started_while_redis_is_down_answers_503_for_clients_it_cannot_know() {
    let mut redis = RedisServer::start();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("late"));
    a.redis = Some((redis.url(), "idguard-late".into()));
    a.redis_staleness = Duration::from_millis(300);
    a.identity =
        Some("issuer = \"https://idguard.lb.test\"\nmax_failed_auth_per_minute = 3\n".into());
    let b = Setup::replica_of(&a);
    let a = a.start().await;

    // An agent and its secret, created through A's API.
    let (status, agent) = admin(&a, "POST", "/admin/v1/agents", Some(json!({}))).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let (status, created) =
        admin(&a, "POST", &format!("/admin/v1/agents/{id}/secrets"), None).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (status, _, body) = token(&a, &id, &secret).await;
    assert_eq!(status, 200, "{body}");
    let issued = crate::common::idp::access_token(&body);
    // And a grant to a file-declared agent, also through A's API.
    let (status, grant) = admin(
        &a,
        "PUT",
        "/admin/v1/agents/agent-2/outbound/openai",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{grant}");

    // B starts while Redis is down: it cannot know the agent, so it answers "try again", never "unknown
    // client" — more times than the failure limit allows.
    redis.kill();
    let b = b.start().await;
    for _ in 0..5 {
        let (status, retry, body) = token(&b, &id, &secret).await;
        assert_eq!((status, retry), (503, true), "{body}");
        assert!(body.contains("temporarily_unavailable"), "{body}");
    }
    // Its proxy cannot know the agent either: a token it can verify (from a trusted outside issuer) for that agent
    // is "try again", not "unknown agent".
    let outside = keys().es256.token(&claims(&id, ""));
    let (status, headers, body) = get(
        &b.url("/llm/openai/x"),
        &[("authorization", &bearer(&outside))],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    // Nor the grant it has not loaded: "try again", not 403 "no authorization".
    let file_agent = keys().es256.token(&claims("agent-2", ""));
    let (status, headers, body) = get(
        &b.url("/llm/openai/x"),
        &[("authorization", &bearer(&file_agent))],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    // A token of idguard's own issuer, from A, verifies at B (the fleet keys need no Redis): "try again" too.
    let (status, headers, body) = get(
        &b.url("/llm/openai/x"),
        &[("authorization", &bearer(&issued))],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    // Redis returns: B catches up and issues the token; the outage was not counted against the agent.
    redis.restart_with_data();
    within(Duration::from_secs(5), "a token from B", async || {
        token(&b, &id, &secret).await.0 == 200
    })
    .await;
    // A wrong secret is the client's failure again, and the grant is in force.
    assert_eq!(token(&b, &id, "wrong").await.0, 401);
    within(Duration::from_secs(5), "the grant at B", async || {
        get(
            &b.url("/llm/openai/x"),
            &[("authorization", &bearer(&file_agent))],
        )
        .await
        .0 == 200
    })
    .await;
}

#[tokio::test]
async fn the_identity_service_follows_the_proxy_once_the_topology_is_stale() {
    let mut redis = RedisServer::start();
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("stale"));
    s.redis = Some((redis.url(), "idguard-stale".into()));
    s.redis_staleness = Duration::from_millis(300);
    s.redis_max_staleness = Duration::from_millis(1500);
    s.identity = Some(String::new());
    s.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n",
        fleet_secret_hash(&s, AGENT_SECRET)
    ));
    let h = s.start().await;
    let (status, _, body) = token(&h, "agent-s", AGENT_SECRET).await;
    assert_eq!(status, 200, "{body}");
    let issued = crate::common::idp::access_token(&body);

    redis.kill();
    let agent_token = keys().es256.token(&claims("agent-1", ""));
    let url = h.url("/llm/openai/x");
    within(
        Duration::from_secs(6),
        "the proxy declaring the topology stale",
        async || {
            get(&url, &[("authorization", &bearer(&agent_token))])
                .await
                .0
                == 503
        },
    )
    .await;
    let (status, retry, body) = token(&h, "agent-s", AGENT_SECRET).await;
    assert_eq!((status, retry), (503, true), "token: {body}");
    let (status, headers, body) = form(
        &h.url("/oauth2/introspect"),
        &[("authorization", &basic("agent-s", AGENT_SECRET))],
        &format!("token={issued}"),
    )
    .await;
    assert_eq!(status, 503, "introspect: {body}");
    assert!(headers.contains_key("retry-after"));
    let (status, headers, _) = get(
        &h.url("/oauth2/authorize?response_type=code&client_id=web"),
        &[],
    )
    .await;
    assert_eq!(status, 503, "authorize");
    assert!(headers.contains_key("retry-after"));

    // Back: tokens again.
    redis.restart_with_data();
    within(
        Duration::from_secs(5),
        "tokens once Redis is back",
        async || token(&h, "agent-s", AGENT_SECRET).await.0 == 200,
    )
    .await;
}

#[tokio::test]
async fn every_identity_write_or_check_the_store_cannot_make_is_503_with_retry_after() {
    use crate::common::idp::{
        ALICE_PASSWORD, CLIENT_SECRET, REDIRECT, argon2id, assertion, enc, exchange_form, jwt_form,
        sign_in_carry,
    };
    let mut redis = RedisServer::start();
    let (mock, crm) = (Mock::start().await, Mock::start().await);
    let k = keys();
    let mut s = Setup::standard(&mock, &canary("writes"));
    s.redis = Some((redis.url(), "idguard-writes".into()));
    s.identity = Some(String::new());
    s.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n\n\
         [[agents]]\nid = \"agent-k\"\nauth = \"private_key_jwt\"\n\
         permission = {{ mode = \"manual\", users = [\"alice\"] }}\n\
         keys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n\n\
         [[enterprise]]\nid = \"crm\"\naudience = \"urn:svc:crm\"\nupstream = \"http://{}/crm\"\n\n\
         [[outbound]]\nagent = \"agent-s\"\nnode = \"crm\"\n\n\
         [[users]]\nid = \"alice\"\npassword_hash = \"{}\"\n\n\
         [[clients]]\nid = \"web\"\nredirect_uris = [\"{REDIRECT}\"]\nusers = [\"alice\"]\n\
         secrets = [{{ id = \"w1\", hash = \"{}\" }}]\n\n\
         [[inbound]]\nclient = \"web\"\nagent = \"agent-k\"\n",
        fleet_secret_hash(&s, AGENT_SECRET),
        k.es256.jwk["x"],
        k.es256.jwk["y"],
        crm.addr,
        argon2id(ALICE_PASSWORD),
        fleet_secret_hash(&s, CLIENT_SECRET),
    ));
    let h = s.start().await;
    let issuer = h.url("");
    let (status, _, body) = token(&h, "agent-s", AGENT_SECRET).await;
    assert_eq!(status, 200, "{body}");
    let subject = crate::common::idp::access_token(&body);
    // A code issued while Redis is up, redeemed while it is down.
    let params = format!(
        "response_type=code&client_id=web&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        enc(REDIRECT),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let sign_in = async || {
        let (status, headers, page) =
            get(&h.url(&format!("/oauth2/authorize?{params}")), &[]).await;
        assert_eq!(status, 200, "{page}");
        let (cookie, csrf) = sign_in_carry(&headers, &page);
        form(
            &h.url("/oauth2/authorize"),
            &[("cookie", &cookie)],
            &format!(
                "{params}&csrf={csrf}&username=alice&password={}",
                enc(ALICE_PASSWORD)
            ),
        )
        .await
    };
    let (status, headers, body) = sign_in().await;
    assert_eq!(status, 303, "{body}");
    let location = headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();

    redis.kill();
    let answers = [
        ("sign-in (issuing a code)", sign_in().await),
        (
            "redeeming a code",
            form(
                &h.url("/oauth2/token"),
                &[("authorization", &basic("web", CLIENT_SECRET))],
                &format!(
                    "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}",
                    enc(REDIRECT),
                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
                ),
            )
            .await,
        ),
        (
            "a private_key_jwt assertion (jti claim)",
            form(
                &h.url("/oauth2/token"),
                &[],
                &jwt_form(
                    "grant_type=client_credentials",
                    &assertion(&k.es256, "agent-k", &issuer, |_| {}),
                ),
            )
            .await,
        ),
        (
            "a token exchange (subject revocation unchecked)",
            form(
                &h.url("/oauth2/token"),
                &[],
                &exchange_form(&subject, None, Some("urn:svc:crm"), None),
            )
            .await,
        ),
    ];
    for (what, (status, headers, body)) in answers {
        assert_eq!(status, 503, "{what}: {body}");
        assert!(
            headers.contains_key("retry-after"),
            "{what}: no Retry-After"
        );
    }
}
