//! SSRF closed by name and at connect time, and credentials bound to their destinations (corpus J02a, J03, J04):
//! the admin API resolves the host names it is given and refuses internal ones; the proxy checks every address
//! again when it connects, so a name rebound to loopback after it was written reaches nothing; the routing
//! file's routes may reach internal names but never the metadata ranges; an API-made node may only use a
//! credential bound to its destination.
//!
//! The refusal's log line goes through the canary sweep too (with `leaks.rs`'s helpers). Every in-process test
//! resolves names with the harness's manual resolver, never real DNS.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::leaks;
use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{ADMIN_TOKEN, Harness, PUBLIC_ADDR, Setup, canary, keys, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;
use crate::common::process::Served;
use crate::common::tls::TestCa;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TLS mock whose certificate (from `ca`) names every test host, so that a connection the guard let through
/// would be served and recorded.
async fn tls_mock(ca: &TestCa) -> Mock {
    let names = ["evil.test", "idp.test", "internal.test", "meta.test"];
    Mock::start_tls(ca.server(&names).server_config(&[b"http/1.1"])).await
}

/// The proxy's answer to `agent-1` at `path`: status and error code.
async fn call(h: &Harness, path: &str) -> (u16, Value) {
    let token = keys().es256.token(&claims("agent-1", ""));
    let (status, _, body) = get(&h.url(path), &[("authorization", &bearer(&token))]).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Calls `path` until the API's change is live (the route exists and `agent-1` may call it); returns the first
/// answer that got past routing and authorization (so an upstream sees at most one request).
async fn once_live(h: &Harness, path: &str) -> (u16, Value) {
    let mut answer = (0, Value::Null);
    within(
        Duration::from_secs(2),
        &format!("{path} routed"),
        async || {
            answer = call(h, path).await;
            !matches!(answer.0, 403 | 404)
        },
    )
    .await;
    answer
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[tokio::test]
async fn j03_names_that_resolve_inside_and_ipv6_disguises_are_refused_when_written() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    s.resolver.set("evil.test", &[ip("127.0.0.1")]);
    s.resolver.set("127.0.0.1.nip.test", &[ip("127.0.0.1")]);
    s.resolver
        .set("mapped.test", &[ip(PUBLIC_ADDR), ip("::ffff:10.0.0.1")]);
    s.resolver.set("gone.test", &[]);
    let h = s.start().await;
    let api = AdminClient::of(&h);
    for (upstream, needle) in [
        ("https://evil.test/v1", "evil.test resolves to 127.0.0.1"),
        ("https://127.0.0.1.nip.test/", "resolves to 127.0.0.1"),
        ("https://mapped.test:8443/", "resolves to ::ffff:10.0.0.1"),
        ("https://gone.test/", "gone.test does not resolve"),
        ("https://[::127.0.0.1]/", "loopback, private"),
        ("https://[64:ff9b::7f00:1]/", "loopback, private"),
        ("https://[fe80::1%25lo]/", "scoped link-local"),
        ("http://api.example.com/", "[admin] upstream_allow_hosts"),
    ] {
        let node = json!({"id": "n", "upstream": upstream, "style": "bearer", "credential": "cred-openai"});
        let (status, _, body) = api.post("/admin/v1/llm", node).await;
        assert_eq!(status, 422, "{upstream}: {body}");
        let field = &body["error"]["fields"][0];
        assert_eq!(field["path"], "llm.upstream", "{upstream}");
        let message = field["message"].as_str().unwrap();
        assert!(message.contains(needle), "{upstream}: {message}");
        if needle.contains("resolves") {
            assert!(
                message.contains("[admin] upstream_allow_hosts"),
                "{message}"
            );
        }
    }
    // Token endpoints and agent endpoints are held to the same rules.
    let oauth = json!({"id": "x", "upstream": "https://api.example.com", "style": "bearer", "credential": "cred-openai",
                       "oauth": {"token_url": "https://evil.test/token", "client_id": "c"}});
    let (status, _, body) = api.post("/admin/v1/external", oauth).await;
    assert_eq!(
        (status, &body["error"]["fields"][0]["path"]),
        (422, &json!("external.oauth.token_url"))
    );
    let (status, _, agent) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(status, 201);
    let id = agent["id"].as_str().unwrap();
    let (status, _, body) = api
        .patch(
            &format!("/admin/v1/agents/{id}"),
            json!({"endpoint": "https://evil.test/agent"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["fields"][0]["path"]),
        (422, &json!("agents.endpoint"))
    );
    let nodes = api.get("/admin/v1/llm").await.2;
    assert_eq!(
        nodes["items"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
}

#[tokio::test]
async fn j02a_a_name_rebound_to_loopback_after_it_was_written_is_refused_at_connect_time() {
    let ca = TestCa::new();
    let upstream = tls_mock(&ca).await;
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.upstream_extra = format!("extra_ca_file = {:?}\n", ca.write_ca(s.dir.path()));
    s.resolver.set("evil.test", &[ip(PUBLIC_ADDR)]);
    let resolver = s.resolver.clone();
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let secret = canary("rebound");
    let cred = json!({"id": "c-evil", "kind": "llm", "value": secret, "hosts": ["evil.test"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let upstream_url = format!("https://evil.test:{}/v1", upstream.addr.port());
    let node = json!({"id": "rebound", "upstream": upstream_url, "style": "bearer", "credential": "c-evil"});
    let (status, _, body) = api.post("/admin/v1/llm", node).await;
    assert_eq!(status, 201, "a public address when written: {body}");
    assert_eq!(
        api.put("/admin/v1/agents/agent-1/outbound/rebound", json!({}))
            .await
            .0,
        201
    );
    // The name now answers with the address the TLS mock listens on.
    resolver.set("evil.test", &[ip("127.0.0.1")]);
    let (status, body) = once_live(&h, "/llm/rebound/chat").await;
    assert_eq!(
        (status, code(&body)),
        (502, Some("upstream_ip_blocked")),
        "{body}"
    );
    assert_eq!(
        upstream.count(),
        0,
        "the rebound address received a request"
    );
    assert!(!body.to_string().contains("127.0.0.1"));
}

#[tokio::test]
async fn j02a_an_oauth_token_endpoint_rebound_inside_is_refused_too() {
    let ca = TestCa::new();
    let idp = tls_mock(&ca).await;
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.upstream_extra = format!("extra_ca_file = {:?}\n", ca.write_ca(s.dir.path()));
    s.resolver.set("idp.test", &[ip(PUBLIC_ADDR)]);
    let resolver = s.resolver.clone();
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let cred = json!({"id": "c-idp", "kind": "external", "value": canary("client-secret"), "hosts": ["idp.test"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let node = json!({"id": "crm", "upstream": "https://api.example.com", "style": "bearer", "credential": "c-idp",
                      "oauth": {"token_url": format!("https://idp.test:{}/token", idp.addr.port()), "client_id": "idg"}});
    let (status, _, body) = api.post("/admin/v1/external", node).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        api.put("/admin/v1/agents/agent-1/outbound/crm", json!({}))
            .await
            .0,
        201
    );
    resolver.set("idp.test", &[ip("127.0.0.1")]);
    let (status, body) = once_live(&h, "/ext/crm/x").await;
    assert_eq!(
        (status, code(&body)),
        (502, Some("upstream_ip_blocked")),
        "{body}"
    );
    assert_eq!(
        idp.count(),
        0,
        "the client secret reached the rebound address"
    );
}

#[tokio::test]
async fn file_routes_reach_internal_names_but_never_the_metadata_ranges() {
    let ca = TestCa::new();
    let upstream = tls_mock(&ca).await;
    let mut s = Setup::new();
    s.upstream_extra = format!("extra_ca_file = {:?}\n", ca.write_ca(s.dir.path()));
    s.resolver.set("internal.test", &[ip("127.0.0.1")]);
    s.resolver.set("meta.test", &[ip("169.254.169.254")]);
    s.agent("agent-1").credential("c", "llm", &canary("k"));
    for (id, host) in [("internal", "internal.test"), ("meta", "meta.test")] {
        let url = format!("https://{host}:{}/v1", upstream.addr.port());
        s.node("llm", id, &url, "style = \"bearer\"", "c");
        s.edge("agent-1", id, &[]);
    }
    let h = s.start().await;
    assert_eq!(
        call(&h, "/llm/internal/x").await.0,
        200,
        "an operator's internal name"
    );
    assert_eq!(upstream.count(), 1);
    let (status, body) = call(&h, "/llm/meta/x").await;
    assert_eq!(
        (status, code(&body)),
        (502, Some("upstream_ip_blocked")),
        "{body}"
    );
    assert_eq!(
        upstream.count(),
        1,
        "nothing was sent toward the metadata address"
    );
}

#[tokio::test]
async fn an_api_upstream_at_a_literal_is_refused_once_its_host_leaves_the_allow_list() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    let cred =
        json!({"id": "c-local", "kind": "llm", "value": canary("local"), "hosts": ["127.0.0.1"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let node = json!({"id": "local", "upstream": format!("http://{}/v1", mock.addr), "style": "bearer", "credential": "c-local"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 201);
    assert_eq!(
        api.put("/admin/v1/agents/agent-1/outbound/local", json!({}))
            .await
            .0,
        201
    );
    assert_eq!(
        once_live(&h, "/llm/local/x").await.0,
        200,
        "allowed while listed"
    );
    let toml = h.setup.toml().replace(
        "upstream_allow_hosts = [\"127.0.0.1\"]",
        "upstream_allow_hosts = []",
    );
    h.reload_with(&toml).await.expect("the reload applies");
    // The proxy swaps its table just after the generation moves: wait for the refusal, then nothing gets through.
    let mut body = Value::Null;
    within(Duration::from_secs(2), "the literal refused", async || {
        let (status, answer) = call(&h, "/llm/local/x").await;
        body = answer;
        status == 502
    })
    .await;
    assert_eq!(code(&body), Some("upstream_ip_blocked"), "{body}");
    let reached = mock.count();
    assert_eq!(call(&h, "/llm/local/x").await.0, 502);
    assert_eq!(mock.count(), reached);
    // The routing file's own node at the same address is the operator's choice and keeps working.
    assert_eq!(call(&h, "/llm/openai/x").await.0, 200);
}

#[tokio::test]
async fn j04_what_the_api_creates_uses_only_credentials_bound_to_its_destination() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    s.resolver.set("other.example", &[ip(PUBLIC_ADDR)]);
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let cred = json!({"id": "c-bound", "kind": "llm", "value": canary("bound"), "hosts": ["api.example.com"]});
    let (status, _, created) = api.post("/admin/v1/credentials", cred).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["hosts"], json!(["api.example.com"]));
    let node = |id: &str, upstream: &str, credential: &str| json!({"id": id, "upstream": upstream, "style": "bearer", "credential": credential});
    // Elsewhere than its hosts: the whole-topology validation refuses it.
    let (status, _, body) = api
        .post(
            "/admin/v1/llm",
            node("exfil", "https://other.example/v1", "c-bound"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let field = &body["error"]["fields"][0];
    assert_eq!(field["path"], "llm.credential", "{body}");
    assert!(
        field["message"]
            .as_str()
            .unwrap()
            .contains("may only be sent to api.example.com"),
        "{body}"
    );
    // The routing file's credential declares no hosts: the file's nodes may use it, the API's may not.
    let (status, _, body) = api
        .post(
            "/admin/v1/llm",
            node("borrow", "https://api.example.com/v1", "cred-openai"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["path"], "llm.credential");
    assert!(
        body["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not bound to any host"),
        "{body}"
    );
    let nodes = api.get("/admin/v1/llm").await.2;
    assert_eq!(
        nodes["items"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
    // Its own destination: accepted.
    let (status, _, body) = api
        .post(
            "/admin/v1/llm",
            node("fine", "https://api.example.com/v1", "c-bound"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The connect-time refusal's log line (node, `reason`, the refused address) under the canary sweep (`leaks.rs`): an
/// API-made node whose literal host leaves `[admin] upstream_allow_hosts` is refused when the proxy connects, and
/// its key is nowhere but in its own header, at its own upstream, from before.
#[tokio::test]
async fn k01_a_blocked_upstream_address_logs_no_secret() {
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &leaks::canary("file"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY", s.master.as_str()),
            ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("IDGUARD_LOG", "trace"),
        ],
    );
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let secret = leaks::canary("blocked");
    let cred = json!({"id": "c-local", "kind": "llm", "value": secret, "hosts": ["127.0.0.1"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let node = json!({"id": "local", "upstream": format!("http://{}/v1", mock.addr), "style": "bearer", "credential": "c-local"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 201);
    let edge = api
        .put("/admin/v1/agents/agent-1/outbound/local", json!({}))
        .await;
    assert_eq!(edge.0, 201);
    let token = keys().es256.token(&claims("agent-1", ""));
    let url = format!("http://{}/llm/local/x", served.public);
    let mut responses = String::new();
    let answer = async |responses: &mut String| {
        let (status, headers, body) = get(&url, &[("authorization", &bearer(&token))]).await;
        responses.push_str(&format!("{status} {headers:?} {body}\n"));
        status
    };
    within(
        Duration::from_secs(3),
        "the API's node applied",
        async || answer(&mut responses).await == 200,
    )
    .await;
    std::fs::write(
        s.config_path(),
        s.toml().replace(
            "upstream_allow_hosts = [\"127.0.0.1\"]",
            "upstream_allow_hosts = []",
        ),
    )
    .unwrap();
    served.signal("HUP");
    within(Duration::from_secs(3), "the address refused", async || {
        answer(&mut responses).await == 502
    })
    .await;
    // Requests before the reload applied went through; from the first refusal on, nothing does.
    let reached = mock.count();
    assert_eq!(answer(&mut responses).await, 502);
    assert_eq!(
        mock.count(),
        reached,
        "nothing reaches the upstream once refused"
    );
    let logs = served.stop();
    for field in [
        r#""reason":"upstream_ip_blocked""#,
        r#""address":"127.0.0.1""#,
    ] {
        assert!(logs.contains(field), "the log lacks {field}:\n{logs}");
    }
    let everything = [
        ("stored key".to_owned(), secret.clone()),
        ("token".to_owned(), token.clone()),
    ];
    let mut found = leaks::find_leak("logs", &logs, &everything);
    found.extend(leaks::find_leak("responses", &responses, &everything));
    found.extend(leaks::upstream_leaks(
        "local",
        &mock,
        &[("authorization", format!("Bearer {secret}"))],
        &everything,
    ));
    assert!(found.is_empty(), "leaks found:\n{}", found.join("\n"));
}
