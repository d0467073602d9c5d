//! Managed Redis (issue "Replicas you can trust", item 5): `rediss://` with the configured CA and a client
//! certificate, an ACL user (the `default` user disabled) with exactly the permissions docs/configuration.md lists,
//! the password from the environment or a file. A wrong password or an untrusted server certificate leaves the
//! replica not ready with writes refused (503), and the password never reaches a log line.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{ADMIN_TOKEN, Harness, Setup, canary, keys, within};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;
use crate::common::process::Served;
use crate::common::redis_server::RedisServer;
use crate::common::tls::TestCa;

const USER: &str = "idguard-app";

/// The ACL rules docs/configuration.md ("Managed Redis") gives idguard's user, for `prefix`.
fn acl_rules(prefix: &str) -> Vec<String> {
    [
        "on",
        &format!("~{{{prefix}}}:*"),
        &format!("&{{{prefix}}}:*"),
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
        "+@transaction",
        "+@pubsub",
        "+@connection",
        "-@dangerous",
        "+cluster|slots",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A TLS-only Redis whose certificate `ca` signed, requiring client certificates, with the `default` user
/// disabled and `USER` (password `password`) allowed what idguard needs under `prefix`.
struct ManagedRedis {
    server: RedisServer,
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl ManagedRedis {
    fn start(prefix: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_file = ca.write_ca(dir.path());
        let (cert, key) = ca.server(&["127.0.0.1"]).write(dir.path(), "redis");
        let mut user = vec![USER.to_owned()];
        user.extend(acl_rules(prefix));
        user.push(format!(">{password}"));
        let mut args: Vec<String> = vec![
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-ca-cert-file".into(),
            ca_file.display().to_string(),
            "--tls-auth-clients".into(),
            "yes".into(),
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
        ];
        args.extend(user);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self {
            server: RedisServer::start_tls(&args),
            dir,
            ca,
        }
    }

    /// `[store]` lines: the CA and a client certificate the same CA signed.
    fn store_lines(&self, with_ca: bool) -> String {
        let (cert, key) = self
            .ca
            .server(&["idguard"])
            .write(self.dir.path(), "client");
        let ca = self.dir.path().join("ca.pem");
        let mut lines =
            format!("redis_client_cert_file = {cert:?}\nredis_client_key_file = {key:?}\n");
        if with_ca {
            lines.push_str(&format!("redis_ca_file = {ca:?}\n"));
        }
        lines
    }
}

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

#[tokio::test]
async fn rediss_with_the_ca_a_client_certificate_and_an_acl_user_works_end_to_end() {
    let prefix = format!("idguard-tls-{}", rand_hex(4));
    let password = canary("redis-password");
    let redis = ManagedRedis::start(&prefix, &password);
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("tls"));
    a.redis = Some((redis.server.url(), prefix.clone()));
    a.redis_username = Some(USER.into());
    a.redis_password = Some(password.clone());
    a.store_extra = redis.store_lines(true);
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

    let (status, agent) = admin(&a, "POST", "/admin/v1/agents", Some(json!({"name": "t"}))).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/agents/{id}/outbound/openai");
    assert_eq!(admin(&a, "PUT", &path, Some(json!({}))).await.0, 201);
    // Enforced by the other replica, which learns of it over the same TLS + ACL connection.
    let token = keys().es256.token(&claims(&id, ""));
    let url_b = b.url("/llm/openai/x");
    within(
        Duration::from_secs(2),
        "replica B applying the grant",
        async || get(&url_b, &[("authorization", &bearer(&token))]).await.0 == 200,
    )
    .await;
    let readyz = format!("http://{}/readyz", b.admin);
    assert_eq!(get(&readyz, &[]).await.0, 200);
    // Revocation's pipeline and the identity state go through the same user: a write through B works too.
    let (status, _) = admin(
        &b,
        "PATCH",
        &format!("/admin/v1/agents/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    let url_a = a.url("/llm/openai/x");
    within(
        Duration::from_secs(2),
        "replica A applying the disable",
        async || get(&url_a, &[("authorization", &bearer(&token))]).await.0 == 401,
    )
    .await;
}

/// Starts the real binary against `redis` with `[store]` `lines` and `env`; checks that it is not ready with
/// `store_unreachable`, that admin writes answer 503 `store_unavailable`, that the log says `why`, and that
/// `password` is in no log line.
async fn refused(
    redis: &ManagedRedis,
    prefix: &str,
    lines: &str,
    env: &[(&str, &str)],
    password: &str,
    why: &str,
) {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("refused"));
    s.redis = Some((redis.server.url(), prefix.to_owned()));
    s.redis_staleness = Duration::from_millis(300);
    s.store_extra = lines.to_owned();
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let mut all_env = vec![
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("IDGUARD_REDIS_USERNAME", USER),
        ("IDGUARD_LOG", "debug"),
    ];
    all_env.extend_from_slice(env);
    let served = Served::start(&s.config_path(), &all_env);
    let readyz = format!("http://{}/readyz", served.admin);
    let mut last = String::new();
    for _ in 0..300 {
        let (status, _, body) = get(&readyz, &[]).await;
        if status == 503 && body.contains("store_unreachable") {
            break;
        }
        last = format!("{status} {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _, body) = get(&readyz, &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: store_unreachable\n"),
        "readiness never reported the store (last: {last})"
    );
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let (status, _, body) = api
        .call("POST", "/admin/v1/agents", Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(!body.to_string().contains(password), "{body}");
    let output = served.stop();
    assert!(
        output.contains(why),
        "the log does not say {why:?}:\n{output}"
    );
    assert!(
        !output.contains(password),
        "the Redis password reached a log line:\n{output}"
    );
}

#[tokio::test]
async fn a_wrong_password_leaves_the_replica_not_ready_and_never_reaches_a_log() {
    let prefix = format!("idguard-tls-{}", rand_hex(4));
    let redis = ManagedRedis::start(&prefix, &canary("right-password"));
    // The password comes from a file (one trailing newline, as editors write it).
    let wrong = canary("wrong-password");
    let file = redis.dir.path().join("redis.password");
    std::fs::write(&file, format!("{wrong}\n")).unwrap();
    let file = file.display().to_string();
    let lines = redis.store_lines(true);
    refused(
        &redis,
        &prefix,
        &lines,
        &[("IDGUARD_REDIS_PASSWORD_FILE", &file)],
        &wrong,
        "AuthenticationFailed",
    )
    .await;
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_refused() {
    let prefix = format!("idguard-tls-{}", rand_hex(4));
    let password = canary("right-password");
    let redis = ManagedRedis::start(&prefix, &password);
    // No redis_ca_file: the platform's roots do not know the test CA.
    let lines = redis.store_lines(false);
    refused(
        &redis,
        &prefix,
        &lines,
        &[("IDGUARD_REDIS_PASSWORD", &password)],
        &password,
        "UnknownIssuer",
    )
    .await;
}

#[tokio::test]
async fn a_password_in_the_routing_file_is_refused_naming_the_field() {
    use crate::common::process::run;
    let dir = tempfile::tempdir().unwrap();
    let secret = canary("file-password");
    for (store, field) in [
        (
            format!("redis_url = \"redis://127.0.0.1:6379\"\nredis_password = \"{secret}\"\n"),
            "store.redis_password",
        ),
        (
            format!("redis_url = \"redis://app:{secret}@127.0.0.1:6379\"\n"),
            "store.redis_url",
        ),
    ] {
        let config = dir.path().join("idguard.toml");
        std::fs::write(&config, format!("[store]\n{store}")).unwrap();
        let (code, stdout, stderr) = run(
            &["check", "--config", &config.display().to_string()],
            &[],
            "",
        );
        let all = format!("{stdout}{stderr}");
        assert_ne!(code, 0, "{all}");
        assert!(all.contains(field), "{field} not named:\n{all}");
        assert!(all.contains("IDGUARD_REDIS_PASSWORD"), "{all}");
        assert!(!all.contains(&secret), "the password was echoed:\n{all}");
    }
}

#[tokio::test]
async fn the_platform_roots_are_trusted_without_a_redis_ca_file() {
    // The platform's roots are what rustls-native-certs finds; SSL_CERT_FILE makes the test CA one of them for
    // this process only. No redis_ca_file: the connection must still verify (and did not when only the bundled
    // web PKI roots were used).
    let prefix = format!("idguard-tls-{}", rand_hex(4));
    let password = canary("redis-password");
    let redis = ManagedRedis::start(&prefix, &password);
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("platform"));
    s.redis = Some((redis.server.url(), prefix.clone()));
    s.store_extra = redis.store_lines(false);
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let ca = redis.dir.path().join("ca.pem").display().to_string();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY", s.master.as_str()),
            ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("IDGUARD_REDIS_USERNAME", USER),
            ("IDGUARD_REDIS_PASSWORD", &password),
            ("SSL_CERT_FILE", &ca),
        ],
    );
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let mut last = String::new();
    for _ in 0..300 {
        let (status, _, body) = api
            .call("POST", "/admin/v1/agents", Some(json!({"name": "p"})))
            .await;
        if status == 201 {
            let output = served.stop();
            assert!(!output.contains(&password), "{output}");
            return;
        }
        last = format!("{status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no write through a Redis the platform's roots trust (last: {last})");
}
