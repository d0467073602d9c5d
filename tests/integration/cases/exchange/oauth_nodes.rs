//! External nodes with OAuth client credentials, an outside RFC 8693 endpoint, and API-issued secrets.

use super::*;

#[tokio::test]
async fn external_oauth_node_gets_caches_and_injects_a_token() {
    let provider = Mock::start().await;
    provider.set(Behavior::Status(
        200,
        r#"{"access_token":"ext-token-CANARY-77aa","token_type":"Bearer","expires_in":3600}"#
            .into(),
    ));
    let api = Mock::start().await;
    let w = world_oauth(&provider, &api).await;
    let t = w.agent1_token().await;
    for _ in 0..3 {
        assert_eq!(call(&w, "/ext/partner/items", &t, &[]).await.0, 200);
    }
    assert_eq!(provider.count(), 1, "one token request, then the cache");
    let asked = provider.last();
    assert_eq!(
        asked.header("authorization").unwrap(),
        crate::common::idp::basic("idguard-client", "oauth-secret-CANARY-31c4")
    );
    assert_eq!(
        api.last().header("authorization"),
        Some("Bearer ext-token-CANARY-77aa")
    );
    assert!(!api.last().dump().contains(&t));
}

#[tokio::test]
async fn an_outside_rfc8693_endpoint_is_used_when_configured() {
    let outside = Mock::start().await;
    outside.set(Behavior::Status(
        200,
        r#"{"access_token":"outside-token-CANARY-12ef","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":600}"#.into(),
    ));
    let svc = Mock::start().await;
    let w = world(&format!(
        "[[enterprise]]\nid = \"hr\"\naudience = \"urn:svc:hr\"\nupstream = \"http://{}/hr\"\n\
         exchange = {{ token_url = \"http://{}/oauth2/token\" }}\n\n\
         [[outbound]]\nagent = \"agent-1\"\nnode = \"hr\"\n",
        svc.addr, outside.addr
    ))
    .await;
    let t = w.agent1_token().await;
    assert_eq!(call(&w, "/svc/hr/people", &t, &[]).await.0, 200);
    assert_eq!(
        svc.last().header("authorization"),
        Some("Bearer outside-token-CANARY-12ef")
    );
    let asked = outside.last();
    let body = String::from_utf8_lossy(&asked.body).into_owned();
    assert!(body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"));
    assert!(body.contains(&format!("subject_token={t}")));
    assert!(body.contains("audience=urn%3Asvc%3Ahr"));
    // Refusals there are refusals here.
    outside.set(Behavior::Status(
        400,
        r#"{"error":"invalid_target"}"#.into(),
    ));
    let t2 = w.agent1_token().await;
    assert_eq!(call(&w, "/svc/hr/people", &t2, &[]).await.0, 403);
}

/// Secrets issued through the admin API: ≥ 256 bits, several at once for rotation, each revocable on its own;
/// a disabled agent gets no token and its tokens stop working.
#[tokio::test]
async fn api_issued_secrets_rotate_and_revoke() {
    use crate::common::harness::admin;
    let w = world("").await;
    let (status, _, agent) = admin(
        &w.h,
        "POST",
        "/admin/v1/agents",
        Some(serde_json::json!({"name": "rotating"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let (status, _, s) = admin(
            &w.h,
            "POST",
            &format!("/admin/v1/agents/{id}/secrets"),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 201, "{s}");
        let secret = s["secret"].as_str().unwrap().to_owned();
        // idgsec_ + 43 base64url characters = 32 random bytes.
        assert!(secret.len() >= 7 + 43, "{secret}");
        secrets.push((s["id"].as_str().unwrap().to_owned(), secret));
    }
    let get_token = |secret: String| {
        let (url, id) = (w.token_url(), id.clone());
        async move {
            form(
                &url,
                &[("authorization", &basic(&id, &secret))],
                "grant_type=client_credentials",
            )
            .await
        }
    };
    // New secrets apply once the reload the API triggered has swapped the snapshot in (milliseconds).
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "new secrets apply",
        async || get_token(secrets[1].1.clone()).await.0 == 200,
    )
    .await;
    let (status, _, body) = get_token(secrets[0].1.clone()).await;
    assert_eq!(status, 200, "{body}");
    let old_token = access_token(&body);
    assert_eq!(get_token(secrets[1].1.clone()).await.0, 200);
    // Retire the first secret: it stops working, its token stops working, the second goes on.
    let (status, _, _) = admin(
        &w.h,
        "DELETE",
        &format!("/admin/v1/agents/{id}/secrets/{}", secrets[0].0),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "secret removal applies",
        async || get_token(secrets[0].1.clone()).await.0 == 401,
    )
    .await;
    assert_eq!(get_token(secrets[1].1.clone()).await.0, 200);
    // The agent has no edge, so the proxy would refuse anyway; introspection shows the token is dead.
    let (_, _, body) = form(
        &w.h.url("/oauth2/introspect"),
        &[("authorization", &basic(&id, &secrets[1].1))],
        &format!("token={old_token}"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["active"],
        false
    );
    // Disabled: no token, and existing tokens are refused at the proxy.
    let live = w.agent1_token().await;
    assert_eq!(call(&w, "/llm/openai/x", &live, &[]).await.0, 200);
    w.edit(|t| {
        t.replace(
            "[[agents]]\nid = \"agent-1\"\n",
            "[[agents]]\nid = \"agent-1\"\nenabled = false\n",
        )
    })
    .await;
    assert_eq!(call(&w, "/llm/openai/x", &live, &[]).await.0, 401);
    let (status, _, _) = w
        .token(
            &[],
            &format!(
                "grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"
            ),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_external_oauth_token_is_refreshed_30s_before_it_expires() {
    let provider = Mock::start().await;
    // 31 s of life: stale for the cache one second after it arrives.
    provider.set(Behavior::Status(
        200,
        r#"{"access_token":"short-lived-token","expires_in":31}"#.into(),
    ));
    let api = Mock::start().await;
    let w = world_oauth(&provider, &api).await;
    let t = w.agent1_token().await;
    assert_eq!(call(&w, "/ext/partner/a", &t, &[]).await.0, 200);
    assert_eq!(call(&w, "/ext/partner/b", &t, &[]).await.0, 200);
    assert_eq!(provider.count(), 1);
    w.h.setup.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(call(&w, "/ext/partner/c", &t, &[]).await.0, 200);
    assert_eq!(provider.count(), 2, "refreshed once stale");
    // The provider refusing the client secret is a 502 for the caller, never the provider's body.
    provider.set(Behavior::Status(
        401,
        r#"{"error":"invalid_client"}"#.into(),
    ));
    w.h.setup.clock.advance(std::time::Duration::from_secs(2));
    let (status, body) = call(&w, "/ext/partner/d", &t, &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("invalid_client"));
}
