//! No acknowledged revocation is lost (issue "Replicas you can trust", item 1): a revocation the store cannot
//! record answers 503 with `Retry-After` and is enforced by the replica that received it at once; one that answers
//! 200 is enforced by every replica — one started later included — across a Redis restart with data. Introspection
//! that cannot check revocation answers 503, not `active: false`.

use std::time::Duration;

use crate::common::client::{bearer, form, get};
use crate::common::harness::{Harness, Setup, canary, within};
use crate::common::idp::{AGENT_SECRET, access_token, basic, fleet_secret_hash};
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

/// Two replicas (and the setup of a third) of one topology over `redis`, behind one issuer, with `agent-s`
/// (client secret) granted `openai`.
fn replicas(mock: &Mock, redis: &RedisServer) -> (Setup, Setup, Setup) {
    let mut a = Setup::standard(mock, &canary("revoke"));
    a.redis = Some((redis.url(), "idguard-revoke".into()));
    a.identity = Some("issuer = \"https://idguard.lb.test\"\n".into());
    a.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n\n\
         [[outbound]]\nagent = \"agent-s\"\nnode = \"openai\"\n",
        fleet_secret_hash(&a, AGENT_SECRET)
    ));
    let b = Setup::replica_of(&a);
    let c = Setup::replica_of(&a);
    (a, b, c)
}

async fn issue(h: &Harness) -> String {
    let (status, _, body) = form(
        &h.url("/oauth2/token"),
        &[("authorization", &basic("agent-s", AGENT_SECRET))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    access_token(&body)
}

/// The status the replica's proxy answers `token` with.
async fn proxy_status(h: &Harness, token: &str) -> u16 {
    get(
        &h.url("/llm/openai/models"),
        &[("authorization", &bearer(token))],
    )
    .await
    .0
}

async fn call(h: &Harness, endpoint: &str, token: &str) -> (u16, bool, String) {
    let (status, headers, body) = form(
        &h.url(endpoint),
        &[("authorization", &basic("agent-s", AGENT_SECRET))],
        &format!("token={token}"),
    )
    .await;
    (status, headers.contains_key("retry-after"), body)
}

#[tokio::test]
async fn a_revocation_the_store_cannot_record_is_refused_and_an_acknowledged_one_is_never_lost() {
    let mut redis = RedisServer::start();
    let mock = Mock::start().await;
    let (a, b, c) = replicas(&mock, &redis);
    let (a, b) = (a.start().await, b.start().await);
    within(Duration::from_secs(5), "tokens at A", async || {
        form(
            &a.url("/oauth2/token"),
            &[("authorization", &basic("agent-s", AGENT_SECRET))],
            "grant_type=client_credentials",
        )
        .await
        .0 == 200
    })
    .await;
    let first = issue(&a).await;
    assert_eq!(proxy_status(&a, &first).await, 200);
    assert_eq!(proxy_status(&b, &first).await, 200);

    // Redis is down: introspection cannot check revocation and says so; the revocation cannot be recorded and
    // says so — but the replica that received it refuses the token at once.
    redis.kill();
    let (status, retry, body) = call(&a, "/oauth2/introspect", &first).await;
    assert_eq!((status, retry), (503, true), "introspection: {body}");
    assert!(body.contains("temporarily_unavailable"), "{body}");
    let (status, retry, body) = call(&a, "/oauth2/revoke", &first).await;
    assert_eq!((status, retry), (503, true), "revocation: {body}");
    assert_eq!(proxy_status(&a, &first).await, 401);

    // Redis is back: the retried revocation is acknowledged and reaches the other replica.
    redis.restart_with_data();
    within(
        Duration::from_secs(5),
        "the retried revocation",
        async || call(&a, "/oauth2/revoke", &first).await.0 == 200,
    )
    .await;
    within(Duration::from_secs(3), "replica B refusing", async || {
        proxy_status(&b, &first).await == 401
    })
    .await;
    let (status, _, body) = call(&a, "/oauth2/introspect", &first).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"active\":false"), "{body}");

    // Acknowledged, then Redis restarts at once: B, and a replica started after the revocation, refuse it.
    let second = issue(&a).await;
    assert_eq!(proxy_status(&b, &second).await, 200);
    assert_eq!(call(&a, "/oauth2/revoke", &second).await.0, 200);
    assert_eq!(proxy_status(&a, &second).await, 401);
    redis.restart_with_data();
    let c = c.start().await;
    for (name, h) in [("B", &b), ("C (started after)", &c)] {
        within(
            Duration::from_secs(5),
            &format!("replica {name} refusing the acknowledged revocation"),
            async || proxy_status(h, &second).await == 401,
        )
        .await;
    }
    // The first revocation reached C too, and an unrevoked token is still good there.
    assert_eq!(proxy_status(&c, &first).await, 401);
    let third = issue(&c).await;
    assert_eq!(proxy_status(&c, &third).await, 200);
}
