//! Day-two edits (issue 11, item 3): nodes changed in place keep every authorization to them; a stored key is
//! replaced under traffic without a failed request, with a grace period for switching back; the credential's
//! identifier and description are kept apart; an agent's authentication method switches as documented.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use crate::common::process::Served;

/// A stored credential bound to the mock's host, an LLM node `n1` using it, and `agent-1`'s edge to it.
async fn api_node(api: &AdminClient, mock: &Mock, value: &str) {
    let cred = json!({"id": "c1", "kind": "llm", "value": value, "hosts": ["127.0.0.1"],
                      "api_key_id": "key-2024-01", "description": "production key"});
    let (status, _, body) = api.post("/admin/v1/credentials", cred).await;
    assert_eq!(status, 201, "{body}");
    let node = json!({"id": "n1", "upstream": format!("http://{}/v1", mock.addr), "style": "bearer", "credential": "c1"});
    let (status, _, body) = api.post("/admin/v1/llm", node).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = api
        .put("/admin/v1/agents/agent-1/outbound/n1", json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
}

fn agent_token() -> String {
    keys().es256.token(&claims("agent-1", ""))
}

#[tokio::test]
async fn patching_a_node_changes_what_the_proxy_does_and_keeps_its_authorizations() {
    let (mock, h, api) = standard().await;
    let value = canary("node");
    api_node(&api, &mock, &value).await;
    let token = agent_token();
    eventually(&h, "/llm/n1/x", &token, 200).await;
    assert_eq!(mock.last().uri, "/v1/x");
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {value}").as_str())
    );

    // Upstream path, injection style and methods change in place, with If-Match.
    let patch = json!({"name": "Renamed", "upstream": format!("http://{}/v2", mock.addr),
                       "style": "header", "header": "x-api-key", "methods": ["GET"]});
    let (status, headers, node) = api.if_match(1).patch("/admin/v1/llm/n1", patch).await;
    assert_eq!(status, 200, "{node}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(
        (node["name"].as_str(), node["style"].as_str()),
        (Some("Renamed"), Some("header"))
    );
    let (status, _, _) = get(&h.url("/llm/n1/x"), &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, 200);
    let seen = mock.last();
    assert_eq!(seen.uri, "/v2/x");
    assert_eq!(seen.header("x-api-key"), Some(value.as_str()));
    assert_eq!(seen.header("authorization"), None);
    // A method the node no longer allows never reaches the upstream.
    let before = mock.count();
    let (status, _, _) = crate::common::client::post(
        &h.url("/llm/n1/x"),
        &[("authorization", &bearer(&token))],
        "{}",
    )
    .await;
    assert_ne!(status, 200);
    assert_eq!(mock.count(), before);
    // The authorization is still there: the agent's diagram still draws it.
    let topo = api.get("/admin/v1/agents/agent-1/topology").await.2;
    assert!(
        topo["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "outbound" && e["to"] == "n1"),
        "{topo}"
    );

    // Refused: a blocked upstream (SSRF), a credential bound to no host, a stale If-Match, the id, an unknown
    // field, a file-managed node. Each names what is wrong, and nothing changes.
    let cases = [
        (
            json!({"upstream": "http://169.254.169.254/"}),
            1,
            422,
            "llm.upstream",
        ),
        (
            json!({"upstream": "https://10.0.0.1/v1"}),
            2,
            422,
            "llm.upstream",
        ),
        (
            json!({"credential": "cred-openai"}),
            2,
            422,
            "llm.credential",
        ),
        (json!({"name": "stale"}), 1, 412, "If-Match"),
        (json!({"id": "other"}), 2, 409, "id cannot be changed"),
        (json!({"colour": "red"}), 2, 400, "unknown field `colour`"),
        (json!({"methods": "GET"}), 2, 400, "invalid type"),
    ];
    for (body, version, want, needle) in cases {
        let (status, _, answer) = api
            .if_match(version)
            .patch("/admin/v1/llm/n1", body.clone())
            .await;
        assert_eq!(status, want, "{body}: {answer}");
        let text = answer.to_string();
        assert!(
            text.contains(needle) || (want == 412 && status == 412),
            "{body}: {text} lacks {needle}"
        );
    }
    let (status, _, body) = api
        .patch("/admin/v1/llm/openai", json!({"name": "x"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("file_managed"))
    );
    assert_eq!(
        api.patch("/admin/v1/llm/ghost", json!({"name": "x"}))
            .await
            .0,
        404
    );
    let (_, headers, node) = api.get("/admin/v1/llm/n1").await;
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(node["upstream"], format!("http://{}/v2", mock.addr));
    assert_eq!(node["credential"], "c1");
    let (status, _, _) = get(&h.url("/llm/n1/y"), &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, 200);
    assert_eq!(mock.last().uri, "/v2/y");

    // External nodes change the same way.
    let cred = json!({"id": "c-ext", "kind": "external", "value": "v", "hosts": ["127.0.0.1"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let ext = json!({"id": "e1", "upstream": format!("http://{}/a", mock.addr), "style": "bearer", "credential": "c-ext"});
    assert_eq!(api.post("/admin/v1/external", ext).await.0, 201);
    let (status, _, body) = api
        .patch(
            "/admin/v1/external/e1",
            json!({"upstream": "http://169.254.169.254/"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["fields"][0]["path"].as_str()),
        (422, Some("external.upstream"))
    );
    let (status, _, body) = api
        .patch(
            "/admin/v1/external/e1",
            json!({"upstream": format!("http://{}/b", mock.addr)}),
        )
        .await;
    assert_eq!(
        (status, body["upstream"].as_str()),
        (200, Some(format!("http://{}/b", mock.addr).as_str()))
    );
}

/// The bearer values the upstream saw, one per request, in order.
fn bearers(mock: &Mock) -> Vec<Vec<String>> {
    mock.recorded()
        .iter()
        .map(|r| {
            r.header_values("authorization")
                .iter()
                .map(|v| (*v).to_owned())
                .collect()
        })
        .collect()
}

/// Calls `url` until the upstream sees `want` as its authorization (the proxy applies a committed change from the
/// next snapshot it loads, within milliseconds), every call succeeding.
async fn serves(url: &str, auth: &str, mock: &Mock, want: &str) {
    within(
        Duration::from_secs(1),
        "the proxy injects the value in force",
        async || {
            assert_eq!(get(url, &[("authorization", auth)]).await.0, 200);
            mock.last().header("authorization") == Some(want)
        },
    )
    .await;
}

#[tokio::test]
async fn replacing_a_stored_key_under_traffic_fails_no_request_and_keeps_a_grace_period() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("IDGUARD_LOG", "trace"),
    ];
    let served = Served::start(&s.config_path(), &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let (old, new) = (canary("old"), canary("new"));
    api_node(&api, &mock, &old).await;
    let url = format!("http://{}/llm/n1/chat", served.public);
    let auth = bearer(&agent_token());
    within(Duration::from_secs(2), "the node serves", async || {
        get(&url, &[("authorization", &auth)]).await.0 == 200
    })
    .await;
    let mut answers = String::new();
    let (_, _, before) = api.get("/admin/v1/credentials/c1").await;
    answers.push_str(&before.to_string());
    // Both fields the console keeps apart are kept apart.
    assert_eq!(
        (
            before["api_key_id"].as_str(),
            before["description"].as_str()
        ),
        (Some("key-2024-01"), Some("production key"))
    );

    // Four clients call the node without pause while the key is replaced.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failed, sent, url, auth) = (
                stop.clone(),
                failed.clone(),
                sent.clone(),
                url.clone(),
                auth.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if get(&url, &[("authorization", &auth)]).await.0 != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, headers, replaced) = api
        .if_match(1)
        .put(
            "/admin/v1/credentials/c1/value",
            json!({"value": new, "grace_seconds": 600}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(headers["etag"], "\"2\"");
    answers.push_str(&replaced.to_string());
    let answered_at = mock.count();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {} requests",
        sent.load(Ordering::Relaxed)
    );
    let (old_h, new_h) = (format!("Bearer {old}"), format!("Bearer {new}"));
    let seen = bearers(&mock);
    for (i, values) in seen.iter().enumerate() {
        assert_eq!(
            values.len(),
            1,
            "request {i} carried {} authorization headers",
            values.len()
        );
        assert!(
            values[0] == old_h || values[0] == new_h,
            "request {i} carried another value"
        );
    }
    // The proxy switches once, between requests: after the first request with the new key, the old one appears
    // only on requests already in flight then (at most one per client), and never again later.
    let first_new = seen
        .iter()
        .position(|v| v[0] == new_h)
        .expect("the new key was used");
    assert!(
        seen[..first_new].iter().any(|v| v[0] == old_h),
        "the old key served before the switch"
    );
    let late_old = seen[first_new..].iter().filter(|v| v[0] == old_h).count();
    assert!(
        late_old <= 4,
        "{late_old} requests used the old key after the switch"
    );
    assert!(
        seen.len() > answered_at + 20,
        "traffic continued after the switch"
    );
    assert!(
        seen[seen.len() - 20..].iter().all(|v| v[0] == new_h),
        "the old key was used after the switch"
    );

    // The replaced value stays, sealed, for the grace period; the credential shows its fingerprint only.
    assert_ne!(replaced["fingerprint"], before["fingerprint"]);
    assert_eq!(replaced["previous"]["fingerprint"], before["fingerprint"]);
    assert!(replaced["previous"]["until"].as_u64().is_some());
    // Switching back puts the old value in force at once; there is no rollback of a rollback.
    let (status, _, rolled) = api
        .post_empty("/admin/v1/credentials/c1/value/rollback")
        .await;
    assert_eq!(status, 200, "{rolled}");
    answers.push_str(&rolled.to_string());
    assert_eq!(rolled["fingerprint"], before["fingerprint"]);
    assert!(rolled["previous"].is_null());
    serves(&url, &auth, &mock, &old_h).await;
    let (status, _, refused) = api
        .post_empty("/admin/v1/credentials/c1/value/rollback")
        .await;
    assert_eq!(
        (status, refused["error"]["fields"][0]["path"].as_str()),
        (422, Some("credential.previous"))
    );
    answers.push_str(&refused.to_string());
    // An immediate switch (no grace period) keeps nothing to go back to.
    let (status, _, now) = api
        .put("/admin/v1/credentials/c1/value", json!({"value": new}))
        .await;
    assert_eq!((status, now["previous"].is_null()), (200, true), "{now}");
    answers.push_str(&now.to_string());
    serves(&url, &auth, &mock, &new_h).await;
    assert_eq!(
        api.post_empty("/admin/v1/credentials/c1/value/rollback")
            .await
            .0,
        422
    );
    // The edge and the node were never touched.
    let (_, headers, _) = api.get("/admin/v1/llm/n1").await;
    assert_eq!(headers["etag"], "\"1\"");

    // Canaries: neither value is in an answer, the audit log (file and API) or a log line.
    let (status, _, audit) = api.get("/admin/v1/audit").await;
    assert_eq!(status, 200);
    answers.push_str(&audit.to_string());
    let audit_file = std::fs::read_to_string(s.dir.path().join("idguard-data/audit.log")).unwrap();
    assert!(audit_file.contains("c1"), "the replacement is audited");
    let logs = served.stop();
    for (place, text) in [
        ("an answer", &answers),
        ("the audit log", &audit_file),
        ("the logs", &logs),
    ] {
        for secret in [&old, &new] {
            assert!(
                !text.contains(&secret[secret.len() - 12..]),
                "a secret value is in {place}"
            );
        }
        assert!(!text.contains("idg1."), "a sealed value is in {place}");
    }
}

#[tokio::test]
async fn bad_credential_and_agent_edits_are_refused_precisely_and_change_nothing() {
    let (mock, h, api) = standard().await;
    let value = canary("bad");
    api_node(&api, &mock, &value).await;
    let generation = h.generation().await;
    let cases: Vec<(&str, &str, serde_json::Value, u16, &str)> = vec![
        (
            "PUT",
            "/admin/v1/credentials/c1/value",
            json!({}),
            400,
            "missing field `value`",
        ),
        (
            "PUT",
            "/admin/v1/credentials/c1/value",
            json!({"value": ""}),
            400,
            "value must not be empty",
        ),
        (
            "PUT",
            "/admin/v1/credentials/c1/value",
            json!({"value": "x", "grace_seconds": -1}),
            400,
            "grace_seconds",
        ),
        (
            "PUT",
            "/admin/v1/credentials/c1/value",
            json!({"value": "x", "grace_seconds": 999_999_999}),
            400,
            "grace_seconds",
        ),
        (
            "PUT",
            "/admin/v1/credentials/c1/value",
            json!({"value": "x", "hosts": []}),
            400,
            "unknown field `hosts`",
        ),
        (
            "PUT",
            "/admin/v1/credentials/cred-openai/value",
            json!({"value": "x"}),
            409,
            "routing file",
        ),
        (
            "PUT",
            "/admin/v1/credentials/ghost/value",
            json!({"value": "x"}),
            404,
            "ghost",
        ),
        (
            "PATCH",
            "/admin/v1/credentials/c1",
            json!({"kind": "external"}),
            409,
            "kind cannot be changed",
        ),
        (
            "PATCH",
            "/admin/v1/credentials/c1",
            json!({"hosts": ["evil.example.com"]}),
            409,
            "hosts cannot be changed",
        ),
        (
            "PATCH",
            "/admin/v1/credentials/c1",
            json!({"value": "x"}),
            400,
            "unknown field `value`",
        ),
        (
            "POST",
            "/admin/v1/credentials/c1/value/rollback",
            json!({}),
            422,
            "credential.previous",
        ),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, _, answer) = api.call(method, path, Some(body.clone())).await;
        assert_eq!(status, want, "{method} {path} {body}: {answer}");
        assert!(
            answer.to_string().contains(needle),
            "{method} {path}: {answer} lacks {needle:?}"
        );
    }
    let (_, headers, cred) = api.get("/admin/v1/credentials/c1").await;
    assert_eq!(headers["etag"], "\"1\"", "nothing changed");
    assert_eq!(cred["description"], "production key");
    assert_eq!(h.generation().await, generation, "nothing was applied");
    assert_eq!(
        get(
            &h.url("/llm/n1/x"),
            &[("authorization", &bearer(&agent_token()))]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {value}").as_str())
    );
    // Identifier and description change separately.
    let (status, _, cred) = api
        .patch(
            "/admin/v1/credentials/c1",
            json!({"description": "rotated monthly"}),
        )
        .await;
    assert_eq!(status, 200, "{cred}");
    assert_eq!(
        (cred["api_key_id"].as_str(), cred["description"].as_str()),
        (Some("key-2024-01"), Some("rotated monthly"))
    );

    // An agent's authentication method switches only once it holds no secrets of the method it leaves.
    let (_, _, agent) = api.post("/admin/v1/agents", json!({"name": "bot"})).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let (status, _, secret) = api
        .post_empty(&format!("/admin/v1/agents/{id}/secrets"))
        .await;
    assert_eq!(status, 201, "{secret}");
    let (status, _, body) = api
        .patch(
            &format!("/admin/v1/agents/{id}"),
            json!({"auth": "private_key_jwt"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["fields"][0]["path"].as_str()),
        (422, Some("agents.auth")),
        "{body}"
    );
    assert!(field_message(&body).contains("client secrets"));
    // Version 2: the secret was added; the refused switch changed nothing.
    let (_, headers, unchanged) = api.get(&format!("/admin/v1/agents/{id}")).await;
    assert_eq!(
        (
            headers["etag"].to_str().unwrap(),
            unchanged["auth"].as_str()
        ),
        ("\"2\"", Some("client_secret"))
    );
    let (status, _, body) = api
        .patch(
            &format!("/admin/v1/agents/{id}"),
            json!({"auth": "password"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("auth"), "{body}");
    let sid = secret["id"].as_str().unwrap();
    assert_eq!(
        api.delete(&format!("/admin/v1/agents/{id}/secrets/{sid}"))
            .await
            .0,
        204
    );
    let (status, _, switched) = api
        .patch(
            &format!("/admin/v1/agents/{id}"),
            json!({"auth": "private_key_jwt"}),
        )
        .await;
    assert_eq!(
        (status, switched["auth"].as_str()),
        (200, Some("private_key_jwt")),
        "{switched}"
    );
    let (status, _, back) = api
        .patch(
            &format!("/admin/v1/agents/{id}"),
            json!({"auth": "client_secret"}),
        )
        .await;
    assert_eq!(
        (status, back["auth"].as_str()),
        (200, Some("client_secret")),
        "{back}"
    );
}
