//! Rolling upgrades: a replica that meets a stored record of a newer format than it reads (a newer replica wrote
//! it) keeps its running topology, reports `store_unreadable` in `/readyz`, and never writes over the record.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, redis_cleanup as cleanup, within};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

/// Rewrites one stored record's `format` behind the replica's back and announces a new topology version, as a
/// newer replica's commit would.
fn rewrite_format(url: &str, prefix: &str, field: &str, format: u64) -> String {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let objects = format!("{{{prefix}}}:objects");
    let text: String = redis::cmd("HGET")
        .arg(&objects)
        .arg(field)
        .query(&mut conn)
        .unwrap();
    let mut record: Value = serde_json::from_str(&text).unwrap();
    record["format"] = json!(format);
    let text = record.to_string();
    let _: () = redis::cmd("HSET")
        .arg(&objects)
        .arg(field)
        .arg(&text)
        .query(&mut conn)
        .unwrap();
    let version: u64 = redis::cmd("INCR")
        .arg(format!("{{{prefix}}}:version"))
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("PUBLISH")
        .arg(format!("{{{prefix}}}:changed"))
        .arg(version)
        .query(&mut conn)
        .unwrap();
    text
}

fn stored(url: &str, prefix: &str, field: &str) -> String {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("HGET")
        .arg(format!("{{{prefix}}}:objects"))
        .arg(field)
        .query(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn an_older_replica_refuses_a_newer_record_format_and_never_overwrites_it() {
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("format"));
    s.redis = Some((url.clone(), prefix.clone()));
    let h = s.start().await;
    let readyz = format!("http://{}/readyz", h.admin);

    let (status, agent) = admin(&h, "POST", "/admin/v1/agents", Some(json!({"name": "v1"}))).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let grant = format!("/admin/v1/agents/{id}/outbound/openai");
    assert_eq!(admin(&h, "PUT", &grant, Some(json!({}))).await.0, 201);
    let token = keys().es256.token(&claims(&id, ""));
    let auth = bearer(&token);
    let proxied = h.url("/llm/openai/x");
    within(Duration::from_secs(1), "the grant applied", async || {
        get(&proxied, &[("authorization", &auth)]).await.0 == 200
    })
    .await;
    assert_eq!(get(&readyz, &[]).await.0, 200);

    // A newer replica rewrites the agent in stored format 2.
    let field = format!("agent/{id}");
    let newer = rewrite_format(&url, &prefix, &field, 2);
    within(
        Duration::from_secs(2),
        "/readyz reporting the unreadable store",
        async || {
            let (status, _, body) = get(&readyz, &[]).await;
            status == 503 && body.contains("store_unreadable")
        },
    )
    .await;
    // The running topology stays in force.
    assert_eq!(get(&proxied, &[("authorization", &auth)]).await.0, 200);
    // A write over the record is refused and the record is left exactly as the newer replica wrote it.
    let (status, body) = admin(
        &h,
        "PATCH",
        &format!("/admin/v1/agents/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    // (500 `internal_error`; the log line carries `reason=stored_object_corrupt` and the record's format.)
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("internal_error")),
        "{body}"
    );
    assert_eq!(stored(&url, &prefix, &field), newer);
    assert_eq!(get(&proxied, &[("authorization", &auth)]).await.0, 200);

    // Rolled back to a format it reads: ready again, and writes go through.
    rewrite_format(&url, &prefix, &field, 1);
    within(Duration::from_secs(2), "/readyz ready again", async || {
        get(&readyz, &[]).await.0 == 200
    })
    .await;
    assert_eq!(
        admin(
            &h,
            "PATCH",
            &format!("/admin/v1/agents/{id}"),
            Some(json!({"enabled": false}))
        )
        .await
        .0,
        200
    );
    cleanup(&url, &prefix);
}
