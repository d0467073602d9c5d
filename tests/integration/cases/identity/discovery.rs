//! Discovery, the JWKS, a standard OAuth client library, revocation and introspection, and PEM keys through the API.

use super::*;

#[tokio::test]
async fn discovery_jwks_and_token_verification() {
    let w = world("").await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, _, body) = get(&w.h.url(path), &[]).await;
        assert_eq!(status, 200, "{path}");
        let m: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(m["issuer"], w.issuer());
        assert_eq!(m["token_endpoint"], w.token_url());
        assert_eq!(m["jwks_uri"], w.h.url("/.well-known/jwks.json"));
        assert_eq!(m["authorization_endpoint"], w.h.url("/oauth2/authorize"));
        assert_eq!(m["revocation_endpoint"], w.h.url("/oauth2/revoke"));
        assert_eq!(m["introspection_endpoint"], w.h.url("/oauth2/introspect"));
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        let methods = m["token_endpoint_auth_methods_supported"].to_string();
        for x in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ] {
            assert!(methods.contains(x));
        }
        assert!(
            m["grant_types_supported"]
                .to_string()
                .contains("token-exchange")
        );
    }
    let token = w.agent1_token().await;
    let (status, _, body) = get(&w.h.url("/.well-known/jwks.json"), &[]).await;
    assert_eq!(status, 200);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&body).unwrap();
    // The current key, the next one (published ahead), no private parts.
    assert!(set.keys.len() >= 2);
    assert!(!body.contains("\"d\""));
    let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();
    let jwk = set.find(&kid).expect("the signing key is published");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["urn:idguard:proxy"]);
    v.set_issuer(&[w.issuer()]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["client_id"], "agent-1");
}

/// The `oauth2` crate (a published OAuth client library), configured from discovery only, obtains a token that
/// the proxy accepts.
#[tokio::test]
async fn a_standard_oauth_client_library_works_unchanged() {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};

    let w = world("").await;
    let (_, _, body) = get(&w.h.url("/.well-known/oauth-authorization-server"), &[]).await;
    let meta: Value = serde_json::from_str(&body).unwrap();
    let client = BasicClient::new(ClientId::new("agent-1".into()))
        .set_client_secret(ClientSecret::new(AGENT_SECRET.into()))
        .set_token_uri(TokenUrl::new(meta["token_endpoint"].as_str().unwrap().into()).unwrap());
    let http = crate::common::client::oauth2_http;
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("llm.use".into()))
        .request_async(&http)
        .await
        .unwrap();
    let at = token.access_token().secret().clone();
    assert_eq!(token.scopes().unwrap()[0].as_str(), "llm.use");
    let (status, _, _) = get(
        &w.h.url("/llm/openai/models"),
        &[("authorization", &format!("Bearer {at}"))],
    )
    .await;
    assert_eq!(status, 200);
    // A wrong secret surfaces as the library's server error with invalid_client.
    let bad = BasicClient::new(ClientId::new("agent-1".into()))
        .set_client_secret(ClientSecret::new("nope".into()))
        .set_token_uri(TokenUrl::new(w.token_url()).unwrap());
    let err = bad.exchange_client_credentials().request_async(&http).await;
    assert!(format!("{err:?}").contains("invalid_client"), "{err:?}");
}

