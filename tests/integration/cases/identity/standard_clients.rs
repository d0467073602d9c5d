//! Standard OAuth clients with their defaults (issue 14): the `oauth2` crate configured from discovery alone, on a
//! server whose issuer is derived from the port it got, doing client secrets (basic and post), introspection and
//! revocation (posted by hand: the crate wants an https revocation URL); and `private_key_jwt` the way the common Python library (Authlib) signs it by default — `aud` =
//! the token endpoint URL (or the URL posted to), `exp` = now + 3600, a random `jti`, an RSA key registered as
//! PEM. The `oauth2` crate has no client-assertion support of its own, so the assertion is built here with
//! Authlib's defaults and sent through the crate's requests.

use base64::Engine;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, IntrospectionUrl, TokenIntrospectionResponse, TokenResponse,
    TokenUrl,
};

use super::*;
use crate::common::client::oauth2_http;
use crate::common::idp::{World, world_with};
use crate::common::keys::{SigningKey, rand_hex};

/// The RSA key's public half as PEM (SubjectPublicKeyInfo), the form a Python client's key tooling writes.
fn public_pem(key: &SigningKey) -> String {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair;
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key.private_der).unwrap();
    let der = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// An assertion as Authlib's `PrivateKeyJWT` signs it by default: header `{alg: RS256, typ: JWT}` (no `kid`: a
/// PEM key has none), `iss` = `sub` = the client, `aud` = the URL given, `iat` = now, `exp` = now + 3600 and a
/// random 36-character `jti`.
fn authlib_assertion(key: &SigningKey, client: &str, aud: &str) -> String {
    let now = now();
    let claims = serde_json::json!({
        "iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 3600,
        "jti": rand_hex(18),
    });
    key.sign_raw(
        &serde_json::json!({"alg": "RS256", "typ": "JWT"}).to_string(),
        &claims.to_string(),
    )
}

/// The identity world with `issuer = "auto"` on a public listener asked for port 0, and `agent-pem`, whose one key
/// is the RSA key as PEM.
async fn auto_issuer_world() -> World {
    let pem = public_pem(&keys().rs256);
    world_with(
        "issuer = \"auto\"",
        &format!(
            "[listeners]\npublic = \"127.0.0.1:0\"\n\n\
             [[agents]]\nid = \"agent-pem\"\nauth = \"private_key_jwt\"\n\
             keys = [{{ id = \"rsa-pem\", pem = \"\"\"\n{pem}\"\"\" }}]\n\n\
             [[outbound]]\nagent = \"agent-pem\"\nnode = \"openai\"\nscopes = [\"llm.use\"]\n"
        ),
    )
    .await
}

