//! The agents list and an agent's diagram (issue 12, items 3, 4 and the journeys of 7 that concern them): register
//! an agent and land on its diagram; add each kind of node and see its edge; change an edge's scopes and see a
//! proxied request go from 200 to 403 — and the edge's traffic say so; a full license quota disables the
//! register and add controls, with the reason. Each saves screenshots (`docs/console/` keeps the main ones).

use super::*;
use crate::common::harness::keys;
use crate::common::harness::metric_value;
use crate::common::keys::claims;
use crate::common::mock::{Behavior, Mock};

/// The editor `alice`, signed in, on the agents list.
async fn editor(w: &World, test: &str) -> Browser {
    let b = Browser::start(test).await;
    sign_in_as(&b, w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    b
}

/// Fills `selector` (in the form `form`) with `value`.
async fn fill(b: &Browser, form: &str, field: &str, value: &str) {
    let input = b.find(&format!("{form} [name={field}]")).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn submit(b: &Browser, form: &str) {
    b.find(&format!("{form} button[type=submit]"))
        .await
        .click()
        .await
        .unwrap();
}

/// The proxied answer to `agent`'s call of LLM node `node` with a token holding `scope`.
async fn call(w: &World, agent: &str, node: &str, scope: &str) -> u16 {
    let token = keys().es256.token(&claims(agent, scope));
    let (status, _, _) = get(
        &format!("http://{}/llm/{node}/v1/models", w.served.public),
        &[("authorization", &bearer(&token))],
    )
    .await;
    status
}

#[tokio::test]
async fn register_an_agent_identity_and_land_on_its_diagram() {
    let w = World::start().await;
    let b = editor(&w, "console_agents").await;
    assert!(
        b.find("#agents")
            .await
            .text()
            .await
            .unwrap()
            .contains("agent-2")
    );
    assert!(
        b.find("#usage")
            .await
            .text()
            .await
            .unwrap()
            .contains("2 / 10")
    );
    b.find("#register-agent summary")
        .await
        .click()
        .await
        .unwrap();
    let notice = b.find("#audience-notice").await.text().await.unwrap();
    assert!(
        notice.contains("cannot change after it is saved"),
        "{notice}"
    );
    b.screenshot("list").await;
    fill(&b, "#register-agent", "name", "Support bot").await;
    fill(
        &b,
        "#register-agent",
        "audience",
        "https://support-bot.example.com",
    )
    .await;
    submit(&b, "#register-agent").await;
    let id = b.find("#agent-id").await.text().await.unwrap();
    assert!(id.starts_with("agent-"), "{id}");
    assert_eq!(b.path().await, format!("/console/agents/{id}"));
    assert_eq!(
        b.find("#agent-name").await.text().await.unwrap(),
        "Support bot"
    );
    assert_eq!(
        b.find("#agent-audience").await.text().await.unwrap(),
        "https://support-bot.example.com"
    );
    // The agent in the centre, a link to its panel; no edges yet, said in text.
    let node = b.find(&format!("#node-agent-{id}")).await;
    assert_eq!(
        node.attr("href").await.unwrap().unwrap(),
        format!("/console/agents/{id}/nodes/agent/{id}")
    );
    assert!(b.has("#no-edges").await);
    b.screenshot("diagram").await;
    // The audience was saved as given (and cannot change: the API has no such field on PATCH).
    let (_, _, agent) = w.api_get(&format!("/admin/v1/agents/{id}")).await;
    assert!(agent.contains("https://support-bot.example.com"), "{agent}");
    b.finish().await;
}

#[tokio::test]
async fn add_each_node_kind_and_see_its_edge() {
    let mock = Mock::start().await;
    let w = World::start().await;
    let b = editor(&w, "console_add_nodes").await;
    b.goto(&w.admin("/console/agents/agent-1")).await;

    // Left "+": a client, created here, with the agent's permission as its scope (prefilled).
    b.find("#add-left").await.click().await.unwrap();
    b.find("#kind-client").await.click().await.unwrap();
    fill(&b, "#create-new", "id", "helpdesk").await;
    fill(&b, "#create-new", "name", "Helpdesk web").await;
    submit(&b, "#create-new").await;
    b.wait_for_path("/console/agents/agent-1").await;
    let edge = b.find("#edge-inbound-helpdesk").await;
    assert!(edge.text().await.unwrap().contains("agent.access"));

    // Right "+": an LLM node with a new API key, an enterprise service, an external node.
    let upstream = format!("http://{}/v1", mock.addr);
    for (kind, id, extra, scopes) in [
        (
            "llm",
            "openai",
            vec![("upstream", upstream.as_str()), ("value", "sk-console-llm")],
            "llm.use",
        ),
        (
            "enterprise",
            "crm",
            vec![
                ("audience", "https://crm.internal"),
                ("permissions", "crm.read crm.write"),
            ],
            "crm.read",
        ),
        (
            "external",
            "weather",
            vec![("upstream", upstream.as_str()), ("value", "wx-console-key")],
            "wx.read",
        ),
    ] {
        b.find("#add-right").await.click().await.unwrap();
        b.find(&format!("#kind-{kind}"))
            .await
            .click()
            .await
            .unwrap();
        fill(&b, "#create-new", "id", id).await;
        for (field, value) in extra {
            fill(&b, "#create-new", field, value).await;
        }
        fill(&b, "#create-new", "scopes", scopes).await;
        submit(&b, "#create-new").await;
        b.wait_for_path("/console/agents/agent-1").await;
        let edge = b.find(&format!("#edge-outbound-{id}")).await;
        assert!(edge.text().await.unwrap().contains(scopes), "{kind}");
        assert!(b.has(&format!("#node-{kind}-{id}")).await, "{kind}");
    }
    // The text alternative lists the same four edges.
    let table = b.find("#edges").await.text().await.unwrap();
    for id in ["Helpdesk web", "openai", "crm", "weather"] {
        assert!(table.contains(id), "{table}");
    }
    b.screenshot("diagram").await;

    // The toolbar's "Add node" offers every kind, the agent itself too (registering one).
    b.find("#add-node").await.click().await.unwrap();
    b.find("#kind-agent").await.click().await.unwrap();
    b.find("#register-agent summary")
        .await
        .click()
        .await
        .unwrap();
    fill(&b, "#register-agent", "name", "Second bot").await;
    submit(&b, "#register-agent").await;
    assert_eq!(
        b.find("#agent-name").await.text().await.unwrap(),
        "Second bot"
    );

    // A refused form names its field and creates nothing.
    let session = session_cookie(&b).await;
    let csrf = csrf_of(&b).await;
    let (status, _, page) = w
        .console_post(
            "/console/agents/agent-1/add",
            &session,
            &format!("kind=client&mode=new&id=other&scopes=not.mine&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains(r#"id="error-new-scopes">a client may be granted only"#),
        "{page}"
    );
    let (status, _, _) = w.api_get("/admin/v1/clients/other").await;
    assert_eq!(status, 404, "nothing was created");
    b.finish().await;
    sweep_logs(w, &["sk-console-llm", "wx-console-key", &session, &csrf]);
}

#[tokio::test]
async fn an_edge_scope_change_turns_a_proxied_request_from_200_to_403() {
    let mock = Mock::start().await;
    let w = World::start().await;
    let b = editor(&w, "console_edge_scopes").await;
    b.goto(&w.admin("/console/agents/agent-1/add?side=right&kind=llm"))
        .await;
    fill(&b, "#create-new", "id", "openai").await;
    fill(
        &b,
        "#create-new",
        "upstream",
        &format!("http://{}/v1", mock.addr),
    )
    .await;
    fill(&b, "#create-new", "value", "sk-console-scopes").await;
    fill(&b, "#create-new", "scopes", "llm.use").await;
    submit(&b, "#create-new").await;
    b.wait_for_path("/console/agents/agent-1").await;
    assert_eq!(call(&w, "agent-1", "openai", "llm.use").await, 200);
    assert_eq!(mock.count(), 1);

    // The same node again, existing, with another scope: the edge now asks for one the token lacks.
    b.goto(&w.admin("/console/agents/agent-1/add?side=right&kind=llm"))
        .await;
    fill(&b, "#use-existing", "scopes", "llm.admin").await;
    submit(&b, "#use-existing").await;
    b.wait_for_path("/console/agents/agent-1").await;
    assert_eq!(call(&w, "agent-1", "openai", "llm.use").await, 403);
    assert_eq!(
        mock.count(),
        1,
        "the refused request never reached the upstream"
    );

    // The edge shows it: its traffic, and it is drawn as denied.
    b.goto(&w.admin("/console/agents/agent-1")).await;
    let edge = b.find("#edge-outbound-openai").await;
    assert_eq!(
        edge.attr("class").await.unwrap().unwrap(),
        "edge outbound denied"
    );
    let text = edge.text().await.unwrap();
    assert!(
        text.contains("llm.admin") && text.contains("2 req · 1 denied (5 min)"),
        "{text}"
    );
    assert!(
        b.find("#edges")
            .await
            .text()
            .await
            .unwrap()
            .contains("1 denied")
    );
    b.screenshot("denied").await;
    b.finish().await;
}

#[tokio::test]
async fn an_upstreams_404_is_traffic_and_only_idguards_refusal_is_a_denial() {
    let mock = Mock::start().await;
    let w = World::start().await;
    let upstream = format!("http://{}/v1", mock.addr);
    for (method, path, body) in [
        (
            "POST",
            "/admin/v1/credentials",
            serde_json::json!({"id": "c1", "kind": "llm", "value": canary("denials"), "hosts": ["127.0.0.1"]}),
        ),
        (
            "POST",
            "/admin/v1/llm",
            serde_json::json!({"id": "openai", "upstream": upstream, "style": "bearer", "credential": "c1"}),
        ),
        (
            "PUT",
            "/admin/v1/agents/agent-1/outbound/openai",
            serde_json::json!({"scopes": ["llm.use"]}),
        ),
    ] {
        let (status, body) = w.api_json(method, path, body).await;
        assert!(status == 201, "{path}: {status} {body}");
    }
    // The upstream answers 404 (and then 422): requests answered, not denials.
    mock.set(Behavior::Status(404, r#"{"error":"no such model"}"#.into()));
    assert_eq!(call(&w, "agent-1", "openai", "llm.use").await, 404);
    mock.set(Behavior::Status(422, r#"{"error":"bad input"}"#.into()));
    assert_eq!(call(&w, "agent-1", "openai", "llm.use").await, 422);
    // idguard's own refusal: the token lacks the edge's scope.
    assert_eq!(call(&w, "agent-1", "openai", "other.scope").await, 403);
    assert_eq!(
        mock.count(),
        2,
        "the refused request never reached the upstream"
    );

    let (status, _, m) = get(&w.admin("/metrics"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_requests_total{agent="agent-1",node="openai",status_class="4xx"}"#
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_denials_total{agent="agent-1",node="openai"}"#
        ),
        1.0,
        "{m}"
    );

    let b = editor(&w, "console_denials").await;
    b.goto(&w.admin("/console/agents/agent-1")).await;
    let edge = b.find("#edge-outbound-openai").await;
    let text = edge.text().await.unwrap();
    assert!(text.contains("3 req · 1 denied (5 min)"), "{text}");
    let row = b.find("#edges").await.text().await.unwrap();
    assert!(row.contains("3 req · ⚠ 1 denied"), "{row}");
    b.screenshot("").await;
    b.finish().await;
}

#[tokio::test]
async fn a_full_license_quota_disables_register_and_add_with_the_reason() {
    // agent-1 and agent-2 use both licenses.
    let w = World::start_with(|s| {
        s.raw("[store]\nm2m_licenses = 2\n");
    })
    .await;
    let b = editor(&w, "console_license_full").await;
    assert!(
        b.find("#usage")
            .await
            .text()
            .await
            .unwrap()
            .contains("2 / 2")
    );
    let register = b.find("#register-agent").await;
    assert_eq!(
        register.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    let why = b.find("#license-full").await.text().await.unwrap();
    assert!(
        why.contains("All 2 M2M application licenses are in use"),
        "{why}"
    );
    b.screenshot("list").await;

    b.goto(&w.admin("/console/agents/agent-1")).await;
    let plus = b.find("#add-left").await;
    assert_eq!(
        plus.attr("aria-disabled").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(
        plus.attr("href").await.unwrap().is_none(),
        "a disabled + is not a link"
    );
    assert!(
        b.find("#license-full")
            .await
            .text()
            .await
            .unwrap()
            .contains("licenses are in use")
    );
    // The toolbar's kinds: those needing a license are disabled with the reason; LLM and external are not.
    b.find("#add-node").await.click().await.unwrap();
    for kind in ["agent", "client", "enterprise"] {
        let k = b.find(&format!("#kind-{kind}")).await;
        assert_eq!(
            k.attr("aria-disabled").await.unwrap().as_deref(),
            Some("true"),
            "{kind}"
        );
    }
    assert!(
        b.find("#kind-llm")
            .await
            .attr("href")
            .await
            .unwrap()
            .is_some()
    );
    b.screenshot("add").await;

    // The server refuses anyway (a forged form): the API's quota, named.
    let session = session_cookie(&b).await;
    let csrf = csrf_of(&b).await;
    let (status, _, page) = w
        .console_post(
            "/console/agents",
            &session,
            &format!("name=extra&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("licenses") || page.contains("quota"),
        "{page}"
    );
    b.finish().await;
}

#[tokio::test]
async fn the_agents_list_searches_and_pages_by_id() {
    // agent-1, agent-2 and 25 more: two pages of 20 and 7.
    let w = World::start_with(|s| {
        for i in 0..25 {
            s.raw(&format!(
                "[[agents]]\nid = \"bulk-{i:02}\"\nname = \"Bulk {i}\"\n"
            ));
        }
        s.raw("[store]\nm2m_licenses = 100\n");
    })
    .await;
    let b = editor(&w, "console_agents_paging").await;
    let rows = |text: String| text.lines().skip(1).count();
    assert_eq!(rows(b.find("#agents").await.text().await.unwrap()), 20);
    b.find("#next-page").await.click().await.unwrap();
    let second = b.find("#agents").await.text().await.unwrap();
    assert_eq!(rows(second.clone()), 7, "{second}");
    assert!(
        second.contains("bulk-24") && !second.contains("bulk-00"),
        "{second}"
    );
    assert!(!b.has("#next-page").await);
    // Search: a case-insensitive substring of the id or the name.
    b.goto(&w.admin("/console/agents?q=BULK%201")).await;
    let found = b.find("#agents").await.text().await.unwrap();
    assert!(
        found.contains("bulk-01") && found.contains("bulk-19") && !found.contains("bulk-02"),
        "{found}"
    );
    b.goto(&w.admin("/console/agents?q=nothing-like-it")).await;
    assert!(
        b.find(".empty")
            .await
            .text()
            .await
            .unwrap()
            .contains("No agents")
    );
    b.finish().await;
}

#[tokio::test]
async fn fifty_nodes_a_side_stay_readable() {
    let w = World::start_with(|s| {
        s.credential("cred-bulk", "llm", &canary("bulkkey"));
        for i in 0..50 {
            s.node(
                "llm",
                &format!("llm-{i:02}"),
                "http://127.0.0.1:9/v1",
                "style = \"bearer\"",
                "cred-bulk",
            );
            s.edge("agent-1", &format!("llm-{i:02}"), &["llm.use"]);
            s.raw(&format!(
                "[[clients]]\nid = \"client-{i:02}\"\n\n[[inbound]]\nclient = \"client-{i:02}\"\nagent = \"agent-1\"\nscopes = [\"agent.access\"]\n"
            ));
        }
        s.raw("[store]\nm2m_licenses = 100\n");
    })
    .await;
    let b = editor(&w, "console_fifty_a_side").await;
    b.goto(&w.admin("/console/agents/agent-1")).await;
    b.find("#diagram").await;
    let nodes = b
        .client
        .find_all(fantoccini::Locator::Css("#diagram .node"))
        .await
        .unwrap();
    assert_eq!(nodes.len(), 101);
    // The boxes as the browser laid them out: none overlaps another.
    let mut rects = Vec::new();
    for n in &nodes {
        rects.push(n.rectangle().await.unwrap());
    }
    for (i, a) in rects.iter().enumerate() {
        for c in &rects[i + 1..] {
            let apart =
                a.0 + a.2 <= c.0 || c.0 + c.2 <= a.0 || a.1 + a.3 <= c.1 || c.1 + c.3 <= a.1;
            assert!(apart, "{a:?} overlaps {c:?}");
        }
        // Readable: no box is shrunk below its drawn size by much.
        assert!(a.3 >= 36.0, "a box is {} px tall", a.3);
    }
    let table = b.find("#edges").await.text().await.unwrap();
    assert_eq!(table.lines().skip(1).count(), 100, "{table}");
    b.screenshot("").await;
    b.finish().await;
}