#[tokio::test]
async fn revocation_and_introspection() {
    let w = world("").await;
    let token = w.agent1_token().await;
    let intro = |caller: &'static str, secret: &'static str, t: String| {
        let url = w.h.url("/oauth2/introspect");
        async move {
            let (status, headers, body) = form(
                &url,
                &[("authorization", &basic(caller, secret))],
                &format!("token={t}"),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert!(no_store(&headers));
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let v = intro("agent-1", AGENT_SECRET, token.clone()).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], "agent-1");
    assert_eq!(v["scope"], "crm.read crm.write llm.use");
    // Another client may not look at it.
    let v = intro("web", CLIENT_SECRET, token.clone()).await;
    assert_eq!(v, serde_json::json!({"active": false}));
    // Introspection needs client authentication.
    let (status, _, _) = form(
        &w.h.url("/oauth2/introspect"),
        &[],
        &format!("token={token}"),
    )
    .await;
    assert_eq!(status, 401);

    let call = |t: String| {
        let url = w.h.url("/llm/openai/models");
        async move {
            get(&url, &[("authorization", &format!("Bearer {t}"))])
                .await
                .0
        }
    };
    assert_eq!(call(token.clone()).await, 200);
    // Another client cannot revoke it (RFC 7009 answers 200 regardless).
    let (status, _, _) = form(
        &w.h.url("/oauth2/revoke"),
        &[("authorization", &basic("web", CLIENT_SECRET))],
        &format!("token={token}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(call(token.clone()).await, 200);
    let (status, headers, _) = form(
        &w.h.url("/oauth2/revoke"),
        &[("authorization", &basic("agent-1", AGENT_SECRET))],
        &format!("token={token}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(no_store(&headers));
    // Refused at the proxy on the very next request, and inactive.
    assert_eq!(call(token.clone()).await, 401);
    let v = intro("agent-1", AGENT_SECRET, token).await;
    assert_eq!(v["active"], false);
    // Garbage is answered 200 too.
    let (status, _, _) = form(
        &w.h.url("/oauth2/revoke"),
        &[("authorization", &basic("agent-1", AGENT_SECRET))],
        "token=not-a-token",
    )
    .await;
    assert_eq!(status, 200);
}

/// A key registered as PEM through the admin API authenticates an API-managed agent; deleting it ends both the
/// key and the tokens obtained with it.
#[tokio::test]
async fn private_key_jwt_with_a_pem_key_registered_through_the_api() {
    use crate::common::harness::admin;
    use base64::Engine;
    let w = world("").await;
    let (status, _, agent) = admin(
        &w.h,
        "POST",
        "/admin/v1/agents",
        Some(serde_json::json!({"name": "pem agent", "auth": "private_key_jwt"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let es = &keys().es256;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    // SubjectPublicKeyInfo for P-256: the fixed prefix, then the uncompressed point.
    let mut der: Vec<u8> = (0..26)
        .map(|i| {
            u8::from_str_radix(
                &"3059301306072a8648ce3d020106082a8648ce3d030107034200"[i * 2..i * 2 + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    der.push(0x04);
    der.extend(b64(es.jwk["x"].as_str().unwrap()));
    der.extend(b64(es.jwk["y"].as_str().unwrap()));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let (status, _, key) = admin(
        &w.h,
        "POST",
        &format!("/admin/v1/agents/{id}/keys"),
        Some(serde_json::json!({"id": "pem-1", "pem": pem})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let signed = |kid: &str| {
        let claims = serde_json::json!({
            "iss": id, "sub": id, "aud": w.issuer(), "iat": now(), "exp": now() + 60,
            "jti": format!("p-{}", crate::common::keys::rand_hex(8)),
        });
        es.sign_raw(
            &serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string(),
            &claims.to_string(),
        )
    };
    // The key applies once the reload the API triggered has swapped the snapshot in (milliseconds).
    let mut answer = (0, String::new());
    for _ in 0..100 {
        let (status, _, body) = crate::common::client::form(
            &w.token_url(),
            &[],
            &jwt_form("grant_type=client_credentials", &signed("pem-1")),
        )
        .await;
        answer = (status, body);
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    let token = access_token(&body);
    assert_eq!(claims_of(&token)["idg_cred"], "key:pem-1");
    let at_proxy = |t: String| {
        let url = w.h.url("/llm/openai/models");
        async move {
            get(&url, &[("authorization", &format!("Bearer {t}"))])
                .await
                .0
        }
    };
    // Valid but without an edge to the node: 403, decided after the token was accepted.
    assert_eq!(at_proxy(token.clone()).await, 403);
    let (status, _, _) = admin(
        &w.h,
        "DELETE",
        &format!("/admin/v1/agents/{id}/keys/pem-1"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "key removal applies",
        async || try_assertion(&w, &signed("pem-1")).await == 401,
    )
    .await;
    // The token obtained with the deleted key is refused before authorization.
    assert_eq!(at_proxy(token).await, 401);
}
