//! The admin API: every write validated as a whole topology, stored durably with an audit record first, and
//! applied to the proxy live; file-managed objects refused; bad input refused with nothing stored.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{ADMIN_TOKEN, Harness, Setup, canary, keys, metric_value, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;

/// Polls the proxy until `path` answers `want` for `token` (the API applies changes asynchronously, within 1 s).
async fn eventually(h: &Harness, path: &str, token: &str, want: u16) {
    let what = format!("{path} answering {want}");
    within(Duration::from_secs(1), &what, async || {
        get(&h.url(path), &[("authorization", &bearer(token))])
            .await
            .0
            == want
    })
    .await;
}

/// The standard topology (`agent-1` → `openai` at the mock), started, and a client of its admin API.
async fn standard() -> (Mock, Harness, AdminClient) {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    (mock, h, api)
}

/// The status `agent-1`, declared in the file, gets from its LLM node: the file's topology at work.
async fn file_agent_calls_openai(h: &Harness) -> u16 {
    let token = keys().es256.token(&claims("agent-1", ""));
    get(
        &h.url("/llm/openai/x"),
        &[("authorization", &bearer(&token))],
    )
    .await
    .0
}

/// The message of an error answer.
fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap()
}

/// The message of the first field an error answer names.
fn field_message(body: &Value) -> &str {
    body["error"]["fields"][0]["message"].as_str().unwrap()
}

#[tokio::test]
async fn an_agent_registered_through_the_api_reaches_its_llm_and_every_change_applies_live() {
    let (mock, h, api) = standard().await;
    // Register an agent: the Agent ID is generated, the audience derived from it.
    let (status, headers, agent) = api
        .post("/admin/v1/agents", json!({"name": "Support bot"}))
        .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("agent-"));
    assert_eq!(agent["audience"], format!("urn:idguard:agent:{id}"));
    assert_eq!(headers["etag"], "\"1\"");
    // A stored key, a node using it, and the outbound authorization.
    let secret = canary("api");
    let (status, _, cred) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "cred-api", "name": "OpenAI", "kind": "llm", "value": secret, "hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(status, 201, "{cred}");
    assert!(cred["fingerprint"].as_str().is_some_and(|f| f.len() == 16));
    let node = json!({"id": "api-llm", "upstream": format!("http://{}/v2", mock.addr), "style": "bearer", "credential": "cred-api"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 201);
    let token = keys().es256.token(&claims(&id, "llm.use"));
    eventually(&h, "/llm/api-llm/models", &token, 403).await;
    let (status, _, edge) = api
        .put(
            &format!("/admin/v1/agents/{id}/outbound/api-llm"),
            json!({"scopes": ["llm.use"]}),
        )
        .await;
    assert_eq!(status, 201, "{edge}");
    eventually(&h, "/llm/api-llm/models", &token, 200).await;
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    assert_eq!(mock.last().uri, "/v2/models");

    // Rename and disable with If-Match; the proxy refuses the disabled agent's token.
    let (status, headers, renamed) = api
        .if_match(1)
        .patch(
            &format!("/admin/v1/agents/{id}"),
            json!({"name": "Renamed", "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(
        (renamed["name"].as_str(), renamed["enabled"].as_bool()),
        (Some("Renamed"), Some(false))
    );
    assert_eq!(headers["etag"], "\"2\"");
    eventually(&h, "/llm/api-llm/models", &token, 401).await;
    // A stale If-Match, and the immutable fields.
    let (status, _, body) = api
        .if_match(1)
        .patch(&format!("/admin/v1/agents/{id}"), json!({"enabled": true}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("precondition_failed"))
    );
    for (field, value) in [
        ("audience", json!("urn:other")),
        ("id", json!("agent-other")),
    ] {
        let (status, _, body) = api
            .patch(&format!("/admin/v1/agents/{id}"), json!({ field: value }))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("immutable_field")),
            "{field}"
        );
        assert!(error_message(&body).starts_with(field));
    }
    assert_eq!(
        api.patch(&format!("/admin/v1/agents/{id}"), json!({"enabled": true}))
            .await
            .0,
        200
    );
    eventually(&h, "/llm/api-llm/models", &token, 200).await;

    // Withdraw the edge, then delete the agent: its edges go with it.
    assert_eq!(
        api.delete(&format!("/admin/v1/agents/{id}/outbound/api-llm"))
            .await
            .0,
        204
    );
    eventually(&h, "/llm/api-llm/models", &token, 403).await;
    assert_eq!(
        api.put(
            &format!("/admin/v1/agents/{id}/outbound/api-llm"),
            json!({})
        )
        .await
        .0,
        201
    );
    assert_eq!(api.delete(&format!("/admin/v1/agents/{id}")).await.0, 204);
    eventually(&h, "/llm/api-llm/models", &token, 401).await;
    assert_eq!(api.get(&format!("/admin/v1/agents/{id}")).await.0, 404);
    // A node in use by no edge can go; the credential then too.
    assert_eq!(api.delete("/admin/v1/llm/api-llm").await.0, 204);
    assert_eq!(api.delete("/admin/v1/credentials/cred-api").await.0, 204);
    // The file's topology never stopped working.
    assert_eq!(file_agent_calls_openai(&h).await, 200);
}

