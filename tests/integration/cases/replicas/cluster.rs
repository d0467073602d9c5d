//! Redis Cluster (issue "Replicas you can trust", item 6): three masters and three replicas on loopback ports, two
//! idguard replicas with `redis_cluster = true`. A write through one is enforced by the other (the version poll
//! carries change notification on a Cluster); the master owning the deployment's hash slot is killed while
//! proxied requests keep flowing — none gets a wrong answer — and writes work again once its replica is promoted.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::client::{bearer, get};
use crate::common::harness::{Harness, Setup, canary, keys, within};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

/// Six cluster-enabled `redis-server`s joined by `redis-cli --cluster create` (one replica per master).
fn start_cluster() -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..6)
        .map(|_| {
            RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("redis-cli is installed");
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in &nodes {
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut node.conn())
                .unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    nodes
}

/// The index of the master serving `key`'s slot: the one node that answers it rather than redirecting.
fn owner(nodes: &[RedisServer], key: &str) -> usize {
    nodes
        .iter()
        .position(|n| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<i64>(&mut n.conn())
                .is_ok()
        })
        .expect("some node serves the slot")
}

/// Whether `node` is a replica of the master on `master_port` that has caught up with it (so a failover loses
/// nothing).
fn synced_replica(node: &RedisServer, master_port: u16) -> bool {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut node.conn())
        .unwrap_or_default();
    info.contains("role:slave")
        && info.contains(&format!("master_port:{master_port}\r\n"))
        && info.contains("master_link_status:up")
}

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

/// Creates an agent with the `openai` grant through `h`; `None` while the store refuses writes.
async fn granted_agent(h: &Harness) -> Option<String> {
    let (status, agent) = admin(h, "POST", "/admin/v1/agents", Some(json!({}))).await;
    if status != 201 {
        return None;
    }
    let id = agent["id"].as_str()?.to_owned();
    let path = format!("/admin/v1/agents/{id}/outbound/openai");
    let (status, _) = admin(h, "PUT", &path, Some(json!({}))).await;
    (status == 201).then_some(id)
}

#[tokio::test]
async fn a_cluster_keeps_replicas_in_step_through_a_master_failover() {
    let mut nodes = start_cluster();
    let prefix = format!("idguard-cluster-{}", rand_hex(4));
    // Every node is a seed: a replica (re)connecting while one of them is down still finds the cluster.
    let seeds: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("cluster"));
    a.redis = Some((seeds.join(","), prefix.clone()));
    a.store_extra = "redis_cluster = true\n".into();
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

    // A write through A is enforced by B.
    let id = granted_agent(&a).await.expect("the cluster takes writes");
    let token = keys().es256.token(&claims(&id, ""));
    let (url_a, url_b) = (a.url("/llm/openai/x"), b.url("/llm/openai/x"));
    within(
        Duration::from_secs(2),
        "replica B applying the grant",
        async || get(&url_b, &[("authorization", &bearer(&token))]).await.0 == 200,
    )
    .await;

    // Every key of the deployment lives in one slot; find its master, and wait until its replica is in sync.
    let master = owner(&nodes, &format!("{{{prefix}}}:version"));
    let slot_keys: Vec<i64> = [
        format!("{{{prefix}}}:objects"),
        format!("{{{prefix}}}:idem:x"),
    ]
    .iter()
    .map(|k| {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query(&mut nodes[0].conn())
            .unwrap()
    })
    .collect();
    let version_slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("{{{prefix}}}:version"))
        .query(&mut nodes[0].conn())
        .unwrap();
    assert!(
        slot_keys.iter().all(|s| *s == version_slot),
        "{slot_keys:?} vs {version_slot}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !nodes
        .iter()
        .enumerate()
        .any(|(i, n)| i != master && synced_replica(n, nodes[master].port()))
    {
        assert!(Instant::now() < deadline, "no replica in sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Proxied requests keep flowing through both replicas while the master dies.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (stop, sent, token) = (stop.clone(), sent.clone(), token.clone());
        let urls = [url_a.clone(), url_b.clone()];
        tokio::spawn(async move {
            let mut wrong = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for url in &urls {
                    let (status, _, body) = get(url, &[("authorization", &bearer(&token))]).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        wrong.push(format!("{url}: {status} {body}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            wrong
        })
    };
    nodes[master].kill();
    let killed = Instant::now();

    // Writes work again once the replica is promoted (node timeout 1 s), through either idguard replica.
    let mut written = None;
    while written.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "writes did not come back after the failover"
        );
        written = granted_agent(&b).await;
        if written.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "writes came back {:?} after the master died",
        killed.elapsed()
    );
    let id2 = written.unwrap_or_default();
    let token2 = keys().es256.token(&claims(&id2, ""));
    within(
        Duration::from_secs(2),
        "replica A applying the post-failover grant",
        async || get(&url_a, &[("authorization", &bearer(&token2))]).await.0 == 200,
    )
    .await;
    assert!(
        granted_agent(&a).await.is_some(),
        "a write through A after the failover"
    );
    stop.store(true, Ordering::Relaxed);
    let wrong = traffic.await.unwrap();
    assert!(sent.load(Ordering::Relaxed) > 10);
    assert!(
        wrong.is_empty(),
        "requests answered wrongly during the failover: {wrong:?}"
    );
    let readyz = format!("http://{}/readyz", a.admin);
    assert_eq!(get(&readyz, &[]).await.0, 200);
}
