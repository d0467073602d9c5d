//! Console writes that must not lose or leave anything (issue 12, items 5–7): a panel's change carries the version
//! the panel was rendered with, so an object changed behind the browser's back is refused (412), said beside the
//! form with the input kept, and left as the API changed it; adding a new node whose edge is refused leaves no
//! node (and no credential) behind, the edge's error beside its field.

use serde_json::json;

use super::*;
use crate::common::mock::Mock;

/// The editor `alice`, signed in.
async fn editor(w: &World, test: &str) -> Browser {
    let b = Browser::start(test).await;
    sign_in_as(&b, w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    b
}

async fn value_of(b: &Browser, selector: &str) -> String {
    b.find(selector)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Clicks the submit button `button` and waits (up to 10 s) for the page the POST answers: the old document is
/// marked first, so a page that looks the same is still told apart.
async fn submit(b: &Browser, button: &str) {
    b.client
        .execute("document.body.dataset.stale = 'yes'", vec![])
        .await
        .unwrap();
    b.find(button).await.click().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.has("body[data-stale]").await {
        assert!(
            std::time::Instant::now() < deadline,
            "{button}: no new page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The scopes of enterprise service `id`'s permissions, as the API has them.
async fn permissions(w: &World, id: &str) -> Vec<String> {
    let (status, body) = w
        .api_json("GET", &format!("/admin/v1/enterprise/{id}"), json!(null))
        .await;
    assert_eq!(status, 200, "{body}");
    body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["scope"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_panel_edit_of_an_object_changed_behind_its_back_is_refused_not_lost() {
    let w = World::start().await;
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/enterprise",
            json!({"id": "crm", "audience": "https://crm.internal",
                   "permissions": [{"name": "Read", "scope": "crm.read"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = editor(&w, "console_stale_edit").await;
    b.goto(&w.admin("/console/agents/agent-1/nodes/enterprise/crm"))
        .await;

    // Behind the browser's back, someone adds a permission through the API.
    let (status, body) = w
        .api_json(
            "PATCH",
            "/admin/v1/enterprise/crm",
            json!({"permissions": [{"name": "Read", "scope": "crm.read"},
                                   {"name": "Admin", "scope": "crm.admin"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The panel, opened before, adds another: refused, said above the form, the input kept.
    b.find("#permissions-name")
        .await
        .send_keys("Write")
        .await
        .unwrap();
    b.find("#permissions-scope")
        .await
        .send_keys("crm.write")
        .await
        .unwrap();
    submit(&b, "#permissions form.panel-form button[type=submit]").await;
    let error = b
        .find("#permissions .form-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(error.contains("Changed since you opened it"), "{error}");
    assert_eq!(value_of(&b, "#permissions-scope").await, "crm.write");
    assert_eq!(value_of(&b, "#permissions-name").await, "Write");
    b.screenshot("").await;
    assert_eq!(
        permissions(&w, "crm").await,
        ["crm.read", "crm.admin"],
        "the object as the API left it"
    );

    // Submitting the refused form again is refused again: it still carries the version it was opened at.
    submit(&b, "#permissions form.panel-form button[type=submit]").await;
    assert!(b.has("#permissions .form-error").await);
    assert_eq!(permissions(&w, "crm").await, ["crm.read", "crm.admin"]);

    // After a reload (which shows the other change) the same edit goes through, and keeps it.
    b.goto(&w.admin("/console/agents/agent-1/nodes/enterprise/crm"))
        .await;
    assert!(
        b.find("#permissions table")
            .await
            .text()
            .await
            .unwrap()
            .contains("crm.admin")
    );
    b.find("#permissions-scope")
        .await
        .send_keys("crm.write")
        .await
        .unwrap();
    submit(&b, "#permissions form.panel-form button[type=submit]").await;
    // Back on the panel (a 303 to the same path: wait for the new list, not the path).
    b.wait_for_text("#permissions table", "crm.write").await;
    assert!(!b.has("#permissions .form-error").await);
    assert_eq!(
        permissions(&w, "crm").await,
        ["crm.read", "crm.admin", "crm.write"]
    );

    // The edge's panel too: scopes saved from a page opened before another change are refused.
    let (status, body) = w
        .api_json(
            "PUT",
            "/admin/v1/agents/agent-1/outbound/crm",
            json!({"scopes": ["crm.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    b.goto(&w.admin("/console/agents/agent-1/edges/outbound/crm"))
        .await;
    let (status, body) = w
        .api_json(
            "PUT",
            "/admin/v1/agents/agent-1/outbound/crm",
            json!({"scopes": ["crm.admin"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let scopes = b.find("#scopes-scopes").await;
    scopes.clear().await.unwrap();
    scopes.send_keys("crm.write").await.unwrap();
    submit(&b, "#scopes button[type=submit]").await;
    let error = b.find("#scopes .form-error").await.text().await.unwrap();
    assert!(error.contains("Changed since you opened it"), "{error}");
    assert_eq!(value_of(&b, "#scopes-scopes").await, "crm.write");
    let (_, grant) = w
        .api_json("GET", "/admin/v1/agents/agent-1/outbound/crm", json!(null))
        .await;
    assert_eq!(grant["scopes"], json!(["crm.admin"]), "{grant}");
    b.screenshot("edge").await;
    b.finish().await;
}

#[tokio::test]
async fn a_new_node_whose_edge_is_refused_is_not_left_behind() {
    let mock = Mock::start().await;
    let w = World::start().await;
    let b = editor(&w, "console_add_atomic").await;
    b.goto(&w.admin("/console/agents/agent-1/add?side=right&kind=llm"))
        .await;
    let upstream = format!("http://{}/v1", mock.addr);
    let key = canary("atomic");
    for (field, value) in [
        ("id", "openai"),
        ("name", "Open AI"),
        ("upstream", upstream.as_str()),
        ("value", key.as_str()),
        // A double quote is not a scope character (RFC 6749 §3.3): the edge is refused, after the node was made.
        ("scopes", "llm\"use"),
    ] {
        b.find(&format!("#create-new [name={field}]"))
            .await
            .send_keys(value)
            .await
            .unwrap();
    }
    submit(&b, "#create-new button[type=submit]").await;
    let error = b.find("#error-new-scopes").await.text().await.unwrap();
    assert!(!error.is_empty());
    // What the user typed is kept, except the key.
    assert_eq!(value_of(&b, "#create-new [name=id]").await, "openai");
    assert_eq!(value_of(&b, "#create-new [name=name]").await, "Open AI");
    assert_eq!(value_of(&b, "#create-new [name=upstream]").await, upstream);
    assert_eq!(value_of(&b, "#create-new [name=scopes]").await, "llm\"use");
    assert_eq!(value_of(&b, "#create-new [name=value]").await, "");
    assert!(!b.client.source().await.unwrap().contains(&key));
    b.screenshot("").await;
    // Neither the node nor the credential made for its key stayed.
    let (status, _, _) = w.api_get("/admin/v1/llm/openai").await;
    assert_eq!(status, 404, "the node was undone");
    let (status, _, _) = w.api_get("/admin/v1/credentials/openai-key").await;
    assert_eq!(status, 404, "the credential was undone");
    let (status, _, _) = w.api_get("/admin/v1/agents/agent-1/outbound/openai").await;
    assert_eq!(status, 404);

    // The same form, corrected, succeeds: the id is free again.
    b.find("#create-new [name=value]")
        .await
        .send_keys(&key)
        .await
        .unwrap();
    let scopes = b.find("#create-new [name=scopes]").await;
    scopes.clear().await.unwrap();
    scopes.send_keys("llm.use").await.unwrap();
    submit(&b, "#create-new button[type=submit]").await;
    b.wait_for_path("/console/agents/agent-1").await;
    assert!(
        b.find("#edge-outbound-openai")
            .await
            .text()
            .await
            .unwrap()
            .contains("llm.use")
    );
    b.finish().await;
    sweep_logs(w, &[&key]);
}
