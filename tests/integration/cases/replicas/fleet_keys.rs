//! The keys every replica must share — the identity service's signing keys and the key client secrets are hashed
//! under — are derived from the master key, so they are the same on every replica without copying files, and
//! survive the loss of Redis: a replica started fresh on an empty Redis signs tokens the others accept.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::{bearer, form, get};
use crate::common::harness::{Harness, Setup, canary, keys, within};
use crate::common::idp::{
    AGENT_SECRET, access_token, assertion, basic, fleet_secret_hash, jwt_form,
};
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

const ISSUER: &str = "https://idguard.lb.test";

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

/// A token for `agent-j` (`private_key_jwt`) from `h`'s identity service.
async fn token_from(h: &Harness) -> String {
    let body = jwt_form(
        "grant_type=client_credentials",
        &assertion(&keys().es256, "agent-j", ISSUER, |_| {}),
    );
    let (status, _, body) = form(&h.url("/oauth2/token"), &[], &body).await;
    assert_eq!(status, 200, "{body}");
    access_token(&body)
}

async fn proxied(h: &Harness, token: &str) -> u16 {
    get(
        &h.url("/llm/openai/models"),
        &[("authorization", &bearer(token))],
    )
    .await
    .0
}

#[tokio::test]
async fn signing_and_hashing_keys_are_fleet_wide_and_survive_an_empty_redis() {
    let mut redis = RedisServer::start();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("fleet"));
    a.redis = Some((redis.url(), "idguard-fleet".into()));
    a.identity = Some(format!("issuer = \"{ISSUER}\"\n"));
    let hash = fleet_secret_hash(&a, AGENT_SECRET);
    a.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{hash}\" }}]\n"
    ));
    let k = keys();
    a.raw(&format!(
        "[[agents]]\nid = \"agent-j\"\nauth = \"private_key_jwt\"\nkeys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n\n\
         [[outbound]]\nagent = \"agent-j\"\nnode = \"openai\"\n",
        k.es256.jwk["x"], k.es256.jwk["y"],
    ));
    let b = Setup::replica_of(&a);
    let c = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

    // A client application and its secret, created through replica A, authenticate at replica B.
    let (status, body) = admin(&a, "POST", "/admin/v1/clients", Some(json!({"id": "web"}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin(
        &a,
        "PUT",
        "/admin/v1/agents/agent-1/inbound/web",
        Some(json!({"scopes": ["agent.access"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, secret) = admin(&a, "POST", "/admin/v1/clients/web/secrets", None).await;
    assert_eq!(status, 201, "{secret}");
    let secret = secret["secret"].as_str().unwrap().to_owned();
    let url_b = b.url("/oauth2/token");
    within(
        Duration::from_secs(2),
        "replica B accepting the client secret created through A",
        async || {
            form(
                &url_b,
                &[("authorization", &basic("web", &secret))],
                "grant_type=client_credentials",
            )
            .await
            .0 == 200
        },
    )
    .await;

    let from_a = token_from(&a).await;
    assert_eq!(proxied(&b, &from_a).await, 200);

    // Redis loses everything; a third replica starts fresh on it.
    redis.restart_empty();
    let c = c.start().await;
    let url_c = c.url("/oauth2/token");
    let body = || {
        jwt_form(
            "grant_type=client_credentials",
            &assertion(&keys().es256, "agent-j", ISSUER, |_| {}),
        )
    };
    within(
        Duration::from_secs(5),
        "replica C issuing tokens",
        async || form(&url_c, &[], &body()).await.0 == 200,
    )
    .await;
    let from_c = token_from(&c).await;
    // Its tokens are accepted by the old replicas, and theirs by it: one set of signing keys.
    assert_eq!(proxied(&a, &from_c).await, 200);
    assert_eq!(proxied(&b, &from_c).await, 200);
    assert_eq!(proxied(&c, &from_a).await, 200);
    within(
        Duration::from_secs(5),
        "replica A issuing tokens again",
        async || form(&a.url("/oauth2/token"), &[], &body()).await.0 == 200,
    )
    .await;
    let from_a = token_from(&a).await;
    assert_eq!(proxied(&c, &from_a).await, 200);
    // The hashing key did not change with Redis either: a secret hashed under the fleet key in the shared routing
    // file authenticates at every replica, the fresh one included.
    for h in [&a, &b, &c] {
        let (status, _, body) = form(
            &h.url("/oauth2/token"),
            &[("authorization", &basic("agent-s", AGENT_SECRET))],
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}
