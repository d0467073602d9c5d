//! From nothing to an agent holding a token, with the real binary: `idguard init` writes a routing file and a
//! master key, `idguard secret new` gives the file-declared agent a client secret (its hash pasted into the file),
//! `idguard serve` runs the file as written, `idguard token` obtains a token (client secret or private_key_jwt),
//! and a call through the LLM node reaches a mock upstream with the sealed key injected. Also: per-agent token
//! lifetimes (file and admin API), and the example routing file copied elsewhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::common::client::{bearer, post};
use crate::common::harness::{canary, redis_cleanup};
use crate::common::keys::{SigningKey, rand_hex};
use crate::common::mock::Mock;
use crate::common::process::{Served, run};

/// `idguard init DIR` with `llm_key` on standard input and the LLM at `mock`; returns (config, key file).
fn init(dir: &Path, mock: &Mock, llm_key: &str) -> (PathBuf, PathBuf) {
    let upstream = format!("http://{}", mock.addr);
    let (code, out, err) = run(
        &["init", dir.to_str().unwrap(), "--upstream", &upstream],
        &[],
        llm_key,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(llm_key) && !err.contains(llm_key));
    (dir.join("idguard.toml"), dir.join("master.key"))
}

/// `idguard secret new --format json` for `agent`; returns (secret, the TOML to paste).
fn new_secret(config: &Path, agent: &str, env: &[(&str, &str)]) -> (String, String) {
    let (code, out, err) = run(
        &[
            "secret",
            "new",
            "--agent",
            agent,
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ],
        env,
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["secret"].as_str().unwrap().to_owned(),
        v["toml"].as_str().unwrap().to_owned(),
    )
}

/// Pastes `line` into the routing file right after `after` (a line of the agent's entry), as an operator would.
fn paste(config: &Path, after: &str, line: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(after), "{after:?} not in:\n{text}");
    std::fs::write(config, text.replacen(after, &format!("{after}\n{line}"), 1)).unwrap();
}

/// `idguard token --format json` for `agent` with `secret` on standard input.
fn token(served: &Served, agent: &str, secret: &str) -> (i32, Value, String) {
    let url = format!("http://{}", served.public);
    let (code, out, err) = run(
        &[
            "token",
            "--url",
            &url,
            "--client-id",
            agent,
            "--secret-stdin",
            "--format",
            "json",
        ],
        &[],
        secret,
    );
    (code, serde_json::from_str(&out).unwrap_or(Value::Null), err)
}

async fn chat(served: &Served, token: &str) -> (u16, String) {
    let answer = post(
        &format!("http://{}/llm/openai/v1/chat/completions", served.public),
        &[("authorization", &bearer(token))],
        r#"{"model":"m","messages":[]}"#,
    )
    .await;
    (answer.0, answer.2)
}

