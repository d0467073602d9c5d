//! Backup of a live fleet: `idguard export` reads the Redis store named by the routing file while two replicas keep
//! serving and writing, and its output is a routing file that `idguard check` accepts and that, served on an
//! empty store, reproduces the topology.

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, redis_cleanup as cleanup};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;
use crate::common::process::{Served, run};

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

#[tokio::test]
async fn export_reads_a_live_redis_fleet_and_its_output_reproduces_the_topology() {
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("file"));
    a.redis = Some((url.clone(), prefix.clone()));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

    // The topology is built through both replicas.
    let secret = canary("live");
    let (status, _) = admin(
        &a,
        "POST",
        "/admin/v1/credentials",
        Some(json!({"id": "c-live", "kind": "llm", "value": secret, "hosts": ["127.0.0.1"]})),
    )
    .await;
    assert_eq!(status, 201);
    let node = json!({"id": "live", "upstream": format!("http://{}/live", mock.addr), "style": "bearer", "credential": "c-live"});
    assert_eq!(admin(&b, "POST", "/admin/v1/llm", Some(node)).await.0, 201);
    let (status, agent) = admin(
        &a,
        "POST",
        "/admin/v1/agents",
        Some(json!({"name": "live"})),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_owned();
    let grant = format!("/admin/v1/agents/{id}/outbound/live");
    assert_eq!(admin(&b, "PUT", &grant, Some(json!({}))).await.0, 201);
    let token = keys().es256.token(&claims(&id, ""));
    let auth = bearer(&token);
    crate::common::harness::within(
        std::time::Duration::from_secs(1),
        "replica A applying the grant made through B",
        async || {
            get(&a.url("/llm/live/v1/x"), &[("authorization", &auth)])
                .await
                .0
                == 200
        },
    )
    .await;

    // Exported while both replicas run, from the store the routing file names (no data directory of theirs).
    let config = a.setup.config_path();
    let exported = a.setup.dir.path().join("exported.toml");
    let scratch = a.setup.dir.path().join("export-data");
    let (code, out, err) = run(
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            scratch.to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.starts_with("# Written by `idguard export`"), "{text}");
    assert!(
        !text.contains(&secret),
        "the export holds only the sealed value"
    );

    // The fleet never stopped: both replicas still serve, and still take writes.
    for h in [&a, &b] {
        assert_eq!(
            get(&h.url("/llm/live/v1/x"), &[("authorization", &auth)])
                .await
                .0,
            200
        );
    }
    assert_eq!(
        admin(
            &b,
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "after-export"}))
        )
        .await
        .0,
        201
    );

    let (code, out, _) = run(
        &["check", "--config", exported.to_str().unwrap()],
        &[("IDGUARD_MASTER_KEY", &a.setup.master)],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 agents, 2 nodes, 2 credentials, 2 outbound authorizations"),
        "{out}"
    );
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("the Redis store under prefix"),
        "the header names the store it read"
    );

    // Restored into an empty store (a fresh prefix), the API-made agent reaches its API-made node with the
    // API-stored credential, and the file's own edge still works.
    let restored_prefix = format!("idguard-test-{}", rand_hex(6));
    let restored = exported.with_file_name("restored.toml");
    std::fs::write(
        &restored,
        text.replace(&format!("{prefix:?}"), &format!("{restored_prefix:?}")),
    )
    .unwrap();
    let empty = a.setup.dir.path().join("restored-data");
    let served = Served::start(
        &restored,
        &[
            ("IDGUARD_MASTER_KEY", a.setup.master.as_str()),
            ("IDGUARD_DATA_DIR", empty.to_str().unwrap()),
        ],
    );
    let (status, _, _) = get(
        &format!("http://{}/llm/live/v1/x", served.public),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        mock.last().header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    assert_eq!(mock.last().uri, "/live/v1/x");
    let file_agent = keys().es256.token(&claims("agent-1", ""));
    let (status, _, _) = get(
        &format!("http://{}/llm/openai/v1/x", served.public),
        &[("authorization", &bearer(&file_agent))],
    )
    .await;
    assert_eq!(status, 200);
    served.stop();
    cleanup(&url, &prefix);
    cleanup(&url, &restored_prefix);
}
