//! User sign-in with PKCE, the inbound gateway, permission modes and passwords set through the admin API.

use super::*;

#[tokio::test]
async fn user_sign_in_with_pkce_and_the_inbound_gateway() {
    let w = world("").await;
    let (verifier, challenge) = pkce();
    let (status, location) = sign_in(&w, "alice", ALICE_PASSWORD, &challenge).await;
    assert_eq!(status, 303, "{location}");
    assert!(location.starts_with(REDIRECT));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(enc(&w.issuer()).as_str())
    );
    let code = query_param(&location, "code").unwrap();
    // The wrong verifier fails — and burns the code.
    let (status, _, body) = redeem(
        &w,
        "web",
        &code,
        "wrong-verifier-wrong-verifier-wrong-verifier",
    )
    .await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_grant"));
    let (status, _, body) = redeem(&w, "web", &code, &verifier).await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_grant"));

    let (_, location) = sign_in(&w, "alice", ALICE_PASSWORD, &challenge).await;
    let code = query_param(&location, "code").unwrap();
    let (status, _, body) = redeem(&w, "web", &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    let user_token = access_token(&body);
    let c = claims_of(&user_token);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], "web");
    assert_eq!(c["aud"], "urn:idguard:agent:agent-k");
    assert_eq!(c["scope"], "agent.access");
    // A code is good once.
    let (status, _, _) = redeem(&w, "web", &code, &verifier).await;
    assert_eq!(status, 400);

    // The inbound gateway: the agent sees the verified caller, never forged copies.
    let (status, body) = call(
        &w,
        "/agents/agent-k/tasks?x=1",
        &user_token,
        &[("x-idguard-user", "mallory"), ("x-idguard-client", "evil")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = w.agent_ep.last();
    assert!(seen.uri.starts_with("/agent/tasks"), "{}", seen.uri);
    assert_eq!(seen.header_values("x-idguard-user"), vec!["alice"]);
    assert_eq!(seen.header_values("x-idguard-client"), vec!["web"]);
    assert_eq!(seen.header("x-idguard-scope"), Some("agent.access"));
    assert!(seen.header("authorization").is_none());

    // Delegation: the agent acts for alice at the enterprise service, through the proxy.
    let passed = seen.header("x-idguard-subject-token").unwrap().to_owned();
    assert_eq!(passed, user_token);
    let agent = w.agentk_token().await;
    let (status, _) = call(
        &w,
        "/svc/crm/for-alice",
        &agent,
        &[("x-idguard-subject-token", &passed)],
    )
    .await;
    assert_eq!(status, 200);
    let exchanged = bearer_of(&w.crm);
    let c = verify_with_jwks(&w, &exchanged, "urn:svc:crm").await;
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["act"]["sub"], "agent-k");
    assert!(w.crm.last().header("x-idguard-subject-token").is_none());

    // An agent's own token (aud = the proxy) is not a client token for the gateway.
    let (status, _) = call(&w, "/agents/agent-k/tasks", &agent, &[]).await;
    assert_eq!(status, 401);
    // A client token without a user works, for the client itself.
    let web = w.web_token().await;
    let (status, _) = call(&w, "/agents/agent-k/x", &web, &[]).await;
    assert_eq!(status, 200);
    assert!(w.agent_ep.last().header("x-idguard-user").is_none());

    // alice loses agent-k's permission (manual mode, now bob only): her token stops at the gateway, and the agent
    // can no longer act for her.
    w.edit(|t| t.replace("users = [\"alice\"] }", "users = [\"bob\"] }"))
        .await;
    let (status, body) = call(&w, "/agents/agent-k/tasks", &user_token, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("user_not_authorized"));
    let agent = w.agentk_token().await;
    let (status, body) = call(
        &w,
        "/svc/crm/for-alice-again",
        &agent,
        &[("x-idguard-subject-token", &passed)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("exchange_refused"));
}

#[tokio::test]
async fn sign_in_refuses_bad_passwords_unauthorized_users_and_bad_redirects() {
    let w = world("").await;
    let (_, challenge) = pkce();
    let (status, _) = sign_in(&w, "alice", "wrong-password", &challenge).await;
    assert_eq!(status, 401);
    let (status, _) = sign_in(&w, "nobody", "whatever-password", &challenge).await;
    assert_eq!(status, 401);
    // bob may use the client but does not hold agent-k's permission (manual mode: alice only).
    let (status, location) = sign_in(&w, "bob", "bob-password-123", &challenge).await;
    assert_eq!(status, 303);
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert!(query_param(&location, "code").is_none());
    // An unregistered redirect URI gets a page, never a redirect.
    let (status, headers, _) = get(
        &w.h.url(&format!(
            "/oauth2/authorize?response_type=code&client_id=web&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            enc("https://evil.example/cb")
        )),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(headers.get("location").is_none());
    // plain PKCE is refused (redirected with invalid_request).
    let (status, headers, _) = get(
        &w.h.url(&format!(
            "/oauth2/authorize?response_type=code&client_id=web&redirect_uri={}&code_challenge={challenge}&code_challenge_method=plain",
            enc(REDIRECT)
        )),
        &[],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        headers
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("error=invalid_request")
    );
}

/// Auto mode: every user the client authorizes holds the agent's permission — here through an organizational
/// unit above theirs. Manual mode through a group.
#[tokio::test]
async fn agent_permission_modes_and_the_organization_tree() {
    let w = world(&format!(
        "[[organizations]]\nid = \"eng\"\n\n[[organizations]]\nid = \"eng-ml\"\nparent = \"eng\"\n\n\
         [[groups]]\nid = \"ops\"\n\n\
         [[users]]\nid = \"carol\"\norganization = \"eng-ml\"\npassword_hash = \"{carol}\"\n\n\
         [[users]]\nid = \"dave\"\ngroups = [\"ops\"]\npassword_hash = \"{dave}\"\n\n\
         [[agents]]\nid = \"agent-auto\"\nendpoint = \"http://{ep}/auto\"\n\n\
         [[agents]]\nid = \"agent-ops\"\nendpoint = \"http://{ep}/ops\"\npermission = {{ mode = \"manual\", groups = [\"ops\"] }}\n\n\
         [[clients]]\nid = \"portal\"\nredirect_uris = [\"{REDIRECT}\"]\norganizations = [\"eng\"]\ngroups = [\"ops\"]\n\
         secrets = [{{ id = \"p1\", hash = \"{hash}\" }}]\n\n\
         [[inbound]]\nclient = \"portal\"\nagent = \"agent-auto\"\nscopes = [\"agent.access\"]\n\n\
         [[inbound]]\nclient = \"portal\"\nagent = \"agent-ops\"\nscopes = [\"agent.access\"]\n",
        carol = crate::common::idp::argon2id("carol-password-1"),
        dave = crate::common::idp::argon2id("dave-password-1"),
        ep = "127.0.0.1:9",
        hash = crate::common::idp::secret_hash(CLIENT_SECRET),
    ))
    .await;
    let signin = |user: &'static str, password: &'static str, agent: &'static str| {
        let w = &w;
        async move {
            let (verifier, challenge) = pkce();
            let audience = format!("&audience={}", enc(&format!("urn:idguard:agent:{agent}")));
            let (status, location) =
                sign_in_to(w, "portal", &audience, user, password, &challenge).await;
            assert_eq!(status, 303, "{location}");
            let Some(code) = query_param(&location, "code") else {
                return Err(query_param(&location, "error").unwrap());
            };
            let (status, _, body) = redeem(w, "portal", &code, &verifier).await;
            assert_eq!(status, 200, "{body}");
            Ok(access_token(&body))
        }
    };
    // carol: in eng-ml, under eng, which the client authorizes; agent-auto is in auto mode.
    let t = signin("carol", "carol-password-1", "agent-auto")
        .await
        .unwrap();
    assert_eq!(claims_of(&t)["sub"], "carol");
    // carol is not in ops: agent-ops (manual, group ops) refuses her; dave (ops) gets in.
    assert_eq!(
        signin("carol", "carol-password-1", "agent-ops")
            .await
            .unwrap_err(),
        "access_denied"
    );
    let t = signin("dave", "dave-password-1", "agent-ops")
        .await
        .unwrap();
    assert_eq!(claims_of(&t)["aud"], "urn:idguard:agent:agent-ops");
}

/// Passwords set through the admin API: stored only as argon2id, never shown or audited, kept by a `PUT` without
/// one, and used by the sign-in page; a hash or a short password is refused by field.
#[tokio::test]
async fn passwords_set_through_the_admin_api() {
    use crate::common::harness::admin;
    let w = world("").await;
    let password = "erin-CANARY-password-8d1f";
    let (status, _, user) = admin(
        &w.h,
        "POST",
        "/admin/v1/users",
        Some(serde_json::json!({"id": "erin", "password": password})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let (_, _, shown) = admin(&w.h, "GET", "/admin/v1/users/erin", None, &[]).await;
    assert_eq!(shown["has_password"], true);
    for body in [&user, &shown] {
        let text = body.to_string();
        assert!(
            !text.contains(password) && !text.contains("argon2"),
            "{text}"
        );
    }
    let audit =
        std::fs::read_to_string(w.h.setup.dir.path().join("data").join("audit.log")).unwrap();
    assert!(audit.contains("\"erin\"") && !audit.contains("argon2") && !audit.contains(password));
    for (body, field) in [
        (
            serde_json::json!({"id": "x", "password_hash": "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"}),
            "users.password_hash",
        ),
        (
            serde_json::json!({"id": "x", "password": "short"}),
            "users.password",
        ),
    ] {
        let (status, _, resp) = admin(&w.h, "POST", "/admin/v1/users", Some(body), &[]).await;
        assert_eq!(status, 422, "{resp}");
        assert_eq!(resp["error"]["fields"][0]["path"], field);
    }
    // A replacement without a password keeps it.
    let (status, _, _) = admin(
        &w.h,
        "PUT",
        "/admin/v1/users/erin",
        Some(serde_json::json!({"id": "erin", "name": "Erin"})),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    // erin is not authorized on the `web` client: the right password reaches that check (access_denied), a wrong
    // one stops at the password (401).
    let (_, challenge) = pkce();
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "the user applies",
        async || {
            let (status, location) = sign_in(&w, "erin", password, &challenge).await;
            status == 303 && query_param(&location, "error").as_deref() == Some("access_denied")
        },
    )
    .await;
    assert_eq!(
        sign_in(&w, "erin", "not-erins-password", &challenge)
            .await
            .0,
        401
    );
}
