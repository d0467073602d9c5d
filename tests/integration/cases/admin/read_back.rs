//! Reading everything back: every authorization by `GET`, an agent's topology with its clients, inbound edges and
//! who uses each node, and deletes of objects in use refused by name unless the cascade is asked for.

use super::*;

/// The audit records of `kind`/`id` with `action`.
async fn audited(api: &AdminClient, kind: &str, id: &str, action: &str) -> usize {
    let path = format!(
        "/admin/v1/audit?kind={kind}&id={}&action={action}",
        id.replace('/', "%2F")
    );
    let (status, _, body) = api.get(&path).await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().unwrap().len()
}

#[tokio::test]
async fn every_authorization_reads_back_and_the_topology_shows_clients_inbound_edges_and_users() {
    let (_mock, _h, api) = standard().await;
    // The file's outbound authorization, and an API one.
    let (status, headers, edge) = api.get("/admin/v1/agents/agent-1/outbound/openai").await;
    assert_eq!(status, 200, "{edge}");
    assert_eq!(
        (
            &edge["agent"],
            &edge["node"],
            &edge["scopes"],
            &edge["managed_by"]
        ),
        (
            &json!("agent-1"),
            &json!("openai"),
            &json!([]),
            &json!("file")
        )
    );
    assert!(headers.get("etag").is_none());
    let path = "/admin/v1/agents/agent-2/outbound/openai";
    assert_eq!(api.put(path, json!({"scopes": ["llm.use"]})).await.0, 201);
    let (status, headers, edge) = api.get(path).await;
    assert_eq!(status, 200, "{edge}");
    assert_eq!(edge["scopes"], json!(["llm.use"]));
    assert_eq!(
        (&edge["managed_by"], &edge["version"]),
        (&json!("api"), &json!(1))
    );
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(
        api.get("/admin/v1/agents/agent-2/outbound/nowhere").await.0,
        404
    );

    // An inbound authorization: a client application may call agent-2.
    assert_eq!(
        api.post("/admin/v1/clients", json!({"id": "web", "name": "Web app"}))
            .await
            .0,
        201
    );
    let inbound = "/admin/v1/agents/agent-2/inbound/web";
    assert_eq!(
        api.put(inbound, json!({"scopes": ["agent.access"]}))
            .await
            .0,
        201
    );
    let (status, _, edge) = api.get(inbound).await;
    assert_eq!(status, 200, "{edge}");
    assert_eq!(
        (&edge["client"], &edge["agent"], &edge["scopes"]),
        (&json!("web"), &json!("agent-2"), &json!(["agent.access"]))
    );
    assert_eq!(api.get("/admin/v1/agents/agent-1/inbound/web").await.0, 404);

    // agent-2's diagram: the node it calls (used by both agents), its credential (used by the node), and the
    // client that may call it, with the inbound edge and its scopes.
    let (status, _, topo) = api.get("/admin/v1/agents/agent-2/topology").await;
    assert_eq!(status, 200, "{topo}");
    let node = |id: &str| {
        topo["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {topo}"))
            .clone()
    };
    assert_eq!(
        node("openai")["used_by"],
        json!([{"kind": "agent", "id": "agent-1"}, {"kind": "agent", "id": "agent-2"}])
    );
    assert_eq!(
        node("cred-openai")["used_by"],
        json!([{"kind": "node", "id": "openai"}])
    );
    let web = node("web");
    assert_eq!(
        (&web["kind"], &web["name"]),
        (&json!("client"), &json!("Web app"))
    );
    assert_eq!(web["used_by"], json!([{"kind": "agent", "id": "agent-2"}]));
    assert!(
        topo["edges"].as_array().unwrap().contains(
            &json!({"kind": "inbound", "from": "web", "to": "agent-2", "scopes": ["agent.access"]})
        ),
        "{topo}"
    );
}

#[tokio::test]
async fn deleting_what_is_in_use_is_refused_by_name_until_the_cascade_is_asked_for() {
    let (mock, _h, api) = standard().await;
    let cred =
        json!({"id": "cred-api", "kind": "llm", "value": canary("api"), "hosts": ["127.0.0.1"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let node = json!({"id": "api-llm", "upstream": format!("http://{}/v2", mock.addr), "style": "bearer", "credential": "cred-api"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 201);
    let edge = "/admin/v1/agents/agent-2/outbound/api-llm";
    assert_eq!(api.put(edge, json!({})).await.0, 201);

    // The node: refused, naming the agent; nothing changed.
    let (status, _, body) = api.delete("/admin/v1/llm/api-llm").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use")),
        "{body}"
    );
    let message = error_message(&body);
    assert!(message.contains("agents agent-2"), "{message}");
    assert!(message.contains("cascade=true"), "{message}");
    // The credential: refused naming the node, even with the cascade (nodes are not authorizations).
    for path in [
        "/admin/v1/credentials/cred-api",
        "/admin/v1/credentials/cred-api?cascade=true",
    ] {
        let (status, _, body) = api.delete(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("in_use")),
            "{path}"
        );
        assert!(error_message(&body).contains("nodes api-llm"), "{body}");
    }
    // A malformed or unknown delete parameter is 400 naming it, and changes nothing.
    for (query, field) in [
        ("cascade=yes", "cascade"),
        ("cascade=true&cascade=true", "cascade"),
        ("force=true", "force"),
    ] {
        let (status, _, body) = api.delete(&format!("/admin/v1/llm/api-llm?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(error_message(&body).starts_with(field), "{query}: {body}");
    }
    assert_eq!(api.get(edge).await.0, 200);
    assert_eq!(api.get("/admin/v1/llm/api-llm").await.0, 200);
    assert_eq!(audited(&api, "llm", "api-llm", "delete").await, 0);

    // With the cascade: the node and its authorization go in one commit, each audited.
    assert_eq!(
        api.delete("/admin/v1/llm/api-llm?cascade=true").await.0,
        204
    );
    assert_eq!(api.get(edge).await.0, 404);
    assert_eq!(api.get("/admin/v1/llm/api-llm").await.0, 404);
    assert_eq!(audited(&api, "llm", "api-llm", "delete").await, 1);
    assert_eq!(
        audited(&api, "outbound", "agent-2/api-llm", "delete").await,
        1
    );
    // Unused now, the credential goes without a cascade.
    assert_eq!(api.delete("/admin/v1/credentials/cred-api").await.0, 204);

    // A client application admitted by an agent: the same.
    assert_eq!(
        api.post("/admin/v1/clients", json!({"id": "web"})).await.0,
        201
    );
    let inbound = "/admin/v1/agents/agent-1/inbound/web";
    assert_eq!(api.put(inbound, json!({})).await.0, 201);
    let (status, _, body) = api.delete("/admin/v1/clients/web").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use"))
    );
    assert!(error_message(&body).contains("agents agent-1"), "{body}");
    assert_eq!(api.get(inbound).await.0, 200);
    assert_eq!(
        api.delete("/admin/v1/clients/web?cascade=true").await.0,
        204
    );
    assert_eq!(api.get(inbound).await.0, 404);
    assert_eq!(audited(&api, "inbound", "web/agent-1", "delete").await, 1);
}
