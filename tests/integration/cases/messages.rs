//! What idguard tells its operator (issue 14): admin API refusals located by the body sent, in-use deletes that
//! name the user, a disabled agent's token logged as such, `Cache-Control: no-store` on whatever carries a secret,
//! the SSRF refusal of an http loopback upstream naming `upstream_allow_hosts`, and the Redis the replica tests
//! need. The command line's messages are in `cli_messages.rs`.

use serde_json::json;

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, form, get};
use crate::common::harness::{Setup, canary, metric_value, redis_answers};
use crate::common::idp::{AGENT_SECRET, world};
use crate::common::mock::Mock;

/// A credential the API may bind to `api.example.com` (the harness resolves it to a public address).
fn credential() -> serde_json::Value {
    json!({"id": "cred-api", "kind": "llm", "value": canary("api"), "hosts": ["api.example.com"]})
}

fn node(id: &str, style: &str) -> serde_json::Value {
    json!({"id": id, "upstream": "https://api.example.com/v1", "style": style, "credential": "cred-api"})
}

#[tokio::test]
async fn admin_api_refusals_name_the_field_of_the_body_sent_not_the_merged_topology() {
    let mock = Mock::start().await;
    // The routing file already holds one LLM node and one credential: a merged index would be `llm[1]`.
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    assert_eq!(api.post("/admin/v1/credentials", credential()).await.0, 201);
    let path_of = |body: &serde_json::Value| body["error"]["fields"][0]["path"].clone();
    // A create.
    let (status, _, body) = api.post("/admin/v1/llm", node("gpt", "bearr")).await;
    assert_eq!(
        (status, path_of(&body)),
        (422, json!("llm.style")),
        "{body}"
    );
    // A change of a stored object (the node is the second stored LLM node: `llm[2]` merged).
    assert_eq!(
        api.post("/admin/v1/llm", node("gpt", "bearer")).await.0,
        201
    );
    assert_eq!(
        api.post("/admin/v1/llm", node("gpt-2", "bearer")).await.0,
        201
    );
    let (status, _, body) = api
        .patch("/admin/v1/llm/gpt-2", json!({"style": "bearr"}))
        .await;
    assert_eq!(
        (status, path_of(&body)),
        (422, json!("llm.style")),
        "{body}"
    );
    // A nested field keeps its place in the body.
    let (status, _, body) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "c2", "kind": "llm", "value": "x", "hosts": ["https://x/"]}),
        )
        .await;
    assert_eq!(
        (status, path_of(&body)),
        (422, json!("credentials.hosts[0]")),
        "{body}"
    );
    // Nothing names a merged index.
    assert!(!body.to_string().contains("[1]"), "{body}");
}

#[tokio::test]
async fn deleting_a_credential_in_use_names_the_nodes_that_use_it() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    assert_eq!(api.post("/admin/v1/credentials", credential()).await.0, 201);
    assert_eq!(
        api.post("/admin/v1/llm", node("gpt", "bearer")).await.0,
        201
    );
    for path in [
        "/admin/v1/credentials/cred-api",
        "/admin/v1/credentials/cred-api?cascade=true",
    ] {
        let (status, _, body) = api.delete(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("in_use")),
            "{path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("nodes gpt"), "{path}: {message}");
        assert!(!message.contains("no credential has id"), "{message}");
    }
}