#[tokio::test]
async fn a_standard_client_works_with_its_defaults_against_discovery() {
    let w = auto_issuer_world().await;
    // The issuer names the port the listener got, and so does everything discovery lists.
    let (_, _, body) = get(&w.h.url("/.well-known/oauth-authorization-server"), &[]).await;
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["issuer"], w.issuer());
    let url = |field: &str| meta[field].as_str().unwrap().to_owned();
    assert_eq!(url("token_endpoint"), w.token_url());
    let client = |id: &str| {
        BasicClient::new(ClientId::new(id.into()))
            .set_token_uri(TokenUrl::new(url("token_endpoint")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(url("introspection_endpoint")).unwrap())
    };
    let at_proxy = |t: String| {
        let url = w.h.url("/llm/openai/models");
        async move {
            get(&url, &[("authorization", &format!("Bearer {t}"))])
                .await
                .0
        }
    };

    // Client secrets: HTTP Basic (the crate's default), then in the body.
    let basic = client("agent-1").set_client_secret(ClientSecret::new(AGENT_SECRET.into()));
    let token = basic
        .exchange_client_credentials()
        .request_async(&oauth2_http)
        .await
        .unwrap();
    let at = token.access_token().clone();
    assert_eq!(claims_of(at.secret())["iss"], w.issuer());
    let post = basic.clone().set_auth_type(AuthType::RequestBody);
    post.exchange_client_credentials()
        .request_async(&oauth2_http)
        .await
        .unwrap();
    let seen = basic
        .introspect(&at)
        .request_async(&oauth2_http)
        .await
        .unwrap();
    assert!(seen.active());
    assert_eq!(seen.client_id().unwrap().as_str(), "agent-1");
    // The crate refuses a revocation URL that is not https (RFC 7009 §2.1); over this test's plain HTTP the
    // revocation is posted as the crate would post it: the token, with the client's Basic credentials.
    let revoke = |auth: Vec<(&'static str, String)>, body: String| {
        let url = url("revocation_endpoint");
        async move {
            let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, body) = form(&url, &headers, &body).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    revoke(
        vec![(
            "authorization",
            crate::common::idp::basic("agent-1", AGENT_SECRET),
        )],
        format!("token={}&token_type_hint=access_token", at.secret()),
    )
    .await;
    let seen = basic
        .introspect(&at)
        .request_async(&oauth2_http)
        .await
        .unwrap();
    assert!(!seen.active());

    // private_key_jwt with Authlib's defaults: `aud` = the token endpoint URL and an hour's lifetime.
    let rsa = &keys().rs256;
    let jwt = client("agent-pem");
    let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let token = jwt
        .exchange_client_credentials()
        .add_extra_param("client_assertion_type", assertion_type)
        .add_extra_param(
            "client_assertion",
            authlib_assertion(rsa, "agent-pem", &w.token_url()),
        )
        .request_async(&oauth2_http)
        .await
        .unwrap();
    let at = token.access_token().clone();
    assert_eq!(claims_of(at.secret())["idg_cred"], "key:rsa-pem");
    assert_eq!(at_proxy(at.secret().clone()).await, 200);
    // Introspection and revocation: Authlib signs for the token endpoint when given it, and otherwise for the
    // URL it posts to; both are accepted.
    for aud in [w.token_url(), url("introspection_endpoint")] {
        let seen = jwt
            .introspect(&at)
            .add_extra_param("client_assertion_type", assertion_type)
            .add_extra_param(
                "client_assertion",
                authlib_assertion(rsa, "agent-pem", &aud),
            )
            .request_async(&oauth2_http)
            .await
            .unwrap();
        assert!(seen.active(), "aud {aud}");
    }
    revoke(
        vec![],
        jwt_form(
            &format!("token={}&client_id=agent-pem", at.secret()),
            &authlib_assertion(rsa, "agent-pem", &url("revocation_endpoint")),
        ),
    )
    .await;
    assert_eq!(at_proxy(at.secret().clone()).await, 401);
}

/// Sends `assertion` to the token endpoint; the status and `error_description`.
async fn explain(w: &World, body: &str) -> (u16, String) {
    let (status, _, body) = w.token(&[], body).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "invalid_client", "{body}");
    (status, v["error_description"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn each_client_authentication_failure_says_what_to_fix_but_not_who_exists() {
    let w = world_with("max_assertion_lifetime_seconds = 600", "").await;
    let es = &keys().es256;
    let send = |a: String| jwt_form("grant_type=client_credentials", &a);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "audience",
            assertion(es, "agent-k", "https://other-as.example", |_| {}),
            "aud must be the issuer or the token endpoint URL",
        ),
        (
            "lifetime over the configured bound",
            assertion(es, "agent-k", &w.issuer(), |c| {
                c["exp"] = (now() + 3600).into()
            }),
            "more than 600 seconds ahead",
        ),
        (
            "expired",
            assertion(es, "agent-k", &w.issuer(), |c| {
                c["exp"] = (now() - 600).into()
            }),
            "has expired",
        ),
        (
            "no jti",
            assertion(es, "agent-k", &w.issuer(), |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "needs a jti",
        ),
        (
            "iss is not the client",
            assertion(es, "agent-k", &w.issuer(), |c| c["iss"] = "someone".into()),
            "iss and sub must both be the client id",
        ),
        ("not a JWT", "not.a.jwt".into(), "must be a signed JWT"),
    ];
    for (what, a, want) in cases {
        let (status, description) = explain(&w, &send(a)).await;
        assert_eq!(status, 401, "{what}");
        assert!(description.contains(want), "{what}: {description}");
    }
    // Within the bound it works, and the same assertion again is a replay.
    let a = assertion(es, "agent-k", &w.issuer(), |c| {
        c["exp"] = (now() + 500).into()
    });
    assert_eq!(w.token(&[], &send(a.clone())).await.0, 200);
    assert!(explain(&w, &send(a)).await.1.contains("used before"));

    // A signature no registered key verifies reads the same for a known client as for an unknown one.
    let rogue = &keys().rogue;
    let known = explain(&w, &send(assertion(rogue, "agent-k", &w.issuer(), |_| {}))).await;
    let unknown = explain(&w, &send(assertion(rogue, "ghost", &w.issuer(), |_| {}))).await;
    let secrets_only = explain(&w, &send(assertion(es, "agent-1", &w.issuer(), |_| {}))).await;
    assert_eq!(known, unknown);
    assert_eq!(known, secrets_only);
    assert!(known.1.contains("did not verify"), "{known:?}");
    // So does a wrong secret for a known client and any secret for an unknown one.
    let wrong = explain(
        &w,
        "grant_type=client_credentials&client_id=agent-1&client_secret=wrong",
    )
    .await;
    let ghost = explain(
        &w,
        "grant_type=client_credentials&client_id=ghost&client_secret=wrong",
    )
    .await;
    assert_eq!(wrong, ghost);
    assert_eq!(wrong.1, "Unknown client or wrong secret.");
    // No client authentication at all names the methods.
    let (_, none) = explain(&w, "grant_type=client_credentials").await;
    assert!(none.contains("client_secret_basic"), "{none}");
    // A disabled client is told so only once it proved its secret.
    w.edit(|t| {
        t.replacen(
            "[[agents]]\nid = \"agent-1\"\n",
            "[[agents]]\nid = \"agent-1\"\nenabled = false\n",
            1,
        )
    })
    .await;
    let (_, disabled) = explain(
        &w,
        &format!("grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"),
    )
    .await;
    assert_eq!(disabled, "This client is disabled.");
    let wrong_after = explain(
        &w,
        "grant_type=client_credentials&client_id=agent-1&client_secret=wrong",
    )
    .await;
    assert_eq!(wrong_after, ghost);
}

#[tokio::test]
async fn discovery_lists_assertion_algorithms_wherever_it_lists_private_key_jwt() {
    let w = world_with("", "").await;
    let (_, _, body) = get(&w.h.url("/.well-known/oauth-authorization-server"), &[]).await;
    let meta: Value = serde_json::from_str(&body).unwrap();
    // RFC 8414 §2: each `…_endpoint_auth_methods_supported` naming private_key_jwt needs its
    // `…_endpoint_auth_signing_alg_values_supported`, without "none".
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = &meta[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(
            methods.to_string().contains("private_key_jwt"),
            "{endpoint}"
        );
        let algs = &meta[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
        assert_eq!(
            algs,
            &serde_json::json!(["ES256", "RS256", "EdDSA"]),
            "{endpoint}"
        );
        assert!(
            meta[format!("{endpoint}_endpoint")].is_string(),
            "{endpoint}"
        );
    }
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
}

#[tokio::test]
async fn an_rsa_public_key_in_pem_registers_through_the_admin_api() {
    use crate::common::harness::admin;
    let w = world("").await;
    let (status, _, agent) = admin(
        &w.h,
        "POST",
        "/admin/v1/agents",
        Some(serde_json::json!({"name": "rsa pem agent", "auth": "private_key_jwt"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let (status, _, key) = admin(
        &w.h,
        "POST",
        &format!("/admin/v1/agents/{id}/keys"),
        Some(serde_json::json!({"id": "rsa-pem", "pem": public_pem(&keys().rs256)})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["alg"], "RS256", "{key}");
    // The key signs in with Authlib's defaults once the API's reload applied.
    crate::common::harness::within(
        std::time::Duration::from_secs(2),
        "the registered key applies",
        async || {
            let a = authlib_assertion(&keys().rs256, &id, &w.token_url());
            w.token(&[], &jwt_form("grant_type=client_credentials", &a))
                .await
                .0
                == 200
        },
    )
    .await;
}
