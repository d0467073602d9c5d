//! The operators page: an owner creates an operator bound to a directory user and one holding a token (shown
//! once), changes a role, rebinds a user, deletes one after a confirmation naming it, and filters the list; a
//! refusal is shown beside its field with the input kept; an editor's forged POST is refused.

use serde_json::Value;

use super::*;

async fn operator(w: &World, id: &str) -> (u16, Value) {
    let (status, _, body) = w.api_get(&format!("/admin/v1/operators/{id}")).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Types `value` into the input `selector` (cleared first).
async fn type_into(b: &Browser, selector: &str, value: &str) {
    let input = b.find(selector).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn pick(b: &Browser, select: &str, value: &str) {
    b.find(&format!("{select} option[value='{value}']"))
        .await
        .click()
        .await
        .unwrap();
}

async fn submit(b: &Browser, section: &str) {
    b.find(&format!("#{section} button[type=submit]"))
        .await
        .click()
        .await
        .unwrap();
}

async fn value_of(b: &Browser, selector: &str) -> String {
    b.find(selector).await.prop("value").await.unwrap().unwrap()
}

async fn text_of(b: &Browser, selector: &str) -> String {
    b.find(selector).await.text().await.unwrap()
}

#[tokio::test]
async fn an_owner_creates_changes_rebinds_and_deletes_operators() {
    let w = World::start().await;
    let b = Browser::start("console_operators").await;
    sign_in_as_owner(&b, &w).await;
    b.goto(&w.admin("/console/operators")).await;
    let listed = text_of(&b, "#operators").await;
    assert!(
        listed.contains("op-alice") && listed.contains("op-bob"),
        "{listed}"
    );

    // Bound to a directory user; a user that does not exist is refused beside the field, the input kept.
    type_into(&b, "#create-id", "op-carol").await;
    pick(&b, "#create-role", "editor").await;
    type_into(&b, "#create-user", "nobody").await;
    submit(&b, "create").await;
    let error = text_of(&b, "#field-create-user .error").await;
    assert!(error.contains("nobody"), "{error}");
    assert_eq!(value_of(&b, "#create-id").await, "op-carol");
    assert_eq!(value_of(&b, "#create-role").await, "editor");
    b.screenshot("refused").await;
    type_into(&b, "#create-user", "carol").await;
    submit(&b, "create").await;
    b.wait_for_path("/console/operators").await;
    let (status, carol) = operator(&w, "op-carol").await;
    assert_eq!(
        (status, &carol["role"], &carol["user"]),
        (200, &"editor".into(), &"carol".into())
    );

    // With a token: shown once, with a copy button, and it works on the admin API.
    type_into(&b, "#create-id", "op-robot").await;
    pick(&b, "#create-signin", "token").await;
    submit(&b, "create").await;
    let token = value_of(&b, "#once-value").await;
    assert!(token.starts_with("idgop_"), "{token}");
    assert!(b.has("button[data-copy=once-value]").await, "a copy button");
    b.screenshot("token").await;
    let (status, _, _) = get(
        &w.admin("/admin/v1/agents"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 200, "the new viewer's token reads");
    b.goto(&w.admin("/console/operators")).await;
    assert!(!b.has("#once").await);
    assert!(
        !b.client.source().await.unwrap().contains(&token),
        "the token is shown again"
    );

    // A role changes.
    pick(&b, "#change-role-operator", "op-robot").await;
    pick(&b, "#change-role-role", "editor").await;
    submit(&b, "change-role").await;
    b.wait_for_path("/console/operators").await;
    assert_eq!(operator(&w, "op-robot").await.1["role"], "editor");

    // A user bound to another operator is refused beside the field; once that operator is deleted (after a
    // confirmation naming it), the user rebinds.
    pick(&b, "#rebind-operator", "op-robot").await;
    type_into(&b, "#rebind-user", "carol").await;
    submit(&b, "rebind").await;
    let error = text_of(&b, "#field-rebind-user .error").await;
    assert!(error.contains("op-carol"), "{error}");
    assert_eq!(value_of(&b, "#rebind-user").await, "carol");
    let delete = "#operators tbody tr:nth-child(3) button[type=submit]";
    assert!(
        text_of(&b, "#operators tbody tr:nth-child(3)")
            .await
            .contains("op-carol")
    );
    b.find(delete).await.click().await.unwrap();
    let asked = b.client.get_alert_text().await.unwrap();
    assert!(asked.contains("op-carol"), "{asked}");
    b.client.accept_alert().await.unwrap();
    b.wait_for_path("/console/operators").await;
    assert_eq!(operator(&w, "op-carol").await.0, 404);
    pick(&b, "#rebind-operator", "op-robot").await;
    type_into(&b, "#rebind-user", "carol").await;
    submit(&b, "rebind").await;
    b.wait_for_path("/console/operators").await;
    assert_eq!(operator(&w, "op-robot").await.1["user"], "carol");

    // Filtered by role and by text.
    b.goto(&w.admin("/console/operators?role=viewer")).await;
    let listed = text_of(&b, "#operators").await;
    assert!(
        listed.contains("op-bob") && !listed.contains("op-alice"),
        "{listed}"
    );
    b.goto(&w.admin("/console/operators?q=ROB")).await;
    let listed = text_of(&b, "#operators").await;
    assert!(
        listed.contains("op-robot") && !listed.contains("op-bob"),
        "{listed}"
    );
    assert_eq!(value_of(&b, "#filter-q").await, "ROB");
    b.goto(&w.admin("/console/operators")).await;
    b.screenshot("").await;
    b.finish().await;

    // An editor sees no operators page, and a forged POST with the session's valid CSRF token is refused.
    let b = Browser::start("console_operators_editor").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    let (session, csrf) = (session_cookie(&b).await, csrf_of(&b).await);
    for (path, body) in [
        (
            "/console/operators/create",
            format!("csrf={csrf}&id=op-forged&role=owner&signin=token"),
        ),
        (
            "/console/operators/role",
            format!("csrf={csrf}&operator=op-alice&role=owner"),
        ),
        (
            "/console/operators/delete",
            format!("csrf={csrf}&item=op-bob"),
        ),
    ] {
        let (status, _, page) = w.console_post(path, &session, &body).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("owner role is needed"), "{page}");
    }
    assert_eq!(operator(&w, "op-forged").await.0, 404);
    assert_eq!(operator(&w, "op-alice").await.1["role"], "editor");
    assert_eq!(operator(&w, "op-bob").await.0, 200);
    b.finish().await;
    sweep_logs(w, &[&token, &session, &csrf]);
}
