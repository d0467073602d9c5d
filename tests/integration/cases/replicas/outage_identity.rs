//! The identity service during a Redis outage (issue "Replicas you can trust", item 4): a replica started while
//! Redis is down answers 503, not `invalid_client`, for clients it cannot know yet, and does not count those
//! failures against them; once the topology is stale past `redis_max_staleness_ms` the token, authorization and
//! introspection endpoints answer 503 like the proxy does.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::{bearer, form, get};
use crate::common::harness::{Harness, Setup, canary, keys, within};
use crate::common::idp::{AGENT_SECRET, basic, secret_hash};
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
    assert_eq!(token(&a, &id, &secret).await.0, 200);

    // B starts while Redis is down: it cannot know the agent, so it answers "try again", never "unknown
    // client" — more times than the failure limit allows.
    redis.kill();
    let b = b.start().await;
    for _ in 0..5 {
        let (status, retry, body) = token(&b, &id, &secret).await;
        assert_eq!((status, retry), (503, true), "{body}");
        assert!(body.contains("temporarily_unavailable"), "{body}");
    }
    // Redis returns: B catches up and issues the token; the outage was not counted against the agent.
    redis.restart_with_data();
    within(Duration::from_secs(5), "a token from B", async || {
        token(&b, &id, &secret).await.0 == 200
    })
    .await;
    // A wrong secret is the client's failure again.
    assert_eq!(token(&b, &id, "wrong").await.0, 401);
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
        secret_hash(AGENT_SECRET)
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
