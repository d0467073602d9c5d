//! Propagation and outages (corpus M01–M02): a change made through one replica's API is enforced by another
//! within 1 s; Redis killed and restarted under traffic.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, redis_cleanup as cleanup, within};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;
use crate::common::redis_server::{RedisServer, free_port};

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

fn replica_pair(mock: &Mock, url: &str, prefix: &str) -> (Setup, Setup) {
    let mut a = Setup::standard(mock, &canary("shared"));
    a.redis = Some((url.to_owned(), prefix.to_owned()));
    let b = Setup::replica_of(&a);
    (a, b)
}

#[tokio::test]
async fn a_change_through_one_replica_is_enforced_by_the_other_within_a_second() {
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let (a, b) = replica_pair(&mock, &url, &prefix);
    let (a, b) = (a.start().await, b.start().await);

    let (status, agent) = admin(
        &a,
        "POST",
        "/admin/v1/agents",
        Some(json!({"name": "shared"})),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin(
            &a,
            "PUT",
            &format!("/admin/v1/agents/{id}/outbound/openai"),
            Some(json!({}))
        )
        .await
        .0,
        201
    );
    let token = keys().es256.token(&claims(&id, ""));
    let url_b = b.url("/llm/openai/x");
    let took = within(
        Duration::from_secs(1),
        "replica B applying the grant",
        async || get(&url_b, &[("authorization", &bearer(&token))]).await.0 == 200,
    )
    .await;
    eprintln!("replica B applied the change in {took:?}");
    // Disabled through B, refused by A.
    assert_eq!(
        admin(
            &b,
            "PATCH",
            &format!("/admin/v1/agents/{id}"),
            Some(json!({"enabled": false}))
        )
        .await
        .0,
        200
    );
    let url_a = a.url("/llm/openai/x");
    within(
        Duration::from_secs(1),
        "replica A applying the disable",
        async || get(&url_a, &[("authorization", &bearer(&token))]).await.0 == 401,
    )
    .await;
    // Both see the same objects, one version.
    let (_, list_a) = admin(&a, "GET", "/admin/v1/agents", None).await;
    let (_, list_b) = admin(&b, "GET", "/admin/v1/agents", None).await;
    assert_eq!(list_a, list_b);
    cleanup(&url, &prefix);
}

