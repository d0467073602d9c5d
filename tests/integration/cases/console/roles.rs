//! Roles in the console: a viewer sees no edit controls, and the server refuses their writes anyway.

use super::*;

#[tokio::test]
async fn a_viewer_sees_no_edit_controls_and_a_forged_post_is_refused() {
    let w = World::start().await;
    let b = Browser::start("console_viewer").await;
    sign_in_as(&b, &w, "bob", &w.password).await;
    b.wait_for_path("/console/agents").await;
    assert_eq!(b.find("#role").await.text().await.unwrap(), "viewer");
    assert!(
        b.find("#agents")
            .await
            .text()
            .await
            .unwrap()
            .contains("agent-1")
    );
    assert!(
        !b.has("#register-agent").await,
        "a viewer sees no register control"
    );
    b.screenshot("").await;

    // The form the page does not show, forged with the session's valid CSRF token: refused by the API's role table.
    let session = session_cookie(&b).await;
    let csrf = csrf_of(&b).await;
    let (status, _, page) = w
        .console_post(
            "/console/agents",
            &session,
            &format!("name=forged&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("editor role is needed"), "{page}");
    let (_, _, list) = w.api_get("/admin/v1/agents?q=forged").await;
    assert!(
        list.contains(r#""items":[]"#),
        "nothing was created: {list}"
    );

    // Demoting or unbinding takes effect on the next request: the role is read again each time.
    let (status, _, body) = w
        .served_patch("/admin/v1/operators/op-bob", r#"{"role":"editor"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    b.goto(&w.admin("/console/agents")).await;
    assert_eq!(b.find("#role").await.text().await.unwrap(), "editor");
    let (status, _, _) = w.served_delete("/admin/v1/operators/op-bob").await;
    assert_eq!(status, 204);
    b.goto(&w.admin("/console/agents")).await;
    b.wait_for_path("/console/signin").await;
    b.finish().await;
    sweep_logs(w, &[&session, &csrf]);
}

#[tokio::test]
async fn an_operator_is_bound_to_a_real_user_no_other_operator_holds() {
    let w = World::start().await;
    for (body, needle) in [
        (
            r#"{"id":"op-2","role":"viewer","user":"nobody"}"#,
            "no directory user",
        ),
        (
            r#"{"id":"op-2","role":"viewer","user":"alice"}"#,
            r#"already bound to operator \"op-alice\""#,
        ),
    ] {
        let (status, _, resp) = w.api_post("/admin/v1/operators", body).await;
        assert_eq!(status, 422, "{body}: {resp}");
        assert!(
            resp.contains("operators.user") && resp.contains(needle),
            "{body}: {resp}"
        );
    }
    let (_, _, list) = w.api_get("/admin/v1/operators").await;
    assert!(!list.contains("op-2"), "nothing was created: {list}");
    assert!(list.contains(r#""user":"alice""#), "{list}");
    // Re-binding: to a user another operator holds, refused; to a free one (or the same), done.
    let (status, _, resp) = w
        .served_patch("/admin/v1/operators/op-bob", r#"{"user":"alice"}"#)
        .await;
    assert_eq!(status, 422, "{resp}");
    assert!(resp.contains("operators.user"), "{resp}");
    for user in ["bob", "carol"] {
        let (status, _, resp) = w
            .served_patch(
                "/admin/v1/operators/op-bob",
                &format!(r#"{{"user":"{user}"}}"#),
            )
            .await;
        assert_eq!(status, 200, "{resp}");
        assert!(resp.contains(&format!(r#""user":"{user}""#)), "{resp}");
    }

    // The identity service knows the console client by its one exact redirect URI.
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = |redirect: &str| {
        format!(
            "http://{}/oauth2/authorize?response_type=code&client_id=idguard-console&redirect_uri={}\
             &state=s&code_challenge={challenge}&code_challenge_method=S256",
            w.served.public,
            crate::common::idp::enc(redirect)
        )
    };
    let (status, _, page) = get(&authorize(&w.admin("/console/callback")), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"password\""));
    for other in [
        "http://evil.example/console/callback",
        &w.admin("/console/callback/x"),
    ] {
        let (status, headers, page) = get(&authorize(other), &[]).await;
        assert_eq!(status, 400, "{other}: {page}");
        assert!(
            headers.get("location").is_none(),
            "never redirected to {other}"
        );
    }
    let password = w.password.clone();
    let World { served, .. } = w;
    let logs = served.stop();
    assert!(!logs.contains(&password));
}
