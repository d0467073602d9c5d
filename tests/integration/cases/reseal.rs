//! Master-key rotation without a restart (corpus L03): a term added to the key file is in force after a reload,
//! `idguard reseal` moves every stored credential to it (idempotently, audited, through the store's versioned
//! commit), and the proxy keeps injecting every credential throughout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use idguard_admin::redis_store::RedisStore;
use idguard_admin::store::EmbeddedStore;
use idguard_config::MasterKeys;
use idguard_config::seal::inspect;
use idguard_config::store::{Kind, Store};
use serde_json::json;

use crate::common::admin_client::AdminClient;
use crate::common::client::{bearer, get};
use crate::common::harness::{Setup, canary, keys, metric_value, redis_cleanup, within};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;
use crate::common::process::{Served, run};

const ADMIN_TOKEN: &str = "reseal-admin-token-0123456789";

/// A server on `s`'s routing file with its master keys in `key_file`.
fn serve(s: &Setup, key_file: &Path) -> Served {
    Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap()),
            ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
}

/// A key for term 2 in the key-file form.
fn term_2() -> String {
    let fresh = MasterKeys::generate_encoded();
    format!("2:{}", fresh.strip_prefix("1:").unwrap())
}

/// Through the admin API: credential `cred-{name}` holding `secret`, node `/llm/node-{name}` using it, and
/// `agent-1` allowed to it; then waits until the proxy injects it.
async fn add_route(served: &Served, mock: &Mock, name: &str, secret: &str) {
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let (status, _, body) = api
        .post(
            "/admin/v1/credentials",
            json!({"id": format!("cred-{name}"), "kind": "llm", "value": secret, "hosts": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let node = json!({"id": format!("node-{name}"), "upstream": format!("http://{}/{name}", mock.addr), "style": "bearer", "credential": format!("cred-{name}")});
    let (status, _, body) = api.post("/admin/v1/llm", node).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = api
        .put(
            &format!("/admin/v1/agents/agent-1/outbound/node-{name}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    injects(served, mock, &format!("node-{name}"), secret).await;
}

/// Waits until a request through `node` reaches the mock carrying `secret`.
async fn injects(served: &Served, mock: &Mock, node: &str, secret: &str) {
    let url = format!("http://{}/llm/{node}/x", served.public);
    let auth = bearer(&keys().es256.token(&claims("agent-1", "")));
    within(
        Duration::from_secs(10),
        &format!("{node} injecting its credential"),
        async || get(&url, &[("authorization", &auth)]).await.0 == 200,
    )
    .await;
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
}

/// The master-key term each stored credential is sealed under, by id.
fn stored_terms(store: &dyn Store) -> Vec<(String, u32)> {
    let (_, objects) = store.load().unwrap();
    objects
        .iter()
        .filter(|o| o.kind == Kind::Credential)
        .map(|o| {
            let sealed = o.body["sealed"].as_str().unwrap();
            (o.id.clone(), inspect(sealed).unwrap())
        })
        .collect()
}

fn embedded_terms(data_dir: &Path) -> Vec<(String, u32)> {
    stored_terms(&EmbeddedStore::open(data_dir).unwrap())
}

fn reseal(s: &Setup, key_file: &Path, extra: &[(&str, &str)]) -> (i32, String, String) {
    let mut env = vec![("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap())];
    env.extend_from_slice(extra);
    run(
        &["reseal", "--config", s.config_path().to_str().unwrap()],
        &env,
        "",
    )
}

async fn generation(served: &Served) -> f64 {
    let metrics = get(&format!("http://{}/metrics", served.admin), &[])
        .await
        .2;
    metric_value(&metrics, "idguard_config_generation")
}

fn pair(id: &str, term: u32) -> (String, u32) {
    (id.to_owned(), term)
}

#[tokio::test]
async fn a_term_added_to_the_key_file_applies_on_sighup_and_reseal_moves_every_credential() {
    let mock = Mock::start().await;
    let (file_secret, a, b) = (canary("file"), canary("a"), canary("b"));
    let s = Setup::standard(&mock, &file_secret);
    let key_file = s.dir.path().join("master.keys");
    std::fs::write(&key_file, format!("# term 1\n{}\n", s.master)).unwrap();
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let data_dir: PathBuf = s.dir.path().join("idguard-data");
    let served = serve(&s, &key_file);
    add_route(&served, &mock, "a", &a).await;

    // Term 2 joins the key file; SIGHUP, and the next credential is sealed under it.
    std::fs::write(
        &key_file,
        format!("# term 1\n{}\n# term 2\n{}\n", s.master, term_2()),
    )
    .unwrap();
    served.signal("HUP");
    within(
        Duration::from_secs(10),
        "the key file read again",
        async || served.output().contains("master_keys_reloaded"),
    )
    .await;
    add_route(&served, &mock, "b", &b).await;
    // The credential sealed under term 1 still opens.
    injects(&served, &mock, "node-a", &a).await;
    let output = served.stop();
    assert_eq!(
        embedded_terms(&data_dir),
        [pair("cred-a", 1), pair("cred-b", 2)]
    );

    // Reseal: the stored credential on term 1 moves, the one on term 2 stays; the file's own is reported.
    let (code, out, err) = reseal(&s, &key_file, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "re-wrapped 1 stored credential(s) under master-key term 2; left 1 already on it"
        ),
        "{out}"
    );
    assert!(
        out.contains("credential \"cred-openai\" is sealed under an older term")
            && out.contains("idguard seal --id cred-openai"),
        "{out}"
    );
    assert_eq!(
        embedded_terms(&data_dir),
        [pair("cred-a", 2), pair("cred-b", 2)]
    );
    let audit = std::fs::read_to_string(data_dir.join("audit.log")).unwrap();
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"action\":\"reseal\""))
            .count(),
        1,
        "{audit}"
    );
    // Idempotent.
    let (code, again, _) = reseal(&s, &key_file, &[]);
    assert_eq!(code, 0);
    assert!(
        again.contains("re-wrapped 0 stored credential(s) under master-key term 2; left 2"),
        "{again}"
    );

    // Restarted, the proxy injects every credential, the re-wrapped one included.
    let served = serve(&s, &key_file);
    injects(&served, &mock, "node-a", &a).await;
    injects(&served, &mock, "node-b", &b).await;
    injects(&served, &mock, "openai", &file_secret).await;
    // The embedded store is the running server's: reseal refuses cleanly instead of waiting or racing it.
    let (code, _, err) = reseal(&s, &key_file, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a server using it?"), "{err}");
    let output = output + &served.stop();
    for secret in [&file_secret, &a, &b] {
        assert!(
            !output.contains(secret.as_str())
                && !out.contains(secret.as_str())
                && !audit.contains(secret.as_str())
        );
    }
}

#[tokio::test]
async fn a_bad_key_file_keeps_the_keys_in_use_and_the_watcher_picks_up_a_good_one() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.watch_ms = 100;
    let key_file = s.dir.path().join("master.keys");
    std::fs::write(&key_file, format!("{}\n", s.master)).unwrap();
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = serve(&s, &key_file);
    let (c, d) = (canary("c"), canary("d"));

    // A key file that no longer parses: the keys in use stay, the reload says why and shows nothing of the file,
    // and topology changes still apply (sealed under the term in use).
    // `*` is in no base64 alphabet: the refusal is always "not valid base64", whatever the random part.
    let material = format!("KEYMATERIAL*{}", rand_hex(8));
    std::fs::write(&key_file, format!("{}\n2:{material}\n", s.master)).unwrap();
    within(
        Duration::from_secs(10),
        "the bad key file refused",
        async || served.output().contains("master_keys_unreadable"),
    )
    .await;
    let metrics = get(&format!("http://{}/metrics", served.admin), &[])
        .await
        .2;
    assert_eq!(
        metric_value(&metrics, "idguard_config_last_reload_successful"),
        0.0
    );
    add_route(&served, &mock, "c", &c).await;

    // Fixed, with term 2: the watcher reads it without a signal.
    std::fs::write(&key_file, format!("{}\n{}\n", s.master, term_2())).unwrap();
    within(
        Duration::from_secs(10),
        "the key file read again",
        async || served.output().contains("master_keys_reloaded"),
    )
    .await;
    add_route(&served, &mock, "d", &d).await;
    injects(&served, &mock, "node-c", &c).await;
    let output = served.stop();
    assert!(
        output.contains(
            "the master-key file cannot be used (the master key is unusable: a master key is not valid \
             base64); the keys in use stay"
        ),
        "{output}"
    );
    assert!(!output.contains(&material), "key material in a log line");
    assert!(!output.contains(s.master.split(':').nth(1).unwrap()));
    assert_eq!(
        embedded_terms(&s.dir.path().join("idguard-data")),
        [pair("cred-c", 1), pair("cred-d", 2)]
    );
}

#[tokio::test]
async fn reseal_runs_against_a_live_redis_store_while_the_server_serves() {
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.redis = Some((url.clone(), prefix.clone()));
    let key_file = s.dir.path().join("master.keys");
    std::fs::write(&key_file, format!("{}\n", s.master)).unwrap();
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = serve(&s, &key_file);
    let a = canary("a");
    add_route(&served, &mock, "a", &a).await;
    std::fs::write(&key_file, format!("{}\n{}\n", s.master, term_2())).unwrap();
    served.signal("HUP");
    within(
        Duration::from_secs(10),
        "the key file read again",
        async || served.output().contains("master_keys_reloaded"),
    )
    .await;

    let store = RedisStore::open(
        &idguard_admin::redis_store::RedisOptions::new(url.as_str()),
        &prefix,
        &s.dir.path().join("test-data"),
    )
    .unwrap();
    assert_eq!(stored_terms(&store), [pair("cred-a", 1)]);
    let (version, before) = (store.version().unwrap(), generation(&served).await);
    let (code, out, err) = reseal(&s, &key_file, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("re-wrapped 1 stored credential(s)"), "{out}");
    assert_eq!(stored_terms(&store), [pair("cred-a", 2)]);
    assert_eq!(store.version().unwrap(), version + 1);
    // The server takes the re-wrapped credential from Redis and keeps injecting it.
    within(
        Duration::from_secs(10),
        "the server reloading from Redis",
        async || generation(&served).await > before,
    )
    .await;
    injects(&served, &mock, "node-a", &a).await;
    let (code, again, _) = reseal(&s, &key_file, &[]);
    assert_eq!(code, 0);
    assert!(
        again.contains("re-wrapped 0 stored credential(s)"),
        "{again}"
    );
    drop(served);
    redis_cleanup(&url, &prefix);
}
