//! Operators (issue 11, items 1 and 2): named principals with a role and tokens of their own; every request checked
//! against the route's role before any work; audit records naming who did what, how they authenticated, and the
//! request; owners read the whole audit log, everyone else only their own records; nothing changes the log.

use std::time::Duration;

use serde_json::{Value, json};

use super::{error_message, standard};
use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{ADMIN_TOKEN, Harness, Setup, canary};
use crate::common::mock::Mock;
use crate::common::process::Served;

/// Creates the operator `id` with `role` through `owner`, and a token for them; returns the token.
pub(crate) async fn operator(owner: &AdminClient, id: &str, role: &str) -> String {
    let (status, _, body) = owner
        .post("/admin/v1/operators", json!({"id": id, "role": role}))
        .await;
    assert_eq!(status, 201, "{body}");
    token(owner, id, json!({})).await.1
}

/// Issues a token for `id`: `(token id, token)`.
pub(crate) async fn token(owner: &AdminClient, id: &str, body: Value) -> (String, String) {
    let (status, headers, body) = owner
        .post(&format!("/admin/v1/operators/{id}/tokens"), body)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// The admin API of `h` as the holder of `token`.
fn as_operator(h: &Harness, token: &str) -> AdminClient {
    AdminClient::new(h.admin, token)
}

fn agent_count(list: &Value) -> usize {
    list["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_viewers_write_is_refused_naming_the_role_and_changes_nothing() {
    let (_mock, h, owner) = standard().await;
    let viewer = as_operator(&h, &operator(&owner, "vera", "viewer").await);
    let (status, _, before) = viewer.get("/admin/v1/agents").await;
    assert_eq!(status, 200, "a viewer reads");
    let generation = h.generation().await;
    for (method, path, body) in [
        ("POST", "/admin/v1/agents", Some(json!({"name": "sneaky"}))),
        ("DELETE", "/admin/v1/agents/agent-1", None),
        (
            "POST",
            "/admin/v1/credentials",
            Some(json!({"id": "c", "kind": "llm", "value": "v", "hosts": ["api.example.com"]})),
        ),
    ] {
        let (status, _, body) = viewer.call(method, path, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {body}"
        );
        assert!(
            error_message(&body).ends_with("requires the editor role"),
            "{body}"
        );
    }
    let (status, _, body) = viewer.get("/admin/v1/operators").await;
    assert_eq!(status, 403);
    assert!(error_message(&body).ends_with("requires the owner role"));
    assert_eq!(
        owner.get("/admin/v1/agents").await.2,
        before,
        "nothing changed"
    );
    assert!(owner.get("/admin/v1/credentials/c").await.0 == 404);
    assert_eq!(h.generation().await, generation, "no reload happened");
    // Nothing was written, so nothing was audited.
    let audit = owner.get("/admin/v1/audit?actor=vera").await.2;
    assert_eq!(audit["records"], json!([]));
}

#[tokio::test]
async fn an_editor_writes_but_does_not_manage_operators() {
    let (_mock, h, owner) = standard().await;
    let editor = as_operator(&h, &operator(&owner, "eddie", "editor").await);
    let (status, _, agent) = editor.post("/admin/v1/agents", json!({"name": "e"})).await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent_count(&owner.get("/admin/v1/agents").await.2), 3);
    for (method, path, body) in [
        ("GET", "/admin/v1/operators", None),
        (
            "POST",
            "/admin/v1/operators",
            Some(json!({"id": "x", "role": "owner"})),
        ),
        (
            "PATCH",
            "/admin/v1/operators/eddie",
            Some(json!({"role": "owner"})),
        ),
        ("POST", "/admin/v1/operators/eddie/tokens", Some(json!({}))),
        ("DELETE", "/admin/v1/operators/eddie", None),
        ("POST", "/admin/v1/store/accept", None),
    ] {
        let (status, _, body) = editor.call(method, path, body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(
            error_message(&body).ends_with("requires the owner role"),
            "{body}"
        );
    }
    let (_, _, eddie) = owner.get("/admin/v1/operators/eddie").await;
    assert_eq!(eddie["role"], "editor", "still an editor");
    assert_eq!(
        eddie["tokens"].as_array().unwrap().len(),
        1,
        "no token added"
    );
    // An operator promoted to owner manages operators from their next request.
    assert_eq!(
        owner
            .patch("/admin/v1/operators/eddie", json!({"role": "owner"}))
            .await
            .0,
        200
    );
    assert_eq!(editor.get("/admin/v1/operators").await.0, 200);
}

#[tokio::test]
async fn a_token_revoked_mid_session_is_refused_on_its_next_call() {
    let (_mock, h, owner) = standard().await;
    let (status, _, _) = owner
        .post(
            "/admin/v1/operators",
            json!({"id": "rita", "role": "editor"}),
        )
        .await;
    assert_eq!(status, 201);
    let (first_id, first) = token(&owner, "rita", json!({"name": "laptop"})).await;
    let (_, second) = token(&owner, "rita", json!({"name": "ci"})).await;
    let rita = as_operator(&h, &first);
    assert_eq!(rita.post("/admin/v1/agents", json!({})).await.0, 201);
    let revoke = format!("/admin/v1/operators/rita/tokens/{first_id}");
    assert_eq!(owner.delete(&revoke).await.0, 204);
    let (status, headers, _) = rita.get("/admin/v1/agents").await;
    assert_eq!(status, 401, "revoked");
    assert!(headers.get("www-authenticate").is_some());
    assert_eq!(owner.delete(&revoke).await.0, 404, "already revoked");
    // Their other token still works, until the operator goes.
    let other = as_operator(&h, &second);
    assert_eq!(other.get("/admin/v1/agents").await.0, 200);
    assert_eq!(owner.delete("/admin/v1/operators/rita").await.0, 204);
    assert_eq!(other.get("/admin/v1/agents").await.0, 401);
    // A malformed or unknown operator token is refused like any wrong token.
    for t in ["idgop_", "idgop_nope_x", &format!("{first}x")] {
        assert_eq!(
            as_operator(&h, t).get("/admin/v1/agents").await.0,
            401,
            "{t}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (_mock, h, owner) = standard().await;
    assert_eq!(
        owner
            .post(
                "/admin/v1/operators",
                json!({"id": "tess", "role": "viewer"})
            )
            .await
            .0,
        201
    );
    let (_, short) = token(&owner, "tess", json!({"expires_in": 60})).await;
    let (_, long) = token(&owner, "tess", json!({"expires_in": 3600})).await;
    let tess = as_operator(&h, &short);
    assert_eq!(tess.get("/admin/v1/agents").await.0, 200);
    let (_, _, view) = owner.get("/admin/v1/operators/tess").await;
    let expiries: Vec<u64> = view["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expires_at"].as_u64().unwrap())
        .collect();
    assert_eq!(expiries[1] - expiries[0], 3540);
    h.setup.clock.advance(Duration::from_secs(61));
    assert_eq!(tess.get("/admin/v1/agents").await.0, 401, "expired");
    assert_eq!(as_operator(&h, &long).get("/admin/v1/agents").await.0, 200);
    // A lifetime outside the bounds is refused naming the field.
    let (status, _, body) = owner
        .post("/admin/v1/operators/tess/tokens", json!({"expires_in": 0}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["path"], "expires_in");
}

#[tokio::test]
async fn audit_records_name_each_operator_and_filter_by_each() {
    let (_mock, h, owner) = standard().await;
    let alice = as_operator(&h, &operator(&owner, "alice", "editor").await);
    let bob = as_operator(&h, &operator(&owner, "bob", "editor").await);
    let (status, _, a) = alice
        .header("x-request-id", "req-alice-1")
        .post("/admin/v1/agents", json!({"name": "from alice"}))
        .await;
    assert_eq!(status, 201);
    let (status, headers, b) = bob
        .post("/admin/v1/agents", json!({"name": "from bob"}))
        .await;
    assert_eq!(status, 201);
    let bob_request = headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(!bob_request.is_empty(), "a request id is generated");
    let (_, _, b2) = bob.post("/admin/v1/agents", json!({"name": "again"})).await;

    let chief = as_operator(&h, &operator(&owner, "chief", "owner").await);
    for reader in [&owner, &chief] {
        let (status, _, page) = reader.get("/admin/v1/audit?actor=alice").await;
        assert_eq!(status, 200, "{page}");
        let records = page["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{page}");
        assert_eq!(records[0]["id"], a["id"]);
        assert_eq!(records[0]["auth"], "operator_token");
        assert_eq!(records[0]["request_id"], "req-alice-1");
        let page = reader.get("/admin/v1/audit?actor=bob").await.2;
        let ids: Vec<&Value> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["id"])
            .collect();
        assert_eq!(ids, vec![&b2["id"], &b["id"]], "newest first");
        assert_eq!(page["records"][1]["request_id"], bob_request.as_str());
    }
    // The admin token's writes are the break-glass owner's.
    let page = owner
        .get("/admin/v1/audit?actor=admin&kind=operator&action=create")
        .await
        .2;
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{page}");
    assert!(records.iter().all(|r| r["auth"] == "admin_token"));
}

#[tokio::test]
async fn viewers_and_editors_read_only_their_own_audit_records() {
    let (_mock, h, owner) = standard().await;
    let alice = as_operator(&h, &operator(&owner, "alice", "editor").await);
    let viewer = as_operator(&h, &operator(&owner, "vic", "viewer").await);
    assert_eq!(alice.post("/admin/v1/agents", json!({})).await.0, 201);
    let (status, _, page) = viewer.get("/admin/v1/audit").await;
    assert_eq!(status, 200);
    assert_eq!(page["records"], json!([]), "the viewer wrote nothing");
    let (status, _, body) = viewer.get("/admin/v1/audit?actor=alice").await;
    assert_eq!(status, 403);
    assert!(error_message(&body).ends_with("requires the owner role"));
    let page = alice.get("/admin/v1/audit").await.2;
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["actor"], "alice");
    assert!(
        owner.get("/admin/v1/audit").await.2["records"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );
}

#[tokio::test]
async fn the_audit_log_cannot_be_changed_through_the_api() {
    let (_mock, _h, owner) = standard().await;
    assert_eq!(owner.post("/admin/v1/agents", json!({})).await.0, 201);
    let before = owner.get("/admin/v1/audit").await.2;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let body = (method != "DELETE").then(|| json!({}));
        assert_eq!(
            owner.call(method, "/admin/v1/audit", body).await.0,
            405,
            "{method}"
        );
    }
    let cursor = before["records"][0]["cursor"].as_str().unwrap();
    for method in ["GET", "PUT", "DELETE"] {
        let status = owner
            .call(method, &format!("/admin/v1/audit/{cursor}"), None)
            .await
            .0;
        assert_eq!(status, 404, "{method} one record");
    }
    assert_eq!(owner.get("/admin/v1/audit").await.2, before);
}

#[tokio::test]
async fn bad_operator_input_is_refused_naming_the_field_and_changes_nothing() {
    let (_mock, _h, owner) = standard().await;
    for (body, status, needle) in [
        (json!({"id": "x"}), 400, "missing field `role`"),
        (
            json!({"id": "x", "role": "god"}),
            400,
            "unknown variant `god`",
        ),
        (
            json!({"id": "x", "role": "viewer", "colour": 1}),
            400,
            "unknown field `colour`",
        ),
        (
            json!({"id": "admin", "role": "viewer"}),
            422,
            "operators.id",
        ),
        (json!({"id": "a b", "role": "viewer"}), 422, "operators.id"),
        (
            json!({"id": "x", "name": " ", "role": "viewer"}),
            422,
            "operators.name",
        ),
    ] {
        let (got, _, resp) = owner.post("/admin/v1/operators", body.clone()).await;
        assert_eq!(got, status, "{body}: {resp}");
        assert!(resp.to_string().contains(needle), "{body}: {resp}");
    }
    assert_eq!(owner.get("/admin/v1/operators").await.2["items"], json!([]));
    assert_eq!(
        owner
            .post("/admin/v1/operators", json!({"id": "x", "role": "viewer"}))
            .await
            .0,
        201
    );
    let (status, _, resp) = owner
        .patch("/admin/v1/operators/x", json!({"id": "y"}))
        .await;
    assert_eq!(status, 400, "{resp}");
    let (status, _, resp) = owner
        .post("/admin/v1/operators/x/tokens", json!({"hash": "00"}))
        .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(
        owner
            .post("/admin/v1/operators/ghost/tokens", json!({}))
            .await
            .0,
        404
    );
    let view = owner.get("/admin/v1/operators/x").await.2;
    assert_eq!(
        (
            view["role"].as_str(),
            view["tokens"].as_array().map(Vec::len)
        ),
        (Some("viewer"), Some(0))
    );
}

#[tokio::test]
async fn no_operator_token_appears_in_logs_audit_records_or_lists() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY", &s.master),
            ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("IDGUARD_LOG", "trace"),
        ],
    );
    let owner = AdminClient::new(served.admin, ADMIN_TOKEN);
    let token = operator(&owner, "canary-op", "editor").await;
    let (token_id, revoked) = token_of_second(&owner).await;
    let op = AdminClient::new(served.admin, &token);
    assert_eq!(
        op.post("/admin/v1/agents", json!({"name": "c"})).await.0,
        201
    );
    assert_eq!(op.get("/admin/v1/operators").await.0, 403);
    assert_eq!(
        owner
            .delete(&format!("/admin/v1/operators/canary-op/tokens/{token_id}"))
            .await
            .0,
        204
    );
    assert_eq!(
        AdminClient::new(served.admin, &revoked)
            .get("/admin/v1/agents")
            .await
            .0,
        401
    );
    let mut sinks = vec![
        owner.get("/admin/v1/audit").await.2.to_string(),
        owner.get("/admin/v1/operators").await.2.to_string(),
        owner
            .get("/admin/v1/operators/canary-op")
            .await
            .2
            .to_string(),
        get(&format!("http://{}/metrics", served.admin), &[])
            .await
            .2,
    ];
    sinks.push(served.stop());
    for t in [&token, &revoked] {
        // `idgop_<token id>_<secret>`: the secret may itself hold '_', so split off only the first two parts.
        let secret = t.splitn(3, '_').nth(2).unwrap();
        assert!(secret.len() >= 40, "{}", secret.len());
        for (i, sink) in sinks.iter().enumerate() {
            assert!(!sink.contains(secret), "sink {i} holds an operator token");
        }
    }
    // The audit record of a token's creation shows its id and time, not its hash.
    assert!(sinks[0].contains("[redacted]"));
}

/// A second token for `canary-op`: `(token id, token)`.
async fn token_of_second(owner: &AdminClient) -> (String, String) {
    token(owner, "canary-op", json!({"name": "second"})).await
}

#[tokio::test]
async fn the_admin_token_stays_a_break_glass_owner() {
    let (_mock, h, owner) = standard().await;
    let (status, headers, _) = owner.get("/admin/v1/operators").await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-request-id"));
    // Without any operator, the admin token manages operators; an agent's token is no operator token.
    let agent_token = crate::common::harness::keys()
        .es256
        .token(&crate::common::keys::claims("agent-1", ""));
    let (status, _, _) = get(
        &format!("http://{}/admin/v1/agents", h.admin),
        &[("authorization", &bearer(&agent_token))],
    )
    .await;
    assert_eq!(status, 401);
}