#[tokio::test]
async fn redis_down_and_back_under_traffic() {
    // Corpus M01–M02 on a Redis of the test's own (it is killed and restarted; AOF keeps the data).
    let mut redis = RedisServer::start();
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("m02"));
    s.redis = Some((redis.url(), "idguard-m02".into()));
    s.redis_staleness = Duration::from_millis(300);
    s.redis_max_staleness = Duration::from_millis(2500);
    let h = s.start().await;
    let readyz = format!("http://{}/readyz", h.admin);
    let (status, agent) = admin(&h, "POST", "/admin/v1/agents", Some(json!({}))).await;
    assert_eq!(status, 201);
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin(
            &h,
            "PUT",
            &format!("/admin/v1/agents/{id}/outbound/openai"),
            Some(json!({}))
        )
        .await
        .0,
        201
    );
    let token = keys().es256.token(&claims(&id, ""));
    let url = h.url("/llm/openai/x");
    within(Duration::from_secs(1), "the grant applied", async || {
        get(&url, &[("authorization", &bearer(&token))]).await.0 == 200
    })
    .await;
    assert_eq!(get(&readyz, &[]).await.0, 200);

    redis.kill();
    // The last topology keeps serving; readiness reports the store; writes fail cleanly.
    for _ in 0..20 {
        assert_eq!(
            get(&url, &[("authorization", &bearer(&token))]).await.0,
            200,
            "served while Redis is down"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    within(
        Duration::from_secs(3),
        "readiness reporting the store",
        async || {
            let (status, _, body) = get(&readyz, &[]).await;
            status == 503 && body.contains("store_unreachable")
        },
    )
    .await;
    let (status, body) = admin(&h, "POST", "/admin/v1/agents", Some(json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    // Past the longest time a topology may be served unconfirmed, the proxy fails closed.
    within(
        Duration::from_secs(6),
        "the proxy refusing a topology too old to trust",
        async || {
            let (status, headers, body) = get(&url, &[("authorization", &bearer(&token))]).await;
            status == 503 && body.contains("topology_stale") && headers.contains_key("retry-after")
        },
    )
    .await;

    // Back: readiness returns and writes work again within 5 s, with nothing lost.
    redis.restart_with_data();
    within(Duration::from_secs(5), "readiness returning", async || {
        get(&readyz, &[]).await.0 == 200
    })
    .await;
    within(Duration::from_secs(5), "writes working again", async || {
        admin(&h, "POST", "/admin/v1/agents", Some(json!({})))
            .await
            .0
            == 201
    })
    .await;
    within(Duration::from_secs(5), "serving again", async || {
        get(&url, &[("authorization", &bearer(&token))]).await.0 == 200
    })
    .await;
    let (_, list) = admin(&h, "GET", "/admin/v1/agents", None).await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str())
    );
}

#[tokio::test]
async fn m01_a_replica_starts_while_redis_is_down_and_catches_up() {
    let port = free_port();
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("m01"));
    s.redis = Some((format!("redis://127.0.0.1:{port}"), "idguard-m01".into()));
    s.redis_staleness = Duration::from_millis(300);
    s.identity = Some(String::new());
    s.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n",
        crate::common::idp::fleet_secret_hash(&s, crate::common::idp::AGENT_SECRET)
    ));
    let k = keys();
    s.raw(&format!(
        "[[agents]]\nid = \"agent-j\"\nauth = \"private_key_jwt\"\nkeys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n",
        k.es256.jwk["x"], k.es256.jwk["y"],
    ));
    // Nothing listens on the port yet: the replica starts from the routing file alone and says it is not ready.
    let h = s.start().await;
    let readyz = format!("http://{}/readyz", h.admin);
    let (status, _, body) = get(&readyz, &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: store_unreachable\n")
    );
    let token = keys().es256.token(&claims("agent-1", ""));
    assert_eq!(
        get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))]
        )
        .await
        .0,
        200
    );
    // The signing keys are derived from the master key, so a secret grant needs nothing from Redis; an assertion
    // needs the shared replay set, so the identity service fails closed on it.
    let k = keys();
    let assertion = crate::common::idp::assertion(&k.es256, "agent-j", &h.url(""), |_| {});
    let (status, headers, body) = crate::common::client::form(
        &h.url("/oauth2/token"),
        &[],
        &crate::common::idp::jwt_form("grant_type=client_credentials", &assertion),
    )
    .await;
    let token_request = async || {
        crate::common::client::form(
            &h.url("/oauth2/token"),
            &[(
                "authorization",
                &crate::common::idp::basic("agent-s", crate::common::idp::AGENT_SECRET),
            )],
            "grant_type=client_credentials",
        )
        .await
    };
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert_eq!(token_request().await.0, 200);
    // Redis arrives: readiness follows, the API works, and tokens are issued.
    let _redis = RedisServer::start_on(port);
    within(
        Duration::from_secs(5),
        "readiness once Redis answers",
        async || get(&readyz, &[]).await.0 == 200,
    )
    .await;
    assert_eq!(
        admin(&h, "POST", "/admin/v1/agents", Some(json!({})))
            .await
            .0,
        201
    );
    within(
        Duration::from_secs(5),
        "tokens still issued once Redis answers",
        async || token_request().await.0 == 200,
    )
    .await;
}

