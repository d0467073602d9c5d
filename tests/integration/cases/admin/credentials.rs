//! Stored credentials, client secrets and public keys through the admin API: values never shown, fingerprints kept from sealing.

use super::*;

/// Reading a credential never opens its sealed value: the fingerprint shown is the one computed when the value
/// was sealed (the admin API stores it beside the sealed value); a file credential without one shows none.
#[tokio::test]
async fn reading_credentials_never_opens_them() {
    let mut s = Setup::new();
    let sealed = s.master_keys().seal("bare", b"CANARY-bare-value").unwrap();
    s.raw(&format!(
        "[[credentials]]\nid = \"bare\"\nkind = \"llm\"\nsealed = \"{sealed}\"\n"
    ));
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let (status, _, bare) = api.get("/admin/v1/credentials/bare").await;
    assert_eq!(status, 200);
    assert!(bare["fingerprint"].is_null(), "{bare}");
    let value = canary("api");
    let (status, _, created) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "c-y", "kind": "llm", "value": value, "hosts": ["api.example.com"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let expected =
        idguard_config::hashes::KeyedHasher::new(&crate::common::harness::FINGERPRINT_KEY)
            .fingerprint(value.as_bytes());
    assert_eq!(created["fingerprint"], expected.as_str());
    let (_, _, read) = api.get("/admin/v1/credentials/c-y").await;
    assert_eq!(read["fingerprint"], expected.as_str());
}

#[tokio::test]
async fn credential_values_are_never_returned() {
    // Corpus K02: metadata and a keyed fingerprint only; no plaintext, no ciphertext.
    let mock = Mock::start().await;
    let file_secret = canary("file");
    let h = Setup::standard(&mock, &file_secret).start().await;
    let api = AdminClient::of(&h);
    let secret = canary("api");
    let (_, _, created) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": "c-x", "kind": "llm", "value": secret, "hosts": ["api.example.com"]}),
        )
        .await;
    let (_, _, listed) = api.get("/admin/v1/credentials").await;
    let (_, _, one) = api.get("/admin/v1/credentials/c-x").await;
    let (_, _, file_one) = api.get("/admin/v1/credentials/cred-openai").await;
    for body in [&created, &listed, &one, &file_one] {
        let text = body.to_string();
        for leak in [
            secret.as_str(),
            &secret[secret.len() - 8..],
            file_secret.as_str(),
            &file_secret[file_secret.len() - 8..],
            "idg1.",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
    assert_eq!(created["fingerprint"], one["fingerprint"]);
    assert_eq!(file_one["managed_by"], "file");
    assert!(file_one["fingerprint"].as_str().is_some());
    let m = h.metrics().await;
    assert!(!m.contains(&secret[secret.len() - 8..]));
    // The write is live once the reload it triggered has been applied (asynchronously, within milliseconds).
    crate::common::harness::within(
        Duration::from_secs(2),
        "the credential write is applied",
        async || metric_value(&h.metrics().await, "idguard_config_generation") >= 2.0,
    )
    .await;
}

#[tokio::test]
async fn client_secrets_are_shown_once_and_kept_only_as_keyed_hashes() {
    let (_mock, h, api) = standard().await;
    let (_, _, agent) = api.post("/admin/v1/agents", json!({"name": "bot"})).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/agents/{id}/secrets");
    let (status, _, first) = api.post_empty(&path).await;
    assert_eq!(status, 201, "{first}");
    let secret = first["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("idgsec_") && secret.len() >= 7 + 43,
        "256 bits: {secret}"
    );
    let (_, _, second) = api.post_empty(&path).await;
    assert_ne!(second["secret"], first["secret"]);
    // Listed by id only, several at once (rotation), and revocable one by one.
    let list = api.get(&path).await.2;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret[8..]));
    let one = api.get(&format!("/admin/v1/agents/{id}")).await.2;
    assert!(!one.to_string().contains(&secret[8..]));
    let sid = first["id"].as_str().unwrap();
    assert_eq!(api.delete(&format!("{path}/{sid}")).await.0, 204);
    assert_eq!(api.delete(&format!("{path}/{sid}")).await.0, 404);
    assert_eq!(api.get(&path).await.2["items"].as_array().unwrap().len(), 1);
    // The value is nowhere at rest: not in the database file, not in the audit log.
    for file in ["data/topology.redb", "data/audit.log"] {
        let bytes = std::fs::read(h.setup.dir.path().join(file)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret[8..]), "the secret is in {file}");
    }
    // A replayable answer would have to store the secret, so Idempotency-Key is refused here.
    assert_eq!(api.idempotency_key("k").post_empty(&path).await.0, 400);
    assert_eq!(
        api.post_empty("/admin/v1/agents/agent-1/secrets").await.0,
        409
    );
}

#[tokio::test]
async fn public_keys_register_as_jwk_or_pem_and_fix_their_algorithm() {
    use base64::Engine;
    let (_mock, _h, api) = standard().await;
    let (_, _, agent) = api
        .post(
            "/admin/v1/agents",
            json!({"name": "bot", "auth": "private_key_jwt"}),
        )
        .await;
    assert_eq!(agent["auth"], "private_key_jwt");
    let path = format!("/admin/v1/agents/{}/keys", agent["id"].as_str().unwrap());
    for (key, alg) in [
        (&keys().es256, "ES256"),
        (&keys().rs256, "RS256"),
        (&keys().eddsa, "EdDSA"),
    ] {
        let body = json!({"id": format!("k-{alg}"), "jwk": key.jwk});
        let (status, _, resp) = api.post(&path, body).await;
        assert_eq!((status, resp["alg"].as_str()), (201, Some(alg)), "{resp}");
    }
    // The same EC key as a PEM (SubjectPublicKeyInfo).
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let mut der = hex_to_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.push(0x04);
    der.extend(b64(keys().es256.jwk["x"].as_str().unwrap()));
    der.extend(b64(keys().es256.jwk["y"].as_str().unwrap()));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let (status, _, resp) = api.post(&path, json!({"id": "pem", "pem": pem})).await;
    assert_eq!(
        (status, resp["alg"].as_str()),
        (201, Some("ES256")),
        "{resp}"
    );
    // Refused: symmetric keys, private keys, and both forms at once.
    for bad in [
        json!({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        json!({"jwk": {"kty": "EC", "crv": "P-256", "x": keys().es256.jwk["x"], "y": keys().es256.jwk["y"], "d": "AAAA"}}),
        json!({"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}),
        json!({"jwk": keys().es256.jwk, "pem": pem}),
    ] {
        let (status, _, resp) = api.post(&path, bad).await;
        assert_eq!(status, 422, "{resp}");
    }
    assert_eq!(api.get(&path).await.2["items"].as_array().unwrap().len(), 4);
    assert_eq!(api.delete(&format!("{path}/pem")).await.0, 204);
    assert_eq!(api.get(&path).await.2["items"].as_array().unwrap().len(), 3);
}