#[tokio::test]
async fn file_managed_objects_are_listed_but_refused() {
    let (_mock, _h, api) = standard().await;
    let (status, _, list) = api.get("/admin/v1/agents").await;
    assert_eq!(status, 200);
    let file_agent = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "agent-1")
        .unwrap()
        .clone();
    assert_eq!(file_agent["managed_by"], "file");
    for (method, path, body) in [
        (
            "PATCH",
            "/admin/v1/agents/agent-1",
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/admin/v1/agents/agent-1", None),
        ("DELETE", "/admin/v1/llm/openai", None),
        ("DELETE", "/admin/v1/credentials/cred-openai", None),
        ("DELETE", "/admin/v1/agents/agent-1/outbound/openai", None),
        (
            "PUT",
            "/admin/v1/agents/agent-1/outbound/openai",
            Some(json!({"scopes": []})),
        ),
    ] {
        let (status, _, body) = api.call(method, path, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("file_managed")),
            "{method} {path}"
        );
        assert!(error_message(&body).contains("routing file"));
    }
    let node = json!({"id": "openai", "upstream": "https://api.example.com", "style": "bearer", "credential": "cred-openai"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 409);
}

#[tokio::test]
async fn bad_input_is_refused_precisely_and_nothing_is_stored() {
    let (_mock, h, api) = standard().await;
    let generation = h.generation().await;
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/admin/v1/agents", r#"{"name":"a","colour":"red"}"#.into(), 400, "unknown field `colour`"),
        ("POST", "/admin/v1/agents", r#"{"name":42}"#.into(), 400, "invalid type"),
        ("POST", "/admin/v1/agents", r#"{"name":"#.into(), 400, "invalid request body"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"llm"}"#.into(), 400, "missing field `value`"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"other","value":"x","hosts":["api.example.com"]}"#.into(), 422, "credentials[1].kind"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"llm","value":"x"}"#.into(), 400, "missing field `hosts`"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"llm","value":"x","hosts":["https://x/"]}"#.into(), 422, "credentials[1].hosts[0]"),
        ("PUT", "/admin/v1/agents/agent-2/outbound/nowhere", "{}".into(), 422, "no llm, external or enterprise node has id"),
        ("PUT", "/admin/v1/agents/ghost/outbound/openai", "{}".into(), 422, "no agent has id"),
        (
            "POST",
            "/admin/v1/llm",
            json!({"id": "x", "upstream": "http://169.254.169.254/", "style": "bearer", "credential": "cred-openai"}).to_string(),
            422,
            "must be https",
        ),
        (
            "POST",
            "/admin/v1/llm",
            json!({"id": "y", "upstream": "https://u:p@api.example.com/", "style": "bearer", "credential": "cred-openai"}).to_string(),
            422,
            "must not carry user information",
        ),
        ("POST", "/admin/v1/agents", format!(r#"{{"name":"{}"}}"#, "n".repeat(70 * 1024)), 413, ""),
    ];
    for (method, path, body, status, needle) in cases {
        let (got, _, text) = api.send_text(method, path, &body).await;
        assert_eq!(
            got,
            status,
            "{method} {path} {}: {text}",
            &body[..body.len().min(80)]
        );
        assert!(
            text.contains(needle),
            "{method} {path}: {text} lacks {needle:?}"
        );
    }
    let (_, _, list) = api.get("/admin/v1/agents").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "nothing was added"
    );
    assert_eq!(
        api.get("/admin/v1/llm").await.2["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.generation().await, generation, "no reload happened");
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_token() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let agent_token = keys().es256.token(&claims("agent-1", ""));
    for auth in [
        None,
        Some(bearer("wrong")),
        Some(bearer(&agent_token)),
        Some(format!("Basic {ADMIN_TOKEN}")),
    ] {
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, hdrs, _) = get(&format!("http://{}/admin/v1/agents", h.admin), &headers).await;
        assert_eq!(status, 401, "{auth:?}");
        assert!(hdrs.get("www-authenticate").is_some());
    }
    // The admin API is not on the data plane at all.
    assert_eq!(
        get(
            &h.url("/admin/v1/agents"),
            &[("authorization", &bearer(ADMIN_TOKEN))]
        )
        .await
        .0,
        404
    );
    // Operational endpoints stay open on the admin listener.
    assert_eq!(
        get(&format!("http://{}/metrics", h.admin), &[]).await.0,
        200
    );
}

#[tokio::test]
async fn an_idempotency_key_gives_one_effect_and_the_same_answer() {
    let (_mock, _h, api) = standard().await;
    let keyed = api.idempotency_key("create-support-bot-1");
    let first = keyed.post("/admin/v1/agents", json!({"name": "bot"})).await;
    let second = keyed.post("/admin/v1/agents", json!({"name": "bot"})).await;
    assert_eq!(first.0, 201);
    assert_eq!((first.0, &first.2), (second.0, &second.2));
    let list = api.get("/admin/v1/agents").await.2;
    assert_eq!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == "bot")
            .count(),
        1
    );
    let (status, _, body) = keyed
        .post("/admin/v1/agents", json!({"name": "other"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
}

#[tokio::test]
async fn license_and_credential_quotas_are_enforced() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 3\nmax_credentials = 2\n");
    let h = s.start().await;
    let api = AdminClient::of(&h);
    assert_eq!(api.post("/admin/v1/agents", json!({})).await.0, 201);
    let (status, _, body) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"]["message"],
        "M2M application license quota exhausted: 3 of 3 in use"
    );
    let cred = |id: &str| json!({"id": id, "kind": "external", "value": "v", "hosts": ["api.example.com"]});
    assert_eq!(api.post("/admin/v1/credentials", cred("c2")).await.0, 201);
    let (status, _, body) = api.post("/admin/v1/credentials", cred("c3")).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (409, Some("stored credential limit reached: 2 of 2 stored"))
    );
}

#[tokio::test]
async fn writes_are_audited_first_and_refused_when_the_audit_log_cannot_be_written() {
    let (_mock, h, api) = standard().await;
    let secret = canary("audited");
    let (status, _, _) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "c-aud", "kind": "llm", "value": secret, "hosts": ["api.example.com"]}),
        )
        .await;
    assert_eq!(status, 201);
    let audit_path = h.setup.dir.path().join("data/audit.log");
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let record: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            record["action"].as_str(),
            record["kind"].as_str(),
            record["id"].as_str()
        ),
        (Some("create"), Some("credential"), Some("c-aud"))
    );
    assert_eq!(record["after"]["sealed"], "[redacted]");
    assert!(
        !audit.contains(&secret) && !audit.contains("idg1."),
        "a credential value reached the audit log"
    );
    // Break the audit sink: the write is refused and nothing changes.
    std::fs::remove_file(&audit_path).unwrap();
    std::fs::create_dir(&audit_path).unwrap();
    let (status, headers, body) = api
        .post("/admin/v1/agents", json!({"name": "unaudited"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("audit_unavailable"))
    );
    assert!(headers.get("retry-after").is_some());
    let list = api.get("/admin/v1/agents").await.2;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "unaudited")
    );
    // The data plane is unaffected.
    assert_eq!(file_agent_calls_openai(&h).await, 200);
}