#[tokio::test]
async fn m04_a_replica_never_goes_back_to_an_older_topology() {
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let (a, _) = replica_pair(&mock, &url, &prefix);
    let h = a.start().await;
    let (_, agent) = admin(&h, "POST", "/admin/v1/agents", Some(json!({}))).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin(
            &h,
            "PUT",
            &format!("/admin/v1/agents/{id}/outbound/openai"),
            Some(json!({}))
        )
        .await
        .0,
        201
    );
    let token = keys().es256.token(&claims(&id, ""));
    let proxied = h.url("/llm/openai/x");
    within(Duration::from_secs(1), "the grant applied", async || {
        get(&proxied, &[("authorization", &bearer(&token))]).await.0 == 200
    })
    .await;
    // A failover to a Redis that lags behind: the objects are gone and the version is older.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    // In one transaction, as a failover swaps the whole data set: a reload still in flight from the writes above
    // must see either the old state or the lagging one, never objects gone under the current version.
    let _: () = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(format!("{{{prefix}}}:objects"))
        .ignore()
        .cmd("SET")
        .arg(format!("{{{prefix}}}:version"))
        .arg(1)
        .ignore()
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("PUBLISH")
        .arg(format!("{{{prefix}}}:changed"))
        .arg(1)
        .query(&mut conn)
        .unwrap();
    // The replica notices (the version changed), refuses to go back, and keeps enforcing what it had.
    within(
        Duration::from_secs(2),
        "the regression being refused",
        async || {
            crate::common::harness::metric_value(
                &h.metrics().await,
                "idguard_config_last_reload_successful",
            ) == 0.0
        },
    )
    .await;
    assert_eq!(
        get(&proxied, &[("authorization", &bearer(&token))]).await.0,
        200
    );
    cleanup(&url, &prefix);
}

/// Two replicas behind one issuer name share the signing keys, the assertion replay set, authorization codes
/// and revocations through Redis: a token from one works at the other, an assertion is good once across both,
/// and a token revoked at one is refused by the other within a second.
#[tokio::test]
async fn identity_state_is_shared_across_replicas() {
    use crate::common::client::form;
    use crate::common::idp::{
        AGENT_SECRET, access_token, assertion, basic, fleet_secret_hash, jwt_form,
    };
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let (mut a, mut b) = replica_pair(&mock, &url, &prefix);
    let issuer = "https://idguard.lb.test";
    let identity = format!("issuer = \"{issuer}\"\n");
    let k = keys();
    let agents = format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n\n\
         [[agents]]\nid = \"agent-j\"\nauth = \"private_key_jwt\"\nkeys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n\n\
         [[outbound]]\nagent = \"agent-s\"\nnode = \"openai\"\n",
        fleet_secret_hash(&a, AGENT_SECRET),
        k.es256.jwk["x"],
        k.es256.jwk["y"],
    );
    for s in [&mut a, &mut b] {
        s.identity = Some(identity.clone());
        s.raw(&agents);
    }
    let (a, b) = (a.start().await, b.start().await);

    // A token from A is accepted by B's proxy.
    let (status, _, body) = form(
        &a.url("/oauth2/token"),
        &[("authorization", &basic("agent-s", AGENT_SECRET))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = access_token(&body);
    let at_b = |t: String| {
        let url = b.url("/llm/openai/models");
        async move { get(&url, &[("authorization", &bearer(&t))]).await.0 }
    };
    assert_eq!(at_b(token.clone()).await, 200);

    // One assertion, 100 attempts split across both replicas: exactly one token.
    let assertion = assertion(&k.es256, "agent-j", issuer, |_| {});
    let body = jwt_form("grant_type=client_credentials", &assertion);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = if i % 2 == 0 {
            a.url("/oauth2/token")
        } else {
            b.url("/oauth2/token")
        };
        let body = body.clone();
        tasks.push(tokio::spawn(async move { form(&url, &[], &body).await.0 }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 401, "{status}");
        ok += usize::from(status == 200);
    }
    assert_eq!(ok, 1);

    // Revoked at A, refused at B.
    let (status, _, _) = form(
        &a.url("/oauth2/revoke"),
        &[("authorization", &basic("agent-s", AGENT_SECRET))],
        &format!("token={token}"),
    )
    .await;
    assert_eq!(status, 200);
    within(
        Duration::from_secs(3),
        "revocation reaches replica B",
        async || at_b(token.clone()).await == 401,
    )
    .await;
    cleanup(&url, &prefix);
}
