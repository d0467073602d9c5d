//! A topology for identity-service tests: agents with a secret and with registered keys, an LLM node, an
//! enterprise service, a client application with users, and mocks for each upstream; plus the helpers to
//! build client assertions, form requests and decode tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::client::{Answer, form};
use super::harness::{FINGERPRINT_KEY, Harness, Setup, keys};
use super::keys::{SigningKey, now, rand_hex};
use super::mock::Mock;

pub const AGENT_SECRET: &str = "agent-1-secret-CANARY-3b9f0c2d7e6a4f18";
pub const CLIENT_SECRET: &str = "web-secret-CANARY-5d1e8a7c2b9f4e60";
pub const LLM_KEY: &str = "sk-llm-CANARY-9a8b7c6d5e4f3a2b";
pub const ALICE_PASSWORD: &str = "alice-correct-horse";
pub const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// The stored form of a client secret: HMAC-SHA256 under the fingerprint key, hex.
pub fn secret_hash(secret: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &FINGERPRINT_KEY);
    let tag = aws_lc_rs::hmac::sign(&key, format!("client-secret\n{secret}").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a client secret for replicas of the Redis store `setup` names: HMAC-SHA256 under the fleet
/// fingerprint key derived from its master key and prefix, hex.
pub fn fleet_secret_hash(setup: &Setup, secret: &str) -> String {
    let (_, prefix) = setup.redis.as_ref().expect("a Redis setup");
    idguard_config::hashes::fleet_client_secret_hex(&setup.master_keys(), prefix, secret).unwrap()
}

pub fn argon2id(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// A JSON object of strings as a TOML inline table.
fn inline(v: &Value) -> String {
    let fields: Vec<String> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {}", v))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

pub struct World {
    pub h: Harness,
    pub llm: Mock,
    pub crm: Mock,
    pub agent_ep: Mock,
    pub attacker: Mock,
}

impl World {
    pub fn issuer(&self) -> String {
        self.h.url("")
    }

    pub fn token_url(&self) -> String {
        self.h.url("/oauth2/token")
    }

    /// Rewrites the routing file with `edit` and reloads it.
    pub async fn edit(&self, edit: impl Fn(String) -> String) {
        let path = self.h.setup.config_path();
        let before = std::fs::read_to_string(&path).unwrap();
        let after = edit(before.clone());
        assert_ne!(before, after, "the edit changed nothing");
        self.h
            .reload_with(&after)
            .await
            .expect("the edited file is valid");
    }

    /// POSTs a form to the token endpoint.
    pub async fn token(&self, headers: &[(&str, &str)], body: &str) -> Answer {
        form(&self.token_url(), headers, body).await
    }

    /// A token for `agent-1` by `client_secret_post`.
    pub async fn agent1_token(&self) -> String {
        let (status, _, body) = self
            .token(
                &[],
                &format!(
                    "grant_type=client_credentials&client_id=agent-1&client_secret={AGENT_SECRET}"
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        access_token(&body)
    }

    /// A token for `agent-k` by `private_key_jwt` with its ES256 key.
    pub async fn agentk_token(&self) -> String {
        let a = assertion(&keys().es256, "agent-k", &self.issuer(), |_| {});
        let (status, _, body) = self
            .token(&[], &jwt_form("grant_type=client_credentials", &a))
            .await;
        assert_eq!(status, 200, "{body}");
        access_token(&body)
    }

    /// A token for the client application `web` (no user) by `client_secret_basic`.
    pub async fn web_token(&self) -> String {
        let (status, _, body) = self
            .token(
                &[("authorization", &basic("web", CLIENT_SECRET))],
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        access_token(&body)
    }
}

/// The usual identity topology, with `extra` TOML appended.
pub async fn world(extra: &str) -> World {
    world_with("", extra).await
}

/// [`world`] with one more sealed credential.
pub async fn world_with_credential(id: &str, kind: &str, secret: &str, extra: &str) -> World {
    build(&[(id, kind, secret)], "", extra).await
}

/// [`world`] with extra `[identity]` lines.
pub async fn world_with(identity: &str, extra: &str) -> World {
    build(&[], identity, extra).await
}

async fn build(credentials: &[(&str, &str, &str)], identity: &str, extra: &str) -> World {
    let (llm, crm, agent_ep, attacker) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let k = keys();
    let mut s = Setup::new();
    s.identity = Some(identity.to_owned());
    s.credential("cred-openai", "llm", LLM_KEY);
    for (id, kind, secret) in credentials {
        s.credential(id, kind, secret);
    }
    s.node(
        "llm",
        "openai",
        &format!("http://{}/v1", llm.addr),
        "style = \"bearer\"",
        "cred-openai",
    );
    s.raw(&format!(
        "[[agents]]\nid = \"agent-1\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n",
        secret_hash(AGENT_SECRET)
    ));
    s.raw(&format!(
        "[[agents]]\nid = \"agent-k\"\nauth = \"private_key_jwt\"\nendpoint = \"http://{}/agent\"\n\
         permission = {{ mode = \"manual\", users = [\"alice\"] }}\n\
         keys = [{{ id = \"es-1\", jwk = {} }}, {{ id = \"rs-1\", jwk = {} }}, {{ id = \"ed-1\", jwk = {} }}]\n",
        agent_ep.addr,
        inline(&k.es256.jwk),
        inline(&k.rs256.jwk),
        inline(&k.eddsa.jwk)
    ));
    s.edge("agent-1", "openai", &["llm.use"]);
    s.edge("agent-k", "openai", &[]);
    s.raw(&format!(
        "[[enterprise]]\nid = \"crm\"\naudience = \"urn:svc:crm\"\nupstream = \"http://{}/crm\"\n\
         permissions = [{{ scope = \"crm.read\" }}, {{ scope = \"crm.write\" }}]\n",
        crm.addr
    ));
    s.edge("agent-k", "crm", &["crm.read"]);
    s.edge("agent-1", "crm", &["crm.read", "crm.write"]);
    s.raw(&format!(
        "[[users]]\nid = \"alice\"\npassword_hash = \"{}\"\n\n[[users]]\nid = \"bob\"\npassword_hash = \"{}\"\n",
        argon2id(ALICE_PASSWORD),
        argon2id("bob-password-123")
    ));
    s.raw(&format!(
        "[[clients]]\nid = \"web\"\nredirect_uris = [\"{REDIRECT}\"]\nusers = [\"alice\", \"bob\"]\n\
         secrets = [{{ id = \"w1\", hash = \"{}\" }}]\n\n\
         [[inbound]]\nclient = \"web\"\nagent = \"agent-k\"\nscopes = [\"agent.access\"]\n",
        secret_hash(CLIENT_SECRET)
    ));
    s.raw(extra);
    let h = s.start().await;
    World {
        h,
        llm,
        crm,
        agent_ep,
        attacker,
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

pub fn jwt_form(prefix: &str, assertion: &str) -> String {
    format!(
        "{prefix}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    )
}

/// A client assertion signed by `key` for `client`, audience `aud`; `tweak` edits the claims.
pub fn assertion(
    key: &SigningKey,
    client: &str,
    aud: &str,
    tweak: impl FnOnce(&mut Value),
) -> String {
    let now = now();
    let mut claims = json!({
        "iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 120,
        "jti": format!("a-{}", rand_hex(8)),
    });
    tweak(&mut claims);
    let header = json!({"alg": key.alg_name(), "typ": "JWT", "kid": key.kid});
    key.sign_raw(&header.to_string(), &claims.to_string())
}

pub fn access_token(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

pub fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    v["error"].as_str().unwrap_or_default().to_owned()
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn enc(v: &str) -> String {
    form_urlencoded_encode(v)
}

fn form_urlencoded_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 8693 form for `subject` (and `actor`) at `audience`.
pub fn exchange_form(
    subject: &str,
    actor: Option<&str>,
    audience: Option<&str>,
    scope: Option<&str>,
) -> String {
    let mut f = format!(
        "grant_type={}&subject_token={subject}&subject_token_type={}",
        enc("urn:ietf:params:oauth:grant-type:token-exchange"),
        enc("urn:ietf:params:oauth:token-type:access_token")
    );
    if let Some(a) = actor {
        f.push_str(&format!(
            "&actor_token={a}&actor_token_type={}",
            enc("urn:ietf:params:oauth:token-type:access_token")
        ));
    }
    if let Some(aud) = audience {
        f.push_str(&format!("&audience={}", enc(aud)));
    }
    if let Some(s) = scope {
        f.push_str(&format!("&scope={}", enc(s)));
    }
    f
}

/// What a browser carries from the sign-in page to its form post: the page's `csrf` field and its cookie.
/// `page` is the `GET /oauth2/authorize` answer (headers and body).
pub fn sign_in_carry(headers: &hyper::HeaderMap, page: &str) -> (String, String) {
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let field = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (cookie, field)
}
