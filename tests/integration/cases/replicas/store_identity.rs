//! A Redis that comes back empty is detected, never adopted silently: the replicas keep their last topology,
//! report `store_empty` in `/readyz` and `idguard_store_identity_mismatch`, refuse admin reads and writes with
//! `store_identity_mismatch`, until an operator reseeds the store from a replica or accepts it as it is.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, metric_value, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

/// Two replicas over a Redis of the test's own, and an API-managed agent `id` granted `openai`, enforced by both.
async fn two_replicas(redis: &RedisServer, tag: &str) -> (Harness, Harness, String, String) {
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary(tag));
    a.redis = Some((redis.url(), format!("idguard-{tag}")));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);
    let (status, agent) = admin(&a, "POST", "/admin/v1/agents", Some(json!({}))).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let (status, body) = admin(
        &a,
        "PUT",
        &format!("/admin/v1/agents/{id}/outbound/openai"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = keys().es256.token(&claims(&id, ""));
    for h in [&a, &b] {
        let url = h.url("/llm/openai/x");
        within(Duration::from_secs(2), "the grant applied", async || {
            get(&url, &[("authorization", &bearer(&token))]).await.0 == 200
        })
        .await;
    }
    (a, b, id, token)
}

async fn readyz(h: &Harness) -> (u16, String) {
    let (status, _, body) = get(&format!("http://{}/readyz", h.admin), &[]).await;
    (status, body)
}

/// Waits until both replicas report the empty store, then checks they still serve the old topology and refuse
/// to pretend the store's (empty) contents are theirs.
async fn wait_for_mismatch(a: &Harness, b: &Harness, id: &str, token: &str) {
    for h in [a, b] {
        within(
            Duration::from_secs(5),
            "readiness reporting the empty store",
            async || readyz(h).await == (503, "not ready: store_empty\n".into()),
        )
        .await;
        assert_eq!(
            metric_value(&h.metrics().await, "idguard_store_identity_mismatch"),
            1.0
        );
        // The last topology keeps serving.
        assert_eq!(
            get(
                &h.url("/llm/openai/x"),
                &[("authorization", &bearer(token))]
            )
            .await
            .0,
            200
        );
        // Writes are refused, and so are reads: nothing pretends the topology is empty.
        let (status, body) = admin(h, "POST", "/admin/v1/agents", Some(json!({}))).await;
        assert_eq!(
            (status, code(&body)),
            (503, Some("store_identity_mismatch")),
            "{body}"
        );
        let (status, body) = admin(
            h,
            "PATCH",
            &format!("/admin/v1/agents/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (503, Some("store_identity_mismatch")),
            "disabling an agent whose tokens still work must not 404: {body}"
        );
        let (status, body) = admin(h, "GET", "/admin/v1/agents", None).await;
        assert_eq!(
            (status, code(&body)),
            (503, Some("store_identity_mismatch"))
        );
    }
}

#[tokio::test]
async fn an_empty_redis_is_detected_and_reseeded_from_a_replica() {
    let mut redis = RedisServer::start();
    let (a, b, id, token) = two_replicas(&redis, "reseed").await;

    redis.restart_empty();
    wait_for_mismatch(&a, &b, &id, &token).await;

    // The operator restores the store from replica A's last-known-good topology.
    let (status, body) = admin(&a, "POST", "/admin/v1/store/reseed", None).await;
    assert_eq!(status, 200, "{body}");
    for h in [&a, &b] {
        within(Duration::from_secs(5), "readiness returning", async || {
            readyz(h).await.0 == 200
        })
        .await;
        assert_eq!(
            metric_value(&h.metrics().await, "idguard_store_identity_mismatch"),
            0.0
        );
        let (status, agent) = admin(h, "GET", &format!("/admin/v1/agents/{id}"), None).await;
        assert_eq!(status, 200, "{agent}");
    }
    // A second reseed finds a store that is no longer empty.
    let (status, body) = admin(&b, "POST", "/admin/v1/store/reseed", None).await;
    assert_eq!((status, code(&body)), (409, Some("store_recovery_refused")));
    // Writes work again, and reach the other replica.
    let (status, body) = admin(
        &b,
        "PATCH",
        &format!("/admin/v1/agents/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = a.url("/llm/openai/x");
    within(
        Duration::from_secs(2),
        "replica A applying the disable",
        async || get(&url, &[("authorization", &bearer(&token))]).await.0 == 401,
    )
    .await;
}

#[tokio::test]
async fn an_empty_redis_is_adopted_only_when_an_operator_accepts_it() {
    let mut redis = RedisServer::start();
    let (a, b, id, token) = two_replicas(&redis, "accept").await;
    // Nothing to accept while the store is the one remembered.
    let (status, body) = admin(&a, "POST", "/admin/v1/store/accept", None).await;
    assert_eq!((status, code(&body)), (409, Some("store_recovery_refused")));

    redis.restart_empty();
    wait_for_mismatch(&a, &b, &id, &token).await;

    let (status, body) = admin(&b, "POST", "/admin/v1/store/accept", None).await;
    assert_eq!(status, 200, "{body}");
    for h in [&a, &b] {
        within(Duration::from_secs(5), "readiness returning", async || {
            readyz(h).await.0 == 200
        })
        .await;
        // The new (empty) store is adopted: the API-managed agent is gone, and so is its grant.
        let url = h.url("/llm/openai/x");
        within(
            Duration::from_secs(2),
            "the empty store adopted",
            async || get(&url, &[("authorization", &bearer(&token))]).await.0 == 401,
        )
        .await;
        let (status, body) = admin(h, "GET", &format!("/admin/v1/agents/{id}"), None).await;
        assert_eq!((status, code(&body)), (404, Some("not_found")));
    }
    // Writes through either replica work again and reach the other.
    let (status, agent) = admin(&a, "POST", "/admin/v1/agents", Some(json!({}))).await;
    assert_eq!(status, 201, "{agent}");
    let new_id = agent["id"].as_str().unwrap().to_owned();
    within(
        Duration::from_secs(2),
        "replica B seeing the new agent",
        async || {
            admin(&b, "GET", &format!("/admin/v1/agents/{new_id}"), None)
                .await
                .0
                == 200
        },
    )
    .await;
}
