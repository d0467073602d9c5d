use super::*;
use serde_json::json;

/// An agent with `left` clients and `right` nodes (a third each LLM, enterprise, external), in the shape of
/// `GET /admin/v1/agents/{id}/topology`, with names as long as the API allows.
fn topology(left: usize, right: usize) -> Value {
    let long = "n".repeat(128);
    let mut nodes = vec![
        json!({"kind": "agent", "id": "agent-1", "name": "Support bot", "audience": "urn:idguard:agent:agent-1", "enabled": true}),
    ];
    let mut edges = Vec::new();
    for i in 0..left {
        let id = format!("client-{i:02}");
        nodes.push(json!({"kind": "client", "id": id, "name": format!("{long}{i}"), "enabled": true, "used_by": {}}));
        edges.push(
            json!({"kind": "inbound", "from": id, "to": "agent-1", "scopes": ["agent.access"]}),
        );
    }
    for i in 0..right {
        let kind = ["llm", "enterprise", "external"][i % 3];
        let id = format!("{kind}-{i:02}");
        nodes.push(json!({"kind": kind, "id": id, "name": format!("{long}{i}"), "credential": "c", "used_by": {}}));
        edges.push(json!({"kind": "outbound", "from": "agent-1", "to": id, "scopes": ["scope.one", "scope.two", "a.very.long.scope.name.indeed"]}));
        edges.push(json!({"kind": "uses", "from": id, "to": "c"}));
    }
    nodes.push(json!({"kind": "credential", "id": "c", "name": "c", "business_type": "llm", "used_by": {}}));
    json!({"agent": "agent-1", "nodes": nodes, "edges": edges})
}

fn chrome() -> Chrome {
    Chrome {
        who: "op".into(),
        role: "editor",
        csrf: "csrf".into(),
        can_edit: true,
        usage: None,
    }
}

fn quota(full: bool) -> Quota {
    Quota {
        used: 3,
        total: if full { 3 } else { 10 },
        full: full.then(|| "All 3 M2M application licenses are in use".to_owned()),
    }
}

#[test]
fn fifty_a_side_no_box_overlaps_and_the_page_stays_under_150_kb() {
    let mut traffic = Counts::new();
    traffic.insert(
        ("llm-00".into(), "agent-1".into()),
        EdgeCount {
            requests: 12,
            denied: 3,
        },
    );
    traffic.insert(
        ("agent-1".into(), "client-07".into()),
        EdgeCount {
            requests: 5,
            denied: 0,
        },
    );
    let page = build(
        chrome(),
        "agent-1",
        &topology(50, 50),
        &traffic,
        quota(false),
    )
    .unwrap();
    assert_eq!(
        (page.left.len(), page.right.len(), page.edges.len()),
        (50, 50, 100)
    );
    let boxes: Vec<&Rect> = std::iter::once(&page.agent.rect)
        .chain(page.left.iter().map(|n| &n.rect))
        .chain(page.right.iter().map(|n| &n.rect))
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        assert!(a.w > 0 && a.x + a.w <= page.width && a.y + a.h <= page.height);
        for b in &boxes[i + 1..] {
            assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
        }
    }
    let html = page.render().unwrap();
    let weight = html.len() + super::super::CSS.len() + super::super::JS.len();
    eprintln!("the 50 + 50 diagram page weighs {weight} bytes (HTML, CSS, JS)");
    assert!(weight < 150_000, "the diagram page weighs {weight} bytes");
    // Every node is a link to its panel, every edge to its edge panel, and the table repeats every edge.
    assert_eq!(html.matches(r#"class="node kind-"#).count(), 101);
    assert!(html.contains(r#"href="/console/agents/agent-1/nodes/llm/llm-00""#));
    assert!(html.contains(r#"href="/console/agents/agent-1/edges/inbound/client-07""#));
    assert_eq!(
        html.matches("<tr class=").count(),
        100,
        "one table row per edge"
    );
    // Traffic: the denied edge is classed and marked, the others are not.
    assert!(
        html.contains(r#"class="edge outbound denied" id="edge-outbound-llm-00""#),
        "{html}"
    );
    assert!(html.contains("12 req · 3 denied (5 min)"));
    assert!(html.contains(r#"class="edge inbound" id="edge-inbound-client-07""#));
    assert!(html.contains("5 req · 0 denied (5 min)"));
    assert_eq!(html.matches(" denied\" id=\"edge-").count(), 1);
    // Names are shortened in the boxes; the whole name is in the tooltip and the table.
    assert!(html.contains(&format!(r#"class="name">{}…<"#, "n".repeat(SHORT - 1))));
    assert!(html.contains(&"n".repeat(128)));
    // Credentials are not boxes.
    assert!(!html.contains("kind-credential"));
}

#[test]
fn a_full_license_quota_disables_the_left_plus_with_its_reason() {
    let page = build(
        chrome(),
        "agent-1",
        &topology(1, 1),
        &Counts::new(),
        quota(true),
    )
    .unwrap();
    let html = page.render().unwrap();
    assert!(
        html.contains(
            r#"<g class="plus disabled" id="add-left" aria-disabled="true"><title>All 3 M2M"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"id="license-full""#));
    // LLM, enterprise and external nodes may still be connected.
    assert!(html.contains(r#"<a class="plus" id="add-right""#));
    let page = build(
        chrome(),
        "agent-1",
        &topology(1, 1),
        &Counts::new(),
        quota(false),
    )
    .unwrap();
    let html = page.render().unwrap();
    assert!(
        html.contains(
            r#"<a class="plus" id="add-left" href="/console/agents/agent-1/add?side=left""#
        )
    );
    assert!(!html.contains("license-full"));
}

#[test]
fn a_viewer_sees_no_add_controls() {
    let mut c = chrome();
    c.can_edit = false;
    let html = build(c, "agent-1", &topology(2, 2), &Counts::new(), quota(false))
        .unwrap()
        .render()
        .unwrap();
    assert!(
        !html.contains("add-left") && !html.contains("add-right") && !html.contains("add-node")
    );
}

#[test]
fn names_and_ids_are_escaped() {
    let mut t = topology(1, 0);
    t["nodes"][1]["name"] = json!("<script>x</script>");
    let html = build(chrome(), "agent-1", &t, &Counts::new(), quota(false))
        .unwrap()
        .render()
        .unwrap();
    assert!(!html.contains("<script>x"));
    assert!(html.contains("&#60;script&#62;x") || html.contains("&lt;script&gt;x"));
}
