//! A client secret's fingerprint and last use through the admin API: the fingerprint in the answer that creates a
//! secret is the one every listing shows (a secret from the routing file has one too), and a secret that
//! authenticates at the identity service shows when, while a failed attempt records nothing.

use super::*;
use crate::common::client::form;
use crate::common::idp::{AGENT_SECRET, CLIENT_SECRET, basic, secret_hash, world};

/// The secrets `GET path` lists.
async fn listed(api: &AdminClient, path: &str) -> Vec<Value> {
    let (status, _, list) = api.get(path).await;
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().unwrap().clone()
}

/// `last_used` of the one secret `path` lists, once it is set (the identity service writes it without waiting).
async fn last_used(api: &AdminClient, path: &str) -> String {
    let mut seen = String::new();
    within(Duration::from_secs(3), "last_used recorded", async || {
        seen = listed(api, path).await[0]["last_used"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        !seen.is_empty()
    })
    .await;
    seen
}

fn now_rfc3339() -> String {
    idguard_config::clock::rfc3339(crate::common::keys::now())
}

#[tokio::test]
async fn a_secret_lists_the_fingerprint_it_was_created_with_and_when_it_last_authenticated() {
    let w = world("").await;
    let api = AdminClient::of(&w.h);
    let (status, _, agent) = api.post("/admin/v1/agents", json!({"name": "bot"})).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/agents/{id}/secrets");
    let (status, _, created) = api.post_empty(&path).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let fingerprint = created["fingerprint"].as_str().unwrap().to_owned();
    assert!(
        fingerprint.len() == 16 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{created}"
    );
    assert!(!secret.contains(&fingerprint));
    assert!(created["last_used"].is_null(), "{created}");

    // Listed with the same fingerprint, never used yet; the agent's own view carries the fingerprint too.
    let items = listed(&api, &path).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], created["id"]);
    assert_eq!(items[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(items[0]["created_at"], created["created_at"]);
    assert!(items[0]["last_used"].is_null(), "{}", items[0]);
    assert!(!Value::Array(items).to_string().contains(&secret[8..]));
    let (_, _, view) = api.get(&format!("/admin/v1/agents/{id}")).await;
    assert_eq!(view["secrets"][0]["fingerprint"], fingerprint.as_str());

    // A wrong secret records nothing.
    let body = |s: &str| format!("grant_type=client_credentials&client_id={id}&client_secret={s}");
    let wrong = format!("{secret}x");
    assert_eq!(form(&w.token_url(), &[], &body(&wrong)).await.0, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(listed(&api, &path).await[0]["last_used"].is_null());

    // The secret itself (client_secret_post) is recorded, as an RFC 3339 time of now.
    let before = now_rfc3339();
    let (status, _, answer) = form(&w.token_url(), &[], &body(&secret)).await;
    assert_eq!(status, 200, "{answer}");
    let used = last_used(&api, &path).await;
    assert!(
        before <= used && used <= now_rfc3339(),
        "{before} <= {used}"
    );
    assert_eq!(
        listed(&api, &path).await[0]["fingerprint"],
        fingerprint.as_str()
    );
}

/// Secrets stored without a fingerprint — here the routing file's, which carry only id and hash — list one
/// derived from their hash, and their last use like any other (`client_secret_basic` for a client application).
#[tokio::test]
async fn a_routing_file_secret_has_a_fingerprint_from_its_hash_and_a_last_use() {
    let w = world("").await;
    let api = AdminClient::of(&w.h);
    let hasher = idguard_config::hashes::KeyedHasher::new(&crate::common::harness::FINGERPRINT_KEY);
    for (path, secret) in [
        ("/admin/v1/agents/agent-1/secrets", AGENT_SECRET),
        ("/admin/v1/clients/web/secrets", CLIENT_SECRET),
    ] {
        let hash = idguard_config::hashes::decode_client_secret_hash(&secret_hash(secret)).unwrap();
        let items = listed(&api, path).await;
        assert_eq!(items.len(), 1, "{path}");
        assert_eq!(
            items[0]["fingerprint"],
            hasher.client_secret_fingerprint(&hash).as_str(),
            "{path}"
        );
        assert!(items[0]["last_used"].is_null(), "{path}: {}", items[0]);
    }
    let before = now_rfc3339();
    let (status, _, answer) = form(
        &w.token_url(),
        &[("authorization", &basic("web", CLIENT_SECRET))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let used = last_used(&api, "/admin/v1/clients/web/secrets").await;
    assert!(before <= used, "{before} <= {used}");
    // Only the secret that authenticated.
    assert!(listed(&api, "/admin/v1/agents/agent-1/secrets").await[0]["last_used"].is_null());
}
