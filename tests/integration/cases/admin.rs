//! The admin API: every write validated as a whole topology, stored durably with an audit record first, and
//! applied to the proxy live; file-managed objects refused; bad input refused with nothing stored.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{ADMIN_TOKEN, Harness, Setup, canary, keys, metric_value, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;

mod credentials;
mod durability;
mod edit_in_place;
pub(crate) mod operators;
mod paging;
mod read_back;
mod remote;
mod roles;
mod secret_use;
mod topology;
mod usage;

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
    // Corpus N02 for every credential: a writer's invalid write is refused naming the field; a viewer's is
    // refused 403 before its body is even read. Nothing is stored or audited, and the topology's generation stays.
    let (_mock, h, api) = standard().await;
    let callers = roles::every_role(h.admin).await;
    let generation = h.generation().await;
    let audited = api.get("/admin/v1/audit?limit=1000").await.2["records"]
        .as_array()
        .unwrap()
        .len();
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/admin/v1/agents", r#"{"name":"a","colour":"red"}"#.into(), 400, "unknown field `colour`"),
        ("POST", "/admin/v1/agents", r#"{"name":42}"#.into(), 400, "invalid type"),
        ("POST", "/admin/v1/agents", r#"{"name":"#.into(), 400, "invalid request body"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"llm"}"#.into(), 400, "missing field `value`"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"other","value":"x","hosts":["api.example.com"]}"#.into(), 422, "credentials.kind"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"llm","value":"x"}"#.into(), 400, "missing field `hosts`"),
        ("POST", "/admin/v1/credentials", r#"{"kind":"llm","value":"x","hosts":["https://x/"]}"#.into(), 422, "credentials.hosts[0]"),
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
    for (who, caller) in &callers {
        for (method, path, body, status, needle) in &cases {
            let (got, _, text) = caller.send_text(method, path, body).await;
            let (status, needle) = if who.writes() {
                (*status, *needle)
            } else {
                (403, "requires the editor role")
            };
            assert_eq!(
                got,
                status,
                "{who:?} {method} {path} {}: {text}",
                &body[..body.len().min(80)]
            );
            assert!(
                text.contains(needle),
                "{who:?} {method} {path}: {text} lacks {needle:?}"
            );
        }
    }
    let audit = api.get("/admin/v1/audit?limit=1000").await.2;
    assert_eq!(
        audit["records"].as_array().unwrap().len(),
        audited,
        "{audit}"
    );
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
        "M2M application license quota exhausted: 3 of 3 in use \
         (each agent, client application and enterprise service uses one)"
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
            .replace("{key}", "k")
            .replace("{token_id}", "t");
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

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The JSON log lines of `logs` whose `reason` is `reason`.
fn logged<'a>(logs: &'a str, reason: &str) -> Vec<&'a str> {
    let field = format!(r#""reason":"{reason}""#);
    logs.lines().filter(|l| l.contains(&field)).collect()
}

#[tokio::test]
async fn a_write_while_the_routing_file_cannot_be_parsed_is_503_to_retry_and_changes_nothing() {
    // An editor saving the routing file in place leaves it half-written for a moment; a write judged then is a
    // retryable 503 naming the routing file (not a 500), and nothing is stored.
    let (_mock, h, api) = standard().await;
    let before = api.get("/admin/v1/agents?limit=1000").await.2;
    let path = h.setup.config_path();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let (status, headers, body) = api
        .call(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "mid-save"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("routing_file_unusable")),
        "{body}"
    );
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert!(error_message(&body).contains("routing file"), "{body}");
    std::fs::write(&path, &good).unwrap();
    assert_eq!(api.get("/admin/v1/agents?limit=1000").await.2, before);
    assert_eq!(
        api.post("/admin/v1/agents", json!({"name": "after-save"}))
            .await
            .0,
        201
    );
}
