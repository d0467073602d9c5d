//! A client secret's last use is fleet-wide: a secret created through one replica and used at another's token
//! endpoint shows its last use through the first.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client::form;
use crate::common::harness::{Harness, Setup, canary, redis_cleanup as cleanup, within};
use crate::common::idp::basic;
use crate::common::keys::rand_hex;
use crate::common::mock::Mock;

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

#[tokio::test]
async fn a_secret_used_at_one_replica_shows_its_last_use_through_another() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("used"));
    a.redis = Some((url.clone(), prefix.clone()));
    a.identity = Some("issuer = \"https://idguard.lb.test\"\n".into());
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

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
    let path = "/admin/v1/clients/web/secrets";
    let (status, created) = admin(&a, "POST", path, None).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();

    // B lists the fingerprint A answered with (one fleet key), and no use yet.
    let (status, list) = admin(&b, "GET", path, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["fingerprint"], created["fingerprint"]);
    assert!(list["items"][0]["last_used"].is_null(), "{list}");

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
    within(
        Duration::from_secs(3),
        "A showing the use recorded by B",
        async || admin(&a, "GET", path, None).await.1["items"][0]["last_used"].is_string(),
    )
    .await;
    let (_, list) = admin(&a, "GET", path, None).await;
    assert_eq!(list["items"][0]["fingerprint"], created["fingerprint"]);
    drop((a, b));
    cleanup(&url, &prefix);
}