/// Reading a credential never opens its sealed value: the fingerprint shown is the one computed when the value
/// was sealed (the admin API stores it beside the sealed value); a file credential without one shows none.
#[tokio::test]
async fn reading_credentials_never_opens_them() {
    let mut s = Setup::new();
    let sealed = s.master_keys().seal("bare", b"CANARY-bare-value").unwrap();
    s.raw(&format!(
        "[[credentials]]\nid = \"bare\"\nkind = \"llm\"\nsealed = \"{sealed}\"\n"
    ));
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let (status, _, bare) = api.get("/admin/v1/credentials/bare").await;
    assert_eq!(status, 200);
    assert!(bare["fingerprint"].is_null(), "{bare}");
    let value = canary("api");
    let (status, _, created) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "c-y", "kind": "llm", "value": value, "hosts": ["api.example.com"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let expected =
        idguard_config::hashes::KeyedHasher::new(&crate::common::harness::FINGERPRINT_KEY)
            .fingerprint(value.as_bytes());
    assert_eq!(created["fingerprint"], expected.as_str());
    let (_, _, read) = api.get("/admin/v1/credentials/c-y").await;
    assert_eq!(read["fingerprint"], expected.as_str());
}

#[tokio::test]
async fn credential_values_are_never_returned() {
    // Corpus K02: metadata and a keyed fingerprint only; no plaintext, no ciphertext.
    let mock = Mock::start().await;
    let file_secret = canary("file");
    let h = Setup::standard(&mock, &file_secret).start().await;
    let api = AdminClient::of(&h);
    let secret = canary("api");
    let (_, _, created) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "c-x", "kind": "llm", "value": secret, "hosts": ["api.example.com"]}),
        )
        .await;
    let (_, _, listed) = api.get("/admin/v1/credentials").await;
    let (_, _, one) = api.get("/admin/v1/credentials/c-x").await;
    let (_, _, file_one) = api.get("/admin/v1/credentials/cred-openai").await;
    for body in [&created, &listed, &one, &file_one] {
        let text = body.to_string();
        for leak in [
            secret.as_str(),
            &secret[secret.len() - 8..],
            file_secret.as_str(),
            &file_secret[file_secret.len() - 8..],
            "idg1.",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
    assert_eq!(created["fingerprint"], one["fingerprint"]);
    assert_eq!(file_one["managed_by"], "file");
    assert!(file_one["fingerprint"].as_str().is_some());
    let m = h.metrics().await;
    assert!(!m.contains(&secret[secret.len() - 8..]));
    // The write is live once the reload it triggered has been applied (asynchronously, within milliseconds).
    crate::common::harness::within(
        Duration::from_secs(2),
        "the credential write is applied",
        async || metric_value(&h.metrics().await, "idguard_config_generation") >= 2.0,
    )
    .await;
}

#[tokio::test]
async fn every_acknowledged_write_survives_kill_9() {
    // Corpus N01: a stream of writes, SIGKILL in the middle, restart: every acknowledged write is there, at most
    // the one in flight is extra, and nothing is partial.
    use std::sync::{Arc, Mutex};

    use crate::common::process::Served;
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 100000\n");
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let mut served = Served::start(&s.config_path(), &env);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (acked, api) = (acked.clone(), AdminClient::new(served.admin, ADMIN_TOKEN));
        tokio::spawn(async move {
            for i in 0..100_000 {
                let body = json!({"name": format!("bot-{i}")});
                let Some((201, _, v)) = api
                    .try_post("/admin/v1/agents", body, Duration::from_secs(2))
                    .await
                else {
                    return;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap().to_owned());
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    served.child.kill().unwrap(); // SIGKILL
    let _ = served.child.wait();
    let _ = writer.await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "only {} writes acknowledged before the kill",
        acked.len()
    );
    drop(served);

    let served = Served::start(&s.config_path(), &env);
    let (status, _, list) = AdminClient::new(served.admin, ADMIN_TOKEN)
        .get("/admin/v1/agents")
        .await;
    assert_eq!(status, 200);
    let stored: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["managed_by"] == "api")
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(
            stored.contains(&id.as_str()),
            "acknowledged {id} lost after kill -9"
        );
    }
    assert!(
        stored.len() <= acked.len() + 1,
        "{} stored, {} acknowledged",
        stored.len(),
        acked.len()
    );
    let audit = std::fs::read_to_string(s.dir.path().join("idguard-data/audit.log")).unwrap();
    assert!(
        audit.lines().count() >= acked.len(),
        "every acknowledged write has its audit record"
    );
    drop(served);
}

#[tokio::test]
async fn export_writes_a_file_that_check_accepts_and_serve_reproduces() {
    use crate::common::process::{Served, run};
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let served = Served::start(&s.config_path(), &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let (status, _, agent) = api
        .post("/admin/v1/agents", json!({"name": "exported"}))
        .await;
    assert_eq!(status, 201);
    let id = agent["id"].as_str().unwrap().to_owned();
    let secret = canary("exported");
    assert_eq!(
        api.post(
            "/admin/v1/credentials",
            json!({"id": "c-exp", "kind": "llm", "value": secret, "hosts": ["127.0.0.1"]})
        )
        .await
        .0,
        201
    );
    let node = json!({"id": "exp", "upstream": format!("http://{}/e", mock.addr), "style": "azure", "credential": "c-exp"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 201);
    assert_eq!(
        api.put(
            &format!("/admin/v1/agents/{id}/outbound/exp"),
            json!({"scopes": []})
        )
        .await
        .0,
        201
    );
    served.stop();

    let exported = s.dir.path().join("exported.toml");
    let config = s.config_path();
    let (code, _, err) = run(
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        !text.contains(&secret),
        "the export holds only the sealed value"
    );
    let (code, out, _) = run(
        &["check", "--config", exported.to_str().unwrap()],
        &[("IDGUARD_MASTER_KEY", &s.master)],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 agents, 2 nodes, 2 credentials, 2 outbound authorizations"),
        "{out}"
    );

    // Served from the export alone, with an empty store, the API-made agent still reaches its node.
    let empty = s.dir.path().join("empty-data");
    let served = Served::start(
        &exported,
        &[
            ("IDGUARD_MASTER_KEY", s.master.as_str()),
            ("IDGUARD_DATA_DIR", empty.to_str().unwrap()),
        ],
    );
    let token = keys().es256.token(&claims(&id, ""));
    let (status, _, _) = get(
        &format!("http://{}/llm/exp/v1/x", served.public),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mock.last().header("api-key"), Some(secret.as_str()));
    assert_eq!(mock.last().uri, "/e/v1/x");
}

#[tokio::test]
async fn j01_api_upstreams_are_refused_when_they_point_inside() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.admin_allow.clear();
    let h = s.start().await;
    let api = AdminClient::of(&h);
    for upstream in [
        "http://169.254.169.254/",
        "https://100.100.100.200/",
        "http://127.0.0.1:6379",
        "https://127.0.0.1:6379",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://localhost./",
        "file:///etc/passwd",
        "gopher://example.com/",
        "https://user:pw@api.example.com/",
        "http://api.example.com/",
    ] {
        let node = json!({"id": "n", "upstream": upstream, "style": "bearer", "credential": "cred-openai"});
        let (status, _, body) = api.post("/admin/v1/llm", node).await;
        assert_eq!(status, 422, "{upstream}: {body}");
        assert_eq!(
            body["error"]["fields"][0]["path"], "llm.upstream",
            "{upstream}"
        );
    }
    // Token endpoints get the same rules: an OAuth client secret or an agent's token would be sent there.
    for (path, body, field) in [
        (
            "/admin/v1/external",
            json!({"id": "x", "upstream": "https://api.example.com", "style": "bearer", "credential": "cred-openai",
                   "oauth": {"token_url": "http://169.254.169.254/token", "client_id": "c"}}),
            "external.oauth.token_url",
        ),
        (
            "/admin/v1/enterprise",
            json!({"id": "svc", "audience": "urn:svc", "exchange": {"token_url": "https://10.0.0.1/token"}}),
            "enterprise.exchange.token_url",
        ),
    ] {
        let (status, _, resp) = api.post(path, body).await;
        assert_eq!(status, 422, "{path}: {resp}");
        assert_eq!(resp["error"]["fields"][0]["path"], field);
    }
    let list = api.get("/admin/v1/llm").await.2;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing stored");
    // A public upstream passes, with a credential bound to it (corpus J04).
    let cred =
        json!({"id": "c-example", "kind": "llm", "value": "v", "hosts": ["api.example.com"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let ok = json!({"id": "n", "upstream": "https://api.example.com/v1", "style": "bearer", "credential": "c-example"});
    assert_eq!(api.post("/admin/v1/llm", ok).await.0, 201);
}

#[tokio::test]
async fn an_agents_topology_lists_what_a_diagram_draws() {
    let (_mock, _h, api) = standard().await;
    let (status, _, topo) = api.get("/admin/v1/agents/agent-1/topology").await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["agent", "llm", "credential"]);
    assert_eq!(
        topo["edges"][0],
        json!({"kind": "outbound", "from": "agent-1", "to": "openai", "scopes": []})
    );
    assert_eq!(
        topo["edges"][1],
        json!({"kind": "uses", "from": "openai", "to": "cred-openai"})
    );
    // An API-made edge shows at once; an unknown agent is 404.
    assert_eq!(
        api.put(
            "/admin/v1/agents/agent-2/outbound/openai",
            json!({"scopes": ["a"]})
        )
        .await
        .0,
        201
    );
    let topo = api.get("/admin/v1/agents/agent-2/topology").await.2;
    assert_eq!(topo["edges"][0]["scopes"], json!(["a"]));
    assert_eq!(api.get("/admin/v1/agents/nobody/topology").await.0, 404);
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let (_mock, h, api) = standard().await;
    // Served without the token.
    let (status, _, text) = get(&format!("http://{}/admin/v1/openapi.json", h.admin), &[]).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 11);
    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "agent-1")
            .replace("{node}", "openai")
            .replace("{secret}", "s")
            .replace("{client}", "c")
            .replace("{key}", "k");
        for method in METHODS {
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let (status, _, body_json) = api.call(&method.to_uppercase(), &concrete, body).await;
            let documented = item.get(method).is_some();
            // A route that exists answers from its handler (any status, JSON); one that does not is axum's bare
            // 404 (unknown path) or 405 (known path, other method).
            let routed = status != 405 && !(status == 404 && body_json.is_null());
            assert_eq!(
                routed, documented,
                "{method} {path}: status {status}, documented {documented}"
            );
        }
    }
}

#[tokio::test]
async fn enterprise_services_grant_their_permissions_and_removing_one_removes_it_from_grants() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 3\n");
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let crm = json!({
        "id": "crm", "name": "CRM", "audience": "https://crm.internal",
        "permissions": [{"name": "Read contacts", "scope": "crm.read"}, {"scope": "crm.write"}]
    });
    let (status, headers, body) = api.post("/admin/v1/enterprise", crm).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["etag"], "\"1\"");
    // Grants must be permissions of the service.
    let (status, _, body) = api
        .put(
            "/admin/v1/agents/agent-1/outbound/crm",
            json!({"scopes": ["crm.admin"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(field_message(&body).contains("not a permission of enterprise service"));
    let grant = json!({"scopes": ["crm.read", "crm.write"]});
    assert_eq!(
        api.put("/admin/v1/agents/agent-1/outbound/crm", grant)
            .await
            .0,
        201
    );
    let topo = api.get("/admin/v1/agents/agent-1/topology").await.2;
    let edge = topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "crm")
        .unwrap()
        .clone();
    assert_eq!(edge["scopes"], json!(["crm.read", "crm.write"]));
    // Duplicate scopes within a service, and the immutable audience.
    let dup = json!({"permissions": [{"scope": "a"}, {"scope": "a"}]});
    assert_eq!(api.patch("/admin/v1/enterprise/crm", dup).await.0, 422);
    let (status, _, body) = api
        .patch(
            "/admin/v1/enterprise/crm",
            json!({"audience": "https://other"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("immutable_field"))
    );
    // Removing a permission removes it from every grant.
    let (status, headers, _) = api
        .patch(
            "/admin/v1/enterprise/crm",
            json!({"permissions": [{"scope": "crm.read"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["etag"], "\"2\"");
    let topo = api.get("/admin/v1/agents/agent-1/topology").await.2;
    let edge = topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "crm")
        .unwrap()
        .clone();
    assert_eq!(edge["scopes"], json!(["crm.read"]));
    // Services use M2M licenses: two file agents + crm = 3 of 3.
    let (status, _, body) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("quota_exhausted"))
    );
    let other = json!({"id": "erp", "audience": "https://erp.internal"});
    assert_eq!(api.post("/admin/v1/enterprise", other).await.0, 409);
    // An audience is unique across agents and services; deleting the service takes its grants.
    assert_eq!(api.delete("/admin/v1/enterprise/crm").await.0, 204);
    let topo = api.get("/admin/v1/agents/agent-1/topology").await.2;
    assert!(
        topo["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["to"] != "crm")
    );
    let clash = json!({"id": "erp", "audience": "urn:idguard:agent:agent-1"});
    let (status, _, body) = api.post("/admin/v1/enterprise", clash).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn the_directory_and_the_agent_permission() {
    let (_mock, _h, api) = standard().await;
    for (coll, body) in [
        ("organizations", json!({"id": "acme", "name": "Acme"})),
        ("organizations", json!({"id": "eng", "parent": "acme"})),
        ("groups", json!({"id": "support"})),
        (
            "users",
            json!({"id": "alice", "organization": "eng", "groups": ["support"], "email": "alice@example.com"}),
        ),
    ] {
        let (status, _, resp) = api.post(&format!("/admin/v1/{coll}"), body).await;
        assert_eq!(status, 201, "{coll}: {resp}");
    }
    // References must exist; a cycle is refused; unknown fields are 400.
    let (status, _, body) = api
        .post("/admin/v1/users", json!({"id": "bob", "groups": ["nope"]}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, _) = api
        .put(
            "/admin/v1/organizations/acme",
            json!({"id": "acme", "parent": "eng"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        api.post("/admin/v1/groups", json!({"id": "g", "colour": "red"}))
            .await
            .0,
        400
    );
    assert_eq!(
        api.put("/admin/v1/groups/support", json!({"id": "other"}))
            .await
            .0,
        409
    );
    // An organization in use cannot go.
    assert_eq!(api.delete("/admin/v1/organizations/eng").await.0, 422);
    let users = api.get("/admin/v1/users").await.2;
    assert_eq!(users["items"][0]["id"], "alice");

    // The agent permission: manual mode granted to the organization; assignments need manual mode.
    let (_, _, agent) = api.post("/admin/v1/agents", json!({"name": "bot"})).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        agent["permission"],
        json!({}),
        "auto mode with agent.access by default"
    );
    let path = format!("/admin/v1/agents/{id}/permission");
    let (status, _, _) = api.put(&path, json!({"users": ["alice"]})).await;
    assert_eq!(status, 422, "assignments apply only in manual mode");
    let (status, _, _) = api
        .put(&path, json!({"mode": "manual", "groups": ["ghost"]}))
        .await;
    assert_eq!(status, 422);
    let permission = json!({"name": "Use the bot", "scope": "bot.use", "mode": "manual", "organizations": ["acme"]});
    let (status, headers, agent) = api.put(&path, permission.clone()).await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(agent["permission"], permission);
    assert_eq!(
        api.put("/admin/v1/agents/agent-1/permission", json!({}))
            .await
            .0,
        409
    );
    // A client granted the old scope loses it when the permission's scope changes.
    assert_eq!(
        api.post("/admin/v1/clients", json!({"id": "c1"})).await.0,
        201
    );
    let inbound = format!("/admin/v1/agents/{id}/inbound/c1");
    assert_eq!(
        api.put(&inbound, json!({"scopes": ["bot.use"]})).await.0,
        201
    );
    let renamed = json!({"scope": "bot.run", "mode": "manual", "organizations": ["acme"]});
    assert_eq!(api.put(&path, renamed).await.0, 200);
    let (status, _, edge) = api
        .if_match(2)
        .put(&inbound, json!({"scopes": ["bot.run"]}))
        .await;
    assert_eq!(
        status, 200,
        "the cascade updated the grant to version 2: {edge}"
    );
}

#[tokio::test]
async fn client_secrets_are_shown_once_and_kept_only_as_keyed_hashes() {
    let (_mock, h, api) = standard().await;
    let (_, _, agent) = api.post("/admin/v1/agents", json!({"name": "bot"})).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/agents/{id}/secrets");
    let (status, _, first) = api.post_empty(&path).await;
    assert_eq!(status, 201, "{first}");
    let secret = first["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("idgsec_") && secret.len() >= 7 + 43,
        "256 bits: {secret}"
    );
    let (_, _, second) = api.post_empty(&path).await;
    assert_ne!(second["secret"], first["secret"]);
    // Listed by id only, several at once (rotation), and revocable one by one.
    let list = api.get(&path).await.2;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret[8..]));
    let one = api.get(&format!("/admin/v1/agents/{id}")).await.2;
    assert!(!one.to_string().contains(&secret[8..]));
    let sid = first["id"].as_str().unwrap();
    assert_eq!(api.delete(&format!("{path}/{sid}")).await.0, 204);
    assert_eq!(api.delete(&format!("{path}/{sid}")).await.0, 404);
    assert_eq!(api.get(&path).await.2["items"].as_array().unwrap().len(), 1);
    // The value is nowhere at rest: not in the database file, not in the audit log.
    for file in ["data/topology.redb", "data/audit.log"] {
        let bytes = std::fs::read(h.setup.dir.path().join(file)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret[8..]), "the secret is in {file}");
    }
    // A replayable answer would have to store the secret, so Idempotency-Key is refused here.
    assert_eq!(api.idempotency_key("k").post_empty(&path).await.0, 400);
    assert_eq!(
        api.post_empty("/admin/v1/agents/agent-1/secrets").await.0,
        409
    );
}

#[tokio::test]
async fn public_keys_register_as_jwk_or_pem_and_fix_their_algorithm() {
    use base64::Engine;
    let (_mock, _h, api) = standard().await;
    let (_, _, agent) = api
        .post(
            "/admin/v1/agents",
            json!({"name": "bot", "auth": "private_key_jwt"}),
        )
        .await;
    assert_eq!(agent["auth"], "private_key_jwt");
    let path = format!("/admin/v1/agents/{}/keys", agent["id"].as_str().unwrap());
    for (key, alg) in [
        (&keys().es256, "ES256"),
        (&keys().rs256, "RS256"),
        (&keys().eddsa, "EdDSA"),
    ] {
        let body = json!({"id": format!("k-{alg}"), "jwk": key.jwk});
        let (status, _, resp) = api.post(&path, body).await;
        assert_eq!((status, resp["alg"].as_str()), (201, Some(alg)), "{resp}");
    }
    // The same EC key as a PEM (SubjectPublicKeyInfo).
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let mut der = hex_to_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.push(0x04);
    der.extend(b64(keys().es256.jwk["x"].as_str().unwrap()));
    der.extend(b64(keys().es256.jwk["y"].as_str().unwrap()));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let (status, _, resp) = api.post(&path, json!({"id": "pem", "pem": pem})).await;
    assert_eq!(
        (status, resp["alg"].as_str()),
        (201, Some("ES256")),
        "{resp}"
    );
    // Refused: symmetric keys, private keys, and both forms at once.
    for bad in [
        json!({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        json!({"jwk": {"kty": "EC", "crv": "P-256", "x": keys().es256.jwk["x"], "y": keys().es256.jwk["y"], "d": "AAAA"}}),
        json!({"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}),
        json!({"jwk": keys().es256.jwk, "pem": pem}),
    ] {
        let (status, _, resp) = api.post(&path, bad).await;
        assert_eq!(status, 422, "{resp}");
    }
    assert_eq!(api.get(&path).await.2["items"].as_array().unwrap().len(), 4);
    assert_eq!(api.delete(&format!("{path}/pem")).await.0, 204);
    assert_eq!(api.get(&path).await.2["items"].as_array().unwrap().len(), 3);
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn client_applications_and_inbound_authorization() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 4\n\n[[groups]]\nid = \"support\"\n");
    let h = s.start().await;
    let api = AdminClient::of(&h);
    // Redirect URIs: http(s) only, and a # must be written %23.
    let (status, _, body) = api
        .post(
            "/admin/v1/clients",
            json!({"id": "web", "redirect_uris": ["https://app.example.com/cb#frag"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(field_message(&body).contains("%23"), "{body}");
    assert_eq!(
        api.post(
            "/admin/v1/clients",
            json!({"id": "web", "redirect_uris": ["ftp://x/"]})
        )
        .await
        .0,
        422
    );
    // A client_id may not be an agent's (corpus A10).
    let (status, _, _) = api
        .post("/admin/v1/clients", json!({"id": "agent-1"}))
        .await;
    assert_eq!(status, 409);
    let web = json!({"id": "web", "name": "Web app", "redirect_uris": ["https://app.example.com/cb%23x", "http://localhost:3000/cb"],
                     "auth": "private_key_jwt", "groups": ["support"]});
    let (status, headers, client) = api.post("/admin/v1/clients", web).await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(client["groups"], json!(["support"]));
    assert_eq!(
        api.patch("/admin/v1/clients/web", json!({"groups": ["ghost"]}))
            .await
            .0,
        422
    );
    assert_eq!(
        api.patch("/admin/v1/clients/web", json!({"id": "other"}))
            .await
            .0,
        409
    );
    // Inbound authorization grants the agent's permission scope and nothing else.
    let (status, _, body) = api
        .put(
            "/admin/v1/agents/agent-1/inbound/web",
            json!({"scopes": ["admin"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(field_message(&body).contains("agent.access"), "{body}");
    let (status, _, edge) = api
        .put(
            "/admin/v1/agents/agent-1/inbound/web",
            json!({"scopes": ["agent.access"]}),
        )
        .await;
    assert_eq!((status, &edge["scopes"]), (201, &json!(["agent.access"])));
    // Secrets work for clients as for agents.
    let (status, _, secret) = api.post_empty("/admin/v1/clients/web/secrets").await;
    assert_eq!(status, 201);
    assert!(secret["secret"].as_str().unwrap().starts_with("idgsec_"));
    // Clients use M2M licenses: 2 agents + web = 3 of 4, one more client fits, then none.
    assert_eq!(api.post("/admin/v1/clients", json!({})).await.0, 201);
    let (status, _, body) = api.post("/admin/v1/clients", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("quota_exhausted"))
    );
    // Deleting the client takes its inbound authorizations.
    assert_eq!(api.delete("/admin/v1/clients/web").await.0, 204);
    assert_eq!(
        api.delete("/admin/v1/agents/agent-1/inbound/web").await.0,
        404
    );
}

/// The JSON log lines of `logs` whose `reason` is `reason`.
fn logged<'a>(logs: &'a str, reason: &str) -> Vec<&'a str> {
    let field = format!(r#""reason":"{reason}""#);
    logs.lines().filter(|l| l.contains(&field)).collect()
}

#[tokio::test]
async fn an_unreadable_routing_file_is_an_internal_error_logged_once_and_nothing_is_stored() {
    use crate::common::process::Served;
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    let config = s.config_path();
    std::fs::write(&config, s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let served = Served::start(&config, &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    // The file becomes a directory: reading it fails whoever runs the test (root reads a file of mode 000).
    let saved = config.with_extension("saved");
    std::fs::rename(&config, &saved).unwrap();
    std::fs::create_dir(&config).unwrap();
    for (method, body) in [("POST", Some(json!({"name": "unread"}))), ("GET", None)] {
        let (status, headers, body) = api.call(method, "/admin/v1/agents", body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (500, Some("internal_error")),
            "{method}: {body}"
        );
        assert_eq!(error_message(&body), "internal error", "a generic body");
        assert!(headers.get("retry-after").is_none(), "not a retryable 503");
    }
    std::fs::remove_dir(&config).unwrap();
    std::fs::rename(&saved, &config).unwrap();
    let (_, _, list) = api.get("/admin/v1/agents").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "unread"),
        "nothing was stored"
    );
    let audit = std::fs::read_to_string(s.dir.path().join("idguard-data/audit.log"));
    assert!(!audit.unwrap_or_default().contains("unread"));
    // One log line per failed request, with the cause and the request.
    let logs = served.stop();
    let lines = logged(&logs, "config_unreadable");
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(
        lines[0].contains("POST") && lines[1].contains("GET"),
        "{logs}"
    );
    assert!(
        lines.iter().all(|l| l.contains("/admin/v1/agents")),
        "{logs}"
    );
}

#[tokio::test]
async fn a_corrupt_stored_object_is_an_internal_error_and_its_content_is_never_logged() {
    use crate::common::keys::rand_hex;
    use crate::common::process::Served;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw(&format!(
        "[store]\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n"
    ));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    // This test's keys go even when an assertion fails.
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            crate::common::harness::redis_cleanup(&self.0, &self.1);
        }
    }
    let _cleanup = Cleanup(url.clone(), prefix.clone());
    let served = Served::start(&s.config_path(), &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    // A stored agent whose body does not fit the agent type, with a value that must stay out of every log line;
    // then a record that is not a stored object at all.
    let secret = canary("corrupt");
    let body_corrupt = json!({"kind": "agent", "id": "bad", "version": 1, "created_at": 0, "updated_at": 0,
               "body": {"id": "bad", "enabled": secret}});
    let record_corrupt = json!({"kind": "agent", "id": "bad", "version": secret});
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for record in [body_corrupt, record_corrupt] {
        let _: () = redis::cmd("HSET")
            .arg(format!("{prefix}:objects"))
            .arg("agent/bad")
            .arg(record.to_string())
            .query(&mut conn)
            .unwrap();
        for (method, path, body) in [
            ("GET", "/admin/v1/agents", None),
            ("GET", "/admin/v1/agents/bad", None),
            ("POST", "/admin/v1/agents", Some(json!({"name": "beside"}))),
        ] {
            let (status, _, body) = api.call(method, path, body).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (500, Some("internal_error")),
                "{method} {path}: {body}"
            );
            assert!(!body.to_string().contains(&secret));
        }
    }
    let _: () = redis::cmd("HDEL")
        .arg(format!("{prefix}:objects"))
        .arg("agent/bad")
        .query(&mut conn)
        .unwrap();
    let (status, _, list) = api.get("/admin/v1/agents").await;
    assert_eq!(status, 200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "beside"),
        "nothing was stored"
    );
    let logs = served.stop();
    let lines = logged(&logs, "stored_object_corrupt");
    assert_eq!(lines.len(), 6, "one line per failed request: {logs}");
    assert!(lines.iter().all(|l| l.contains("agent/bad")), "{logs}");
    assert!(!logs.contains(&secret[secret.len() - 8..]), "{logs}");
}