#[tokio::test]
async fn a_disabled_agents_token_is_refused_as_agent_disabled() {
    let w = world("").await;
    let token = w.agent1_token().await;
    let call = async || {
        get(
            &w.h.url("/llm/openai/x"),
            &[("authorization", &bearer(&token))],
        )
        .await
        .0
    };
    assert_eq!(call().await, 200);
    w.edit(|t| {
        t.replace(
            "[[agents]]\nid = \"agent-1\"\n",
            "[[agents]]\nid = \"agent-1\"\nenabled = false\n",
        )
    })
    .await;
    assert_eq!(call().await, 401);
    let metrics = w.h.metrics().await;
    let deny = |reason: &str| {
        metric_value(
            &metrics,
            &format!(r#"idguard_authz_decisions_total{{decision="deny",reason="{reason}"}}"#),
        )
    };
    assert_eq!(deny("agent_disabled"), 1.0, "{metrics}");
    assert!(
        !metrics.contains(r#"reason="credential_revoked""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_answer_carrying_a_secret_or_token_is_no_store() {
    let w = world("").await;
    let api = AdminClient::of(&w.h);
    let no_store = |what: &str, headers: &hyper::HeaderMap| {
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
        assert_eq!(
            headers.get("pragma").map(|v| v.to_str().unwrap()),
            Some("no-cache"),
            "{what}"
        );
    };
    // Admin API: a new client secret (shown once), an operator token, and every other answer.
    let (status, _, agent) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(status, 201);
    let id = agent["id"].as_str().unwrap();
    let (status, headers, body) = api
        .post_empty(&format!("/admin/v1/agents/{id}/secrets"))
        .await;
    assert_eq!(status, 201, "{body}");
    no_store("a new client secret", &headers);
    let (status, headers, operator) = api
        .post("/admin/v1/operators", json!({"role": "viewer"}))
        .await;
    assert_eq!(status, 201, "{operator}");
    no_store("an operator", &headers);
    let operator = operator["id"].as_str().unwrap();
    let (status, headers, body) = api
        .post(&format!("/admin/v1/operators/{operator}/tokens"), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    no_store("an operator token", &headers);
    let (status, headers, _) = api.get("/admin/v1/agents").await;
    assert_eq!(status, 200);
    no_store("a list", &headers);
    let (status, headers, _) = api.get("/admin/v1/agents/ghost").await;
    assert_eq!(status, 404);
    no_store("a refusal", &headers);
    // The identity service's token endpoint.
    let (status, headers, _) = form(
        &w.token_url(),
        &[],
        &format!("grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"),
    )
    .await;
    assert_eq!(status, 200);
    no_store("an access token", &headers);
    // The API's description is public and may be cached as its server says.
    let (_, headers, _) = api.get("/admin/v1/openapi.json").await;
    assert_ne!(
        headers.get("pragma").map(|v| v.to_str().unwrap()),
        Some("no-cache")
    );
}

#[tokio::test]
async fn an_http_loopback_upstream_refused_by_the_api_names_upstream_allow_hosts() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    // The routing file points at the mock over http on 127.0.0.1; the API may not, unless the host is allowed.
    s.admin_allow = vec![];
    let h = s.start().await;
    let api = AdminClient::of(&h);
    assert_eq!(api.post("/admin/v1/credentials", credential()).await.0, 201);
    let body = json!({"id": "local", "upstream": format!("http://{}/v1", mock.addr), "style": "bearer",
                      "credential": "cred-api"});
    let (status, _, answer) = api.post("/admin/v1/llm", body).await;
    assert_eq!(status, 422, "{answer}");
    let field = &answer["error"]["fields"][0];
    assert_eq!(field["path"], "llm.upstream");
    let message = field["message"].as_str().unwrap();
    assert!(
        message.contains("must be https") && message.contains("[admin] upstream_allow_hosts"),
        "{message}"
    );
}

#[test]
fn a_test_without_its_redis_says_so_and_how_to_start_one() {
    // Port 1 answers nothing: what a machine without Redis looks like to the replica tests.
    let why = redis_answers("redis://127.0.0.1:1").unwrap_err();
    for needle in [
        "needs a Redis at REDIS_URL",
        "redis://127.0.0.1:1",
        ".ci/run",
    ] {
        assert!(why.contains(needle), "{why}");
    }
    let why = redis_answers("redis://user:hunter2@127.0.0.1:1").unwrap_err();
    assert!(!why.contains("hunter2"), "{why}");
}
