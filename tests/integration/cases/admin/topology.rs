//! Enterprise services, the directory and the agent permission, client applications and inbound authorizations.

use super::*;

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
    // An audience is unique across agents and services; deleting the service in use needs the explicit cascade,
    // which takes its grants.
    let (status, _, body) = api.delete("/admin/v1/enterprise/crm").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use"))
    );
    assert!(error_message(&body).contains("agent-1"), "{body}");
    assert_eq!(
        api.delete("/admin/v1/enterprise/crm?cascade=true").await.0,
        204
    );
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
    // Deleting the client in use needs the explicit cascade, which takes its inbound authorizations.
    let (status, _, body) = api.delete("/admin/v1/clients/web").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use"))
    );
    assert!(error_message(&body).contains("agents agent-1"), "{body}");
    assert_eq!(
        api.delete("/admin/v1/clients/web?cascade=true").await.0,
        204
    );
    assert_eq!(
        api.delete("/admin/v1/agents/agent-1/inbound/web").await.0,
        404
    );
}