async fn reloaded(served: &Served, generation: f64) {
    let metrics = format!("http://{}/metrics", served.admin);
    for _ in 0..250 {
        let body = crate::common::client::get(&metrics, &[]).await.2;
        if crate::common::harness::metric_value(&body, "idguard_config_generation") >= generation {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no reload to generation {generation}:\n{}", served.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn init_secret_serve_token_and_a_call_through_the_llm_node() {
    let mock = Mock::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("first");
    let llm_key = canary("llm");
    let (config, key_file) = init(&dir, &mock, &llm_key);

    // The key file is the owner's alone; the routing file holds the key only sealed.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(&llm_key));
    assert!(text.contains("sealed = \"idg1."), "{text}");

    // check accepts it as written, opening the sealed key with the key file.
    let key_env = [("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap())];
    let (code, out, err) = run(
        &["check", "--config", config.to_str().unwrap()],
        &key_env,
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok ("), "{out}");

    // A second init never overwrites: the message names the file, and nothing changes.
    let before = (text.clone(), std::fs::read(&key_file).unwrap());
    let (code, out, err) = run(&["init", dir.to_str().unwrap()], &[], "another-key");
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("{} already exists", config.display())),
        "{out}{err}"
    );
    assert_eq!(
        before,
        (
            std::fs::read_to_string(&config).unwrap(),
            std::fs::read(&key_file).unwrap()
        )
    );

    // The file-declared agent gets a secret; its hash goes into the file.
    let (secret, line) = new_secret(&config, "my-agent", &[]);
    assert!(line.starts_with("secrets = [{ id = \"sec-"), "{line}");
    paste(&config, "name = \"My agent\"", &line);

    let served = Served::start(&config, &key_env);
    let (code, answer, err) = token(&served, "my-agent", &secret);
    assert_eq!(code, 0, "{err}\n{}", served.output());
    assert_eq!(answer["expires_in"], 900, "{answer}");
    assert!(answer["expires_at"].as_u64().unwrap() > 1_700_000_000);
    let agent_token = answer["access_token"].as_str().unwrap().to_owned();

    // The token works through the LLM node; the upstream got the sealed key, not the agent's token.
    let (status, body) = chat(&served, &agent_token).await;
    assert_eq!(status, 200, "{body}");
    let seen = mock.last();
    assert_eq!(
        seen.header_values("authorization"),
        vec![format!("Bearer {llm_key}").as_str()]
    );
    assert!(!seen.dump().contains(&agent_token));

    // A wrong secret is refused with the server's error, and a secret is never taken from the command line.
    let (code, _, err) = token(&served, "my-agent", "idgsec_wrong");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid_client"), "{err}");
    let (code, _, err) = run(
        &[
            "token",
            "--url",
            &format!("http://{}", served.public),
            "--client-id",
            "my-agent",
        ],
        &[],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("IDGUARD_CLIENT_SECRET"), "{err}");
    let (code, out, _) = run(
        &[
            "token",
            "--url",
            &format!("http://{}", served.public),
            "--client-id",
            "my-agent",
        ],
        &[("IDGUARD_CLIENT_SECRET", &secret)],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim().split('.').count(), 3, "{out}");

    // A per-agent lifetime in the file: validated with its field, then applied to new tokens.
    paste(&config, "name = \"My agent\"", "token_ttl_seconds = 30");
    let (code, out, _) = run(
        &["check", "--config", config.to_str().unwrap()],
        &key_env,
        "",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("agents[0].token_ttl_seconds: must be between 60 and 86400 seconds"),
        "{out}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("token_ttl_seconds = 30", "token_ttl_seconds = 120"),
    )
    .unwrap();
    served.signal("HUP");
    reloaded(&served, 2.0).await;
    let (code, answer, err) = token(&served, "my-agent", &secret);
    assert_eq!(code, 0, "{err}");
    assert_eq!(answer["expires_in"], 120, "{answer}");

    // The admin API: the same bounds, refused with the field before anything is stored.
    let admin_token = std::fs::read_to_string(dir.join("idguard-data/admin.token")).unwrap();
    let admin = format!("http://{}/admin/v1/agents", served.admin);
    let auth = bearer(admin_token.trim());
    let (status, _, body) = post(
        &admin,
        &[("authorization", &auth)],
        r#"{"name":"short","token_ttl_seconds":59}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("agents.token_ttl_seconds"), "{body}");
    assert!(body.contains("between 60 and 86400"), "{body}");
    let (status, _, body) = post(
        &admin,
        &[("authorization", &auth)],
        r#"{"name":"long","token_ttl_seconds":3600}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["token_ttl_seconds"], 3600, "{body}");

    let out = served.stop();
    for secret_value in [&secret, &llm_key, &agent_token] {
        assert!(!out.contains(secret_value.as_str()), "a secret in the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_with_private_key_jwt_from_a_key_file() {
    let mock = Mock::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let llm_key = canary("llm");
    let (config, key_file) = init(tmp.path(), &mock, &llm_key);
    let key = SigningKey::es256("k1");
    let jwk = &key.jwk;
    paste(
        &config,
        "name = \"My agent\"",
        &format!(
            "auth = \"private_key_jwt\"\nkeys = [{{ id = \"k1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]",
            jwk["x"], jwk["y"]
        ),
    );
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&key.private_der)
    );
    let pem_file = tmp.path().join("agent-key.pem");
    std::fs::write(&pem_file, pem).unwrap();

    // A client secret for a private_key_jwt agent is refused, naming why.
    let (code, _, err) = run(
        &[
            "secret",
            "new",
            "--agent",
            "my-agent",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("private_key_jwt"), "{err}");

    let served = Served::start(
        &config,
        &[("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap())],
    );
    let (code, out, err) = run(
        &[
            "token",
            "--url",
            &format!("http://{}", served.public),
            "--client-id",
            "my-agent",
            "--key-file",
            pem_file.to_str().unwrap(),
            "--key-id",
            "k1",
        ],
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}\n{}", served.output());
    let (status, body) = chat(&served, out.trim()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        mock.last().header_values("authorization"),
        vec![format!("Bearer {llm_key}").as_str()]
    );
}

#[test]
fn secret_new_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("idguard.toml");
    std::fs::write(
        &config,
        "[identity]\nissuer = \"http://127.0.0.1:8080\"\n\n[[agents]]\nid = \"a1\"\n",
    )
    .unwrap();
    let args = |agent: &str| {
        run(
            &[
                "secret",
                "new",
                "--agent",
                agent,
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
            "",
        )
    };
    let (code, _, err) = args("nobody");
    assert_ne!(code, 0);
    assert!(err.contains("agent \"nobody\" is not declared in"), "{err}");
    // The text form: the secret once, the line to paste with where, and which key it is keyed with.
    let (code, out, err) = args("a1");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("idgsec_"), "{out}");
    assert!(out.contains("(id = \"a1\", line 4)"), "{out}");
    assert!(out.contains("secrets = [{ id = \"sec-"), "{out}");
    assert!(
        out.contains(
            &tmp.path()
                .join("idguard-data/fingerprint.key")
                .display()
                .to_string()
        ),
        "{out}"
    );
}

/// With a Redis store and a master key, replicas derive the fingerprint key from the master key: the hash `secret
/// new` prints (without contacting Redis) is the one `serve` checks.
#[tokio::test(flavor = "multi_thread")]
async fn with_redis_the_hash_is_keyed_like_the_fleet() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("first-config-{}", rand_hex(6));
    let mock = Mock::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let llm_key = canary("llm");
    let (config, key_file) = init(tmp.path(), &mock, &llm_key);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[store]\nredis_url = {url:?}\nredis_prefix = {prefix:?}\n"),
    )
    .unwrap();
    let env = [("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap())];
    let (secret, line) = new_secret(&config, "my-agent", &env);
    paste(&config, "name = \"My agent\"", &line);
    // No data directory was needed: the key came from the master key.
    assert!(!tmp.path().join("idguard-data/fingerprint.key").exists());

    let served = Served::start(&config, &env);
    let (code, answer, err) = token(&served, "my-agent", &secret);
    redis_cleanup(&url, &prefix);
    assert_eq!(
        code,
        0,
        "{err}\n{}\n(is Redis running at {url}? `.ci/run` starts one)",
        served.output()
    );
    let (status, body) = chat(&served, answer["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    drop(served);
    redis_cleanup(&url, &prefix);
}

#[test]
fn the_example_routing_file_checks_anywhere_and_locates_values_it_cannot_open() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("idguard.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/idguard.example.toml"),
        &copy,
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", copy.to_str().unwrap()], &[], "");
    assert_eq!(code, 0, "{out}{err}");
    // Under another master key its sealed values do not open: each is reported on its line, with the remedy.
    let (_, key, _) = run(&["seal", "--new-key"], &[], "");
    let (code, out, _) = run(
        &["check", "--config", copy.to_str().unwrap()],
        &[("IDGUARD_MASTER_KEY", key.trim())],
        "",
    );
    assert_eq!(code, 1, "{out}");
    let text = std::fs::read_to_string(&copy).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let id_line = lines
        .iter()
        .position(|l| *l == "id = \"openai-prod\"")
        .unwrap();
    let sealed_line = id_line
        + lines[id_line..]
            .iter()
            .position(|l| l.starts_with("sealed = "))
            .unwrap()
        + 1;
    assert!(
        out.contains(&format!(
            "line {sealed_line}: credentials[id=openai-prod]: cannot be opened"
        )),
        "{out}"
    );
    assert!(out.contains("idguard seal --id openai-prod"), "{out}");

    // serve logs the same, with the line as a field of its own.
    let served = Served::start(&copy, &[("IDGUARD_MASTER_KEY", key.trim())]);
    let logged = served.output();
    let line = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["field"] == "credentials[id=openai-prod]")
        .unwrap_or_else(|| panic!("no log line for openai-prod:\n{logged}"));
    assert_eq!(line["reason"], "credential_unavailable", "{line}");
    assert_eq!(line["line"], sealed_line, "{line}");
}
