//! Admin writes are read-your-writes on the replica that acknowledged them (issue "Replicas you can trust", item
//! 1), and a create that loses a race to another replica is 409 like a sequential duplicate.

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, redis_cleanup as cleanup};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

fn shared_redis() -> (String, String) {
    let url = crate::common::harness::redis_url();
    (url, format!("idguard-test-{}", rand_hex(6)))
}

#[tokio::test]
async fn the_replica_that_acknowledged_a_write_enforces_it_on_the_next_request() {
    let (url, prefix) = shared_redis();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("ryw"));
    a.redis = Some((url.clone(), prefix.clone()));
    let b = Setup::replica_of(&a);
    let (a, _b) = (a.start().await, b.start().await);
    for trial in 0..8 {
        let (status, agent) = admin(&a, "POST", "/admin/v1/agents", Some(json!({}))).await;
        assert_eq!(status, 201, "{agent}");
        let id = agent["id"].as_str().unwrap().to_owned();
        let token = keys().es256.token(&claims(&id, ""));
        let call = async || {
            get(
                &a.url("/llm/openai/x"),
                &[("authorization", &bearer(&token))],
            )
            .await
            .0
        };
        let path = format!("/admin/v1/agents/{id}/outbound/openai");
        assert_eq!(admin(&a, "PUT", &path, Some(json!({}))).await.0, 201);
        assert_eq!(
            call().await,
            200,
            "trial {trial}: the grant just acknowledged"
        );
        let patch = format!("/admin/v1/agents/{id}");
        let body = Some(json!({"enabled": false}));
        assert_eq!(admin(&a, "PATCH", &patch, body).await.0, 200);
        assert_eq!(
            call().await,
            401,
            "trial {trial}: the disable just acknowledged"
        );
    }
    cleanup(&url, &prefix);
}

#[tokio::test]
async fn a_create_that_loses_a_race_to_another_replica_is_409() {
    let (url, prefix) = shared_redis();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("race"));
    a.redis = Some((url.clone(), prefix.clone()));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let mut statuses = Vec::new();
    for round in 0..6 {
        let id = format!("race-{round}");
        let mut tasks = Vec::new();
        for i in 0..8 {
            let h = if i % 2 == 0 { a.clone() } else { b.clone() };
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                admin(&h, "POST", "/admin/v1/clients", Some(json!({"id": id})))
                    .await
                    .0
            }));
        }
        let mut created = 0;
        for t in tasks {
            let status = t.await.unwrap();
            created += usize::from(status == 201);
            statuses.push(status);
        }
        assert_eq!(created, 1, "round {round}: {statuses:?}");
    }
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "every losing create is 409: {statuses:?}"
    );
    // The sequential duplicate answers the same.
    assert_eq!(
        admin(
            &a,
            "POST",
            "/admin/v1/clients",
            Some(json!({"id": "race-0"}))
        )
        .await
        .0,
        409
    );
    cleanup(&url, &prefix);
}
