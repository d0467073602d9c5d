//! The panels the diagram opens, and the directory and audit pages, in a real browser (issue 12, items 5–7): a
//! client secret shown exactly once; an LLM key rotated from its panel while requests run; a cascade delete that
//! names what it removes; a viewer without controls whose forged POST is refused; a form without its CSRF token
//! refused; an API refusal shown beside its field with the input kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::common::harness::{keys, within};
use crate::common::keys::claims;
use crate::common::mock::Mock;

impl World {
    pub(crate) async fn api_json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (status, _, text) = self.api_send(method, path, &body.to_string()).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// A stored credential `c1` (value `value`, bound to 127.0.0.1), an LLM node `n1` at `mock` using it, and
/// `agent-1`'s outbound authorization to it.
async fn llm_node(w: &World, mock: &Mock, value: &str) {
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/credentials",
            json!({"id": "c1", "kind": "llm", "value": value, "hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/llm",
            json!({"id": "n1", "name": "Mock LLM", "upstream": format!("http://{}/v1", mock.addr),
                   "style": "bearer", "credential": "c1"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .api_json("PUT", "/admin/v1/agents/agent-1/outbound/n1", json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Scrolls the element `id` into view, for the screenshot.
async fn scroll_to(b: &Browser, id: &str) {
    b.client
        .execute(
            "document.getElementById(arguments[0]).scrollIntoView()",
            vec![json!(id)],
        )
        .await
        .unwrap();
}

async fn source(b: &Browser) -> String {
    b.client.source().await.unwrap()
}

#[tokio::test]
async fn a_new_client_secret_is_shown_exactly_once_and_works() {
    let w = World::start().await;
    let (status, agent) = w
        .api_json("POST", "/admin/v1/agents", json!({"name": "Secret holder"}))
        .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let b = Browser::start("console_panel_secret").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    let panel = format!("/console/agents/{id}/nodes/agent/{id}");
    b.goto(&w.admin(&panel)).await;
    // The reference's rules where the user types, and the header's usage.
    let general = b.find("#general").await.text().await.unwrap();
    assert!(general.contains("Cannot be changed"), "{general}");
    assert!(general.contains("it cannot be changed"), "{general}");
    let usage = b.find("#usage-licenses").await.text().await.unwrap();
    assert!(usage.contains("3 / 10"), "{usage}");
    assert!(!b.has("#once").await);

    b.find("#secrets button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let value = b
        .find("#once-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(value.starts_with("idgsec_"), "{value}");
    assert!(b.has("button[data-copy=once-value]").await, "a copy button");
    // The fingerprint shown with the value is the one listed, beside the created time and "never" used.
    let (_, _, list) = w.api_get(&format!("/admin/v1/agents/{id}/secrets")).await;
    let fingerprint = serde_json::from_str::<Value>(&list).unwrap()["items"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let label = b.find("#once").await.text().await.unwrap();
    let listed = b.find("#secrets table").await.text().await.unwrap();
    assert!(label.contains(&fingerprint), "{label}");
    assert!(
        listed.contains(&fingerprint) && listed.contains("UTC"),
        "{listed}"
    );
    assert!(listed.contains("never"), "not used yet: {listed}");
    b.screenshot("shown").await;

    // The secret is good: the identity service issues the agent a token with it.
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{id}:{value}"),
    );
    let (status, _, token) = form(
        &format!("http://{}/oauth2/token", w.served.public),
        &[("authorization", &format!("Basic {basic}"))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{token}");

    // Never again: not on the panel, not through the API.
    b.goto(&w.admin(&panel)).await;
    b.find("#secrets").await;
    assert!(!b.has("#once").await);
    assert!(
        !source(&b).await.contains(&value),
        "the secret is shown again"
    );
    let (_, _, list) = w.api_get(&format!("/admin/v1/agents/{id}/secrets")).await;
    assert!(!list.contains(&value) && list.contains("sec-"), "{list}");
    // Its use is listed (the identity service records it without making the grant wait).
    within(
        Duration::from_secs(3),
        "the panel showing the last use",
        async || {
            b.goto(&w.admin(&panel)).await;
            let listed = b.find("#secrets table").await.text().await.unwrap();
            listed.contains(&fingerprint) && !listed.contains("never")
        },
    )
    .await;
    scroll_to(&b, "secrets").await;
    b.screenshot("agent-panel").await;

    // The permission: manual, picking users found by the directory search; an unknown one is refused beside
    // the field.
    b.goto(&w.admin(&format!("{panel}?find=ali"))).await;
    let found = b.find("#permission table").await.text().await.unwrap();
    assert!(found.contains("alice") && !found.contains("bob"), "{found}");
    b.find("#permission-mode option[value=manual]")
        .await
        .click()
        .await
        .unwrap();
    b.find("#permission-users")
        .await
        .send_keys("alice\nnobody")
        .await
        .unwrap();
    b.find("#permission button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = b
        .find("#field-permission-users .error")
        .await
        .text()
        .await
        .unwrap();
    assert!(error.contains("nobody"), "{error}");
    let users = b.find("#permission-users").await;
    assert_eq!(users.prop("value").await.unwrap().unwrap(), "alice\nnobody");
    users.clear().await.unwrap();
    users.send_keys("alice").await.unwrap();
    b.find("#permission button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path(&panel).await;
    let (_, _, one) = w.api_get(&format!("/admin/v1/agents/{id}")).await;
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["permission"]["mode"], "manual", "{one}");
    assert_eq!(one["permission"]["users"], json!(["alice"]), "{one}");

    // Switching to public keys as the API allows: refused beside the field while a secret remains; after the
    // secret is deleted (the browser asks first), switched, and a JWK added.
    b.find("#general-auth option[value=private_key_jwt]")
        .await
        .click()
        .await
        .unwrap();
    b.find("#general button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = b
        .find("#field-general-auth .error")
        .await
        .text()
        .await
        .unwrap();
    assert!(error.contains("client secrets"), "{error}");
    b.find("#secrets table button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.client.accept_alert().await.unwrap();
    b.wait_for_path(&panel).await;
    let (_, _, list) = w.api_get(&format!("/admin/v1/agents/{id}/secrets")).await;
    assert!(list.contains(r#""items":[]"#), "{list}");
    b.find("#general-auth option[value=private_key_jwt]")
        .await
        .click()
        .await
        .unwrap();
    b.find("#general button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path(&panel).await;
    let jwk = &keys().es256.jwk;
    let public = json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
    b.find("#keys-id").await.send_keys("k1").await.unwrap();
    b.find("#keys-key")
        .await
        .send_keys(&public.to_string())
        .await
        .unwrap();
    b.find("#keys button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let listed = b.find("#keys table").await.text().await.unwrap();
    assert!(
        listed.contains("k1") && listed.contains("ES256"),
        "{listed}"
    );
    let session = session_cookie(&b).await;
    b.finish().await;
    sweep_logs(w, &[&value, &session]);
}

#[tokio::test]
async fn an_llm_key_rotated_from_its_panel_under_a_request_loop_fails_no_request() {
    let w = World::start().await;
    let mock = Mock::start().await;
    let (old, new) = (canary("oldkey"), canary("newkey"));
    llm_node(&w, &mock, &old).await;
    let url = format!("http://{}/llm/n1/chat", w.served.public);
    let auth = bearer(&keys().es256.token(&claims("agent-1", "")));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(&url, &[("authorization", &auth)]).await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the node never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let b = Browser::start("console_panel_llm").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    let panel = "/console/agents/agent-1/nodes/llm/n1";
    b.goto(&w.admin(panel)).await;
    let key = b.find("#key").await.text().await.unwrap();
    assert!(key.contains("never shown again"), "{key}");
    assert!(b.has("#general-preset option[value=anthropic]").await);
    assert_eq!(
        b.find("#key-value").await.attr("type").await.unwrap(),
        Some("password".into())
    );
    b.screenshot("").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (failed, sent) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loops: Vec<_> = (0..3)
        .map(|_| {
            let (stop, failed, sent, url, auth) = (
                stop.clone(),
                failed.clone(),
                sent.clone(),
                url.clone(),
                auth.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if get(&url, &[("authorization", &auth)]).await.0 != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.find("#key-value").await.send_keys(&new).await.unwrap();
    b.find("#key button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path(panel).await;
    let key = b.find("#key").await.text().await.unwrap();
    assert!(key.contains("rollback possible"), "{key}");
    assert!(b.has("#rollback").await);
    scroll_to(&b, "key").await;
    b.screenshot("rotated").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {} requests",
        sent.load(Ordering::Relaxed)
    );
    assert!(sent.load(Ordering::Relaxed) > 3);
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {new}").as_str()),
        "the upstream sees the new key after the rotation"
    );
    let page = source(&b).await;
    assert!(!page.contains(&new) && !page.contains(&old));
    let session = session_cookie(&b).await;
    b.finish().await;
    sweep_logs(w, &[&old, &new, &session]);
}

#[tokio::test]
async fn a_cascade_delete_names_what_it_removes_and_asks() {
    let w = World::start().await;
    let mock = Mock::start().await;
    llm_node(&w, &mock, &canary("cascade")).await;
    let (status, body) = w
        .api_json("PUT", "/admin/v1/agents/agent-2/outbound/n1", json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    let b = Browser::start("console_panel_cascade").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    b.goto(&w.admin("/console/agents/agent-1/nodes/llm/n1"))
        .await;
    b.find("#delete button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let removes = b.find("#removes").await.text().await.unwrap();
    assert!(
        removes.contains("outbound authorization agent-1 → n1")
            && removes.contains("outbound authorization agent-2 → n1"),
        "{removes}"
    );
    assert!(source(&b).await.contains("in use"), "the API's own message");
    b.screenshot("").await;
    // Asked, nothing is gone yet.
    assert_eq!(w.api_get("/admin/v1/llm/n1").await.0, 200);
    b.find("#confirm button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/console/agents/agent-1").await;
    assert_eq!(w.api_get("/admin/v1/llm/n1").await.0, 404);
    for agent in ["agent-1", "agent-2"] {
        let (status, _, _) = w
            .api_get(&format!("/admin/v1/agents/{agent}/outbound/n1"))
            .await;
        assert_eq!(status, 404, "{agent}'s authorization went with it");
    }

    // An agent always takes its own authorizations and secrets with it: the page names them before it goes.
    let (_, agent) = w
        .api_json("POST", "/admin/v1/agents", json!({"name": "Doomed"}))
        .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let (status, secret) = w
        .api_json(
            "POST",
            &format!("/admin/v1/agents/{id}/secrets"),
            json!(null),
        )
        .await;
    assert_eq!(status, 201, "{secret}");
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/clients",
            json!({"id": "portal", "redirect_uris": ["https://portal.example.com/cb"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .api_json(
            "PUT",
            &format!("/admin/v1/agents/{id}/inbound/portal"),
            json!({"scopes": ["agent.access"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    b.goto(&w.admin(&format!("/console/agents/{id}/nodes/agent/{id}")))
        .await;
    b.find("#delete button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let removes = b.find("#removes").await.text().await.unwrap();
    assert!(
        removes.contains(&format!("inbound authorization portal → {id}"))
            && removes.contains(secret["id"].as_str().unwrap()),
        "{removes}"
    );
    assert_eq!(w.api_get(&format!("/admin/v1/agents/{id}")).await.0, 200);
    b.find("#confirm button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for_path("/console/agents").await;
    assert_eq!(w.api_get(&format!("/admin/v1/agents/{id}")).await.0, 404);
    b.finish().await;
}

#[tokio::test]
async fn a_viewer_has_no_controls_on_the_panels_and_a_forged_rotation_is_refused() {
    let w = World::start().await;
    let mock = Mock::start().await;
    let old = canary("viewer");
    llm_node(&w, &mock, &old).await;
    let before = w.api_get("/admin/v1/credentials/c1").await.2;
    let b = Browser::start("console_panel_viewer").await;
    sign_in_as(&b, &w, "bob", &w.password).await;
    b.wait_for_path("/console/agents").await;
    for panel in [
        "/console/agents/agent-1/nodes/llm/n1",
        "/console/agents/agent-1/edges/outbound/n1",
    ] {
        b.goto(&w.admin(panel)).await;
        b.find("#panel-title").await;
        assert!(
            !b.has("main form[method=post]").await,
            "{panel}: a viewer sees no form"
        );
        assert!(!b.has("#key-value").await);
    }
    b.goto(&w.admin("/console/agents/agent-1/nodes/llm/n1"))
        .await;
    assert!(
        b.find("#key")
            .await
            .text()
            .await
            .unwrap()
            .contains("does not allow changes")
    );
    b.screenshot("").await;

    let session = session_cookie(&b).await;
    let csrf = csrf_of(&b).await;
    let forged = canary("forged");
    for (path, body) in [
        (
            "/console/agents/agent-1/nodes/llm/n1/rotate",
            format!("csrf={csrf}&value={forged}&grace_seconds=0"),
        ),
        (
            "/console/agents/agent-1/nodes/llm/n1/delete",
            format!("csrf={csrf}&confirm=yes"),
        ),
        (
            "/console/agents/agent-1/edges/outbound/n1/delete",
            format!("csrf={csrf}"),
        ),
    ] {
        let (status, _, page) = w.console_post(path, &session, &body).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("editor role is needed"), "{path}: {page}");
    }
    assert_eq!(w.api_get("/admin/v1/credentials/c1").await.2, before);
    assert_eq!(
        w.api_get("/admin/v1/agents/agent-1/outbound/n1").await.0,
        200
    );
    b.finish().await;
    sweep_logs(w, &[&old, &forged, &session, &csrf]);
}

#[tokio::test]
async fn a_panel_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let w = World::start().await;
    let (_, agent) = w
        .api_json("POST", "/admin/v1/agents", json!({"name": "Csrf"}))
        .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let b = Browser::start("console_panel_csrf").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    let session = session_cookie(&b).await;
    let csrf = csrf_of(&b).await;
    let secret = format!("/console/agents/{id}/nodes/agent/{id}/secret");
    let save = format!("/console/agents/{id}/nodes/agent/{id}/save");
    for (path, body) in [
        (secret.as_str(), String::new()),
        (save.as_str(), "name=Renamed".to_owned()),
        (secret.as_str(), "csrf=wrong".to_owned()),
    ] {
        let (status, _, page) = w.console_post(path, &session, &body).await;
        assert_eq!(status, 403, "{path} {body}: {page}");
        assert!(page.contains("Form refused"), "{page}");
    }
    let (_, _, list) = w.api_get(&format!("/admin/v1/agents/{id}/secrets")).await;
    assert!(list.contains(r#""items":[]"#), "no secret made: {list}");
    let (_, _, one) = w.api_get(&format!("/admin/v1/agents/{id}")).await;
    assert!(one.contains(r#""name":"Csrf""#), "not renamed: {one}");
    // With the token, the same form works (so the refusals above were the token's doing).
    let (status, headers, page) = w
        .console_post(&save, &session, &format!("csrf={csrf}&name=Renamed"))
        .await;
    assert_eq!(status, 303, "{page}");
    assert_eq!(
        headers["location"],
        format!("/console/agents/{id}/nodes/agent/{id}")
    );
    b.finish().await;
}

#[tokio::test]
async fn an_api_refusal_is_shown_beside_its_field_with_the_input_kept() {
    let w = World::start().await;
    let (status, client) = w
        .api_json(
            "POST",
            "/admin/v1/clients",
            json!({"id": "helpdesk", "redirect_uris": ["https://helpdesk.example.com/cb"]}),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let (status, body) = w
        .api_json(
            "PUT",
            "/admin/v1/agents/agent-1/inbound/helpdesk",
            json!({"scopes": ["agent.access"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = Browser::start("console_panel_field_error").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    b.goto(&w.admin("/console/agents/agent-1/nodes/client/helpdesk"))
        .await;
    let hint = b
        .find("#field-general-redirect_uris")
        .await
        .text()
        .await
        .unwrap();
    assert!(hint.contains("%23"), "the # rule is explained: {hint}");
    let typed = "https://helpdesk.example.com/cb\nhttps://helpdesk.example.com/app#done";
    let uris = b.find("#general-redirect_uris").await;
    uris.clear().await.unwrap();
    uris.send_keys(typed).await.unwrap();
    let name = b.find("#general-name").await;
    name.clear().await.unwrap();
    name.send_keys("Help desk").await.unwrap();
    b.find("#general button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = b
        .find("#field-general-redirect_uris .error")
        .await
        .text()
        .await
        .unwrap();
    assert!(error.contains("%23"), "{error}");
    assert_eq!(
        b.find("#general-redirect_uris")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        typed,
        "what the user typed is kept"
    );
    assert_eq!(
        b.find("#general-name")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "Help desk"
    );
    assert!(!b.has("#field-general-name .error").await);
    b.screenshot("").await;
    let (_, _, stored) = w.api_get("/admin/v1/clients/helpdesk").await;
    assert!(
        !stored.contains("#done") && !stored.contains("Help desk"),
        "{stored}"
    );
    // The inbound scopes granted to it are on its panel.
    assert!(
        b.find("#granted")
            .await
            .text()
            .await
            .unwrap()
            .contains("agent.access")
    );

    // An enterprise service: its audience read-only, permissions added, the edge's scopes checked against them.
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/enterprise",
            json!({"id": "crm", "audience": "https://crm.internal", "permissions": [{"name": "Read", "scope": "crm.read"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .api_json(
            "PUT",
            "/admin/v1/agents/agent-1/outbound/crm",
            json!({"scopes": ["crm.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    b.goto(&w.admin("/console/agents/agent-1/nodes/enterprise/crm"))
        .await;
    assert_eq!(
        b.find("#general-audience")
            .await
            .attr("readonly")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(
        b.find("#granted")
            .await
            .text()
            .await
            .unwrap()
            .contains("crm.read")
    );
    b.find("#permissions-scope")
        .await
        .send_keys("crm.write")
        .await
        .unwrap();
    b.find("#permissions form.panel-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    // A 303 back to the same path: wait for the new list, not the path.
    b.wait_for_text("#permissions table", "crm.write").await;
    b.goto(&w.admin("/console/agents/agent-1/edges/outbound/crm"))
        .await;
    let scopes = b.find("#scopes-scopes").await;
    scopes.clear().await.unwrap();
    scopes.send_keys("crm.read crm.nope").await.unwrap();
    b.find("#scopes button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = b
        .find("#field-scopes-scopes .error")
        .await
        .text()
        .await
        .unwrap();
    assert!(error.contains("crm.nope"), "{error}");
    assert_eq!(
        b.find("#scopes-scopes")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "crm.read crm.nope"
    );
    b.screenshot("edge").await;
    let (_, _, grant) = w.api_get("/admin/v1/agents/agent-1/outbound/crm").await;
    assert!(!grant.contains("crm.nope"), "{grant}");
    b.finish().await;
}

#[tokio::test]
async fn an_owner_sees_the_directory_tree_operators_and_a_filtered_audit_log() {
    let w = World::start().await;
    for (path, body) in [
        (
            "/admin/v1/organizations",
            json!({"id": "acme", "name": "Acme"}),
        ),
        (
            "/admin/v1/organizations",
            json!({"id": "acme-support", "name": "Support", "parent": "acme"}),
        ),
        (
            "/admin/v1/groups",
            json!({"id": "helpers", "name": "Helpers"}),
        ),
    ] {
        let (status, answer) = w.api_json("POST", path, body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = w
        .api_json(
            "POST",
            "/admin/v1/users",
            json!({"id": "dave", "name": "Dave", "organization": "acme-support", "groups": ["helpers"]}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let b = Browser::start("console_pages").await;
    sign_in_as_owner(&b, &w).await;
    b.goto(&w.admin("/console/directory")).await;
    let tree = b.find("#organizations").await;
    let nested = b
        .find("#organizations li.depth-1")
        .await
        .text()
        .await
        .unwrap();
    assert!(nested.contains("acme-support"), "{nested}");
    assert!(tree.text().await.unwrap().contains("Acme"));
    let users = b.find("#users").await.text().await.unwrap();
    assert!(
        users.contains("dave") && users.contains("helpers"),
        "{users}"
    );
    b.screenshot("directory").await;

    b.goto(&w.admin("/console/operators")).await;
    let ops = b.find("#operators").await.text().await.unwrap();
    assert!(ops.contains("op-alice") && ops.contains("viewer"), "{ops}");
    b.screenshot("operators").await;

    b.goto(&w.admin("/console/audit?kind=organization")).await;
    let audit = b.find("#audit").await.text().await.unwrap();
    assert!(audit.contains("acme-support"), "{audit}");
    assert!(!audit.contains("helpers"), "filtered by kind: {audit}");
    b.screenshot("audit").await;
    // A filter the API refuses is shown beside the filters, what was typed kept.
    b.goto(&w.admin("/console/audit?since=yesterday")).await;
    assert!(
        b.find("#audit-error")
            .await
            .text()
            .await
            .unwrap()
            .contains("since")
    );
    assert_eq!(
        b.find("#audit-filters input[name=since]")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "yesterday"
    );
    b.finish().await;

    // An editor is not an owner: the operators page is refused by the API's role table.
    let b = Browser::start("console_pages_editor").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    b.goto(&w.admin("/console/operators")).await;
    assert!(source(&b).await.contains("owner role is needed"));
    b.finish().await;
}

#[tokio::test]
async fn an_external_service_panel_takes_an_api_key_or_an_oauth_client() {
    let w = World::start().await;
    let mock = Mock::start().await;
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/credentials",
            json!({"id": "ext-key", "kind": "external", "value": canary("ext"), "hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .api_json(
            "POST",
            "/admin/v1/external",
            json!({"id": "weather", "upstream": format!("http://{}/api", mock.addr), "style": "header",
                   "header": "x-api-key", "credential": "ext-key"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .api_json(
            "PUT",
            "/admin/v1/agents/agent-1/outbound/weather",
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = Browser::start("console_panel_external").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    let panel = "/console/agents/agent-1/nodes/external/weather";
    b.goto(&w.admin(panel)).await;
    assert!(
        b.find("#key h2")
            .await
            .text()
            .await
            .unwrap()
            .contains("API key")
    );
    assert!(!b.has("#general-preset").await, "presets are for LLMs");
    // An OAuth token URL that the SSRF rules refuse: beside the token URL, the input kept.
    b.find("#general-token_url")
        .await
        .send_keys("https://10.0.0.1/token")
        .await
        .unwrap();
    b.find("#general-client_id")
        .await
        .send_keys("weather-client")
        .await
        .unwrap();
    b.find("#general button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let error = b
        .find("#field-general-token_url .error")
        .await
        .text()
        .await
        .unwrap();
    assert!(!error.is_empty());
    assert_eq!(
        b.find("#general-token_url")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "https://10.0.0.1/token"
    );
    let (_, _, node) = w.api_get("/admin/v1/external/weather").await;
    assert!(!node.contains("oauth"), "{node}");
    b.screenshot("").await;
    b.finish().await;
}
