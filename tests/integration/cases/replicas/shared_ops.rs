//! Shared operational state (issue "Replicas you can trust", item 7): the audit log is readable from any replica
//! (the Redis stream `<p>:audit`, appended in the commit itself), and failed-authentication limits hold across
//! replicas (shared per-minute counters).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::common::harness::{Harness, Setup, canary, redis_cleanup as cleanup};
use crate::common::idp::{AGENT_SECRET, basic, fleet_secret_hash};
use crate::common::keys::rand_hex;
use crate::common::mock::Mock;
use crate::common::redis_server::RedisServer;

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, value) = crate::common::harness::admin(h, method, path, body, &[]).await;
    (status, value)
}

fn shared_redis() -> (String, String) {
    let url = crate::common::harness::redis_url();
    (url, format!("idguard-test-{}", rand_hex(6)))
}

/// Every entry of the stream `<prefix>:audit`, oldest first, as raw text.
fn stream(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(format!("{{{prefix}}}:audit"))
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    entries.into_iter().map(|(_, f)| f.join(" ")).collect()
}

fn ids(page: &Value) -> Vec<(String, String, String)> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_write_through_one_replica_is_in_the_audit_log_of_the_other() {
    let (url, prefix) = shared_redis();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("shared"));
    a.redis = Some((url.clone(), prefix.clone()));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

    let value = canary("audit-stream");
    let (status, body) = admin(
        &a,
        "POST",
        "/admin/v1/credentials",
        Some(json!({"id": "c-aud", "kind": "llm", "value": value, "hosts": ["api.example.com"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut agents = Vec::new();
    for name in ["one", "two", "three"] {
        let (status, body) =
            admin(&a, "POST", "/admin/v1/agents", Some(json!({"name": name}))).await;
        assert_eq!(status, 201, "{body}");
        agents.push(body["id"].as_str().unwrap().to_owned());
    }

    // Read through B, two at a time, newest first, following the cursor to the end.
    let mut seen = Vec::new();
    let mut path = "/admin/v1/audit?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = admin(&b, "GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["records"].as_array().unwrap().len() <= 2);
        let text = page.to_string();
        assert!(
            !text.contains(&value) && !text.contains("idg1."),
            "a credential value reached the audit answer"
        );
        seen.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/v1/audit?limit=2&cursor={c}"),
            None => break,
        }
        assert!(pages < 10, "the cursor never ends");
    }
    let want: Vec<(String, String, String)> = [
        ("agent", agents[2].as_str()),
        ("agent", agents[1].as_str()),
        ("agent", agents[0].as_str()),
        ("credential", "c-aud"),
    ]
    .iter()
    .map(|(k, i)| ("create".to_owned(), (*k).to_owned(), (*i).to_owned()))
    .collect();
    assert_eq!(seen, want);

    // Filters.
    let (_, page) = admin(&b, "GET", "/admin/v1/audit?kind=credential", None).await;
    assert_eq!(ids(&page), want[3..].to_vec());
    assert_eq!(page["records"][0]["after"]["sealed"], "[redacted]");
    let (_, page) = admin(
        &b,
        "GET",
        &format!("/admin/v1/audit?id={}&action=create", agents[1]),
        None,
    )
    .await;
    assert_eq!(ids(&page), want[1..2].to_vec());
    let (_, page) = admin(&b, "GET", "/admin/v1/audit?until=1", None).await;
    assert_eq!(ids(&page), Vec::new());
    let (status, body) = admin(&b, "GET", "/admin/v1/audit?limit=0", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("limit")
    );

    // The stream itself never held the value either.
    let entries = stream(&url, &prefix);
    assert_eq!(entries.len(), 4);
    assert!(
        entries
            .iter()
            .all(|e| !e.contains(&value) && !e.contains("idg1."))
    );
    cleanup(&url, &prefix);
}

#[tokio::test]
async fn a_write_whose_commit_fails_leaves_no_stream_entry() {
    let (url, prefix) = shared_redis();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("shared"));
    a.redis = Some((url.clone(), prefix.clone()));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);

    let (status, agent) = admin(
        &a,
        "POST",
        "/admin/v1/agents",
        Some(json!({"name": "first"})),
    )
    .await;
    assert_eq!(status, 201);
    let ag = agent["id"].as_str().unwrap().to_owned();
    let (status, _) = admin(
        &a,
        "PATCH",
        &format!("/admin/v1/agents/{ag}"),
        Some(json!({"name": "second"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stream(&url, &prefix).len(), 2);

    // A stale If-Match through B: refused, and nothing in the stream.
    let (status, _, body) = crate::common::harness::admin(
        &b,
        "PATCH",
        &format!("/admin/v1/agents/{ag}"),
        Some(json!({"name": "stale"})),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(status, 412, "{body}");
    // A's audit sink broken: the write is refused before Redis sees it, and nothing is in the stream.
    let audit_path = a.setup.dir.path().join("data/audit.log");
    std::fs::remove_file(&audit_path).unwrap();
    std::fs::create_dir(&audit_path).unwrap();
    let (status, body) = admin(
        &a,
        "POST",
        "/admin/v1/agents",
        Some(json!({"name": "unaudited"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("audit_unavailable"))
    );
    let entries = stream(&url, &prefix);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| !e.contains("stale") && !e.contains("unaudited"))
    );
    let (_, page) = admin(&b, "GET", "/admin/v1/audit", None).await;
    assert_eq!(
        ids(&page),
        vec![
            ("update".into(), "agent".into(), ag.clone()),
            ("create".into(), "agent".into(), ag.clone())
        ]
    );
    cleanup(&url, &prefix);
}

/// POSTs a token request from `source` (any 127.0.0.0/8 address: Linux routes them all to loopback).
async fn post_from(source: IpAddr, to: SocketAddr, authorization: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{to}/oauth2/token"))
        .header("host", to.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", authorization)
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Waits until at least `needed` seconds remain in the current minute, so a test's failures land in one window.
async fn room_in_the_minute(needed: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if 60 - now % 60 < needed {
        tokio::time::sleep(std::time::Duration::from_secs(60 - now % 60)).await;
    }
}

#[tokio::test]
async fn failed_authentications_spread_over_two_replicas_meet_one_limit() {
    let (url, prefix) = shared_redis();
    let mock = Mock::start().await;
    let mut a = Setup::standard(&mock, &canary("shared"));
    a.redis = Some((url.clone(), prefix.clone()));
    a.identity =
        Some("issuer = \"https://idguard.lb.test\"\nmax_failed_auth_per_minute = 3\n".into());
    let hash = fleet_secret_hash(&a, AGENT_SECRET);
    a.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{hash}\" }}]\n"
    ));
    let b = Setup::replica_of(&a);
    let (a, b) = (a.start().await, b.start().await);
    room_in_the_minute(40).await;
    let wrong = basic("agent-s", "not-the-secret");
    let right = basic("agent-s", AGENT_SECRET);

    // Per address: two failures at A, one at B: the third is still answered (the limit is 3, as on one
    // replica), the fourth is refused at both — although neither replica saw three alone.
    assert_eq!(post_from(ip(2), a.addr, &wrong).await, 401);
    assert_eq!(post_from(ip(2), b.addr, &wrong).await, 401);
    assert_eq!(post_from(ip(2), a.addr, &wrong).await, 401);
    assert_eq!(post_from(ip(2), a.addr, &right).await, 429, "locked at A");
    assert_eq!(post_from(ip(2), b.addr, &right).await, 429, "locked at B");
    // The client's own address is not locked out.
    assert_eq!(post_from(ip(1), a.addr, &right).await, 200);
    assert_eq!(post_from(ip(1), b.addr, &right).await, 200);

    // The ceiling over every address (10 × 3 = 30 a minute), reached with failures split between replicas:
    // 3 so far, 27 more from nine other addresses, alternating replicas, so each replica sees about half.
    for last in 3..12 {
        for i in 0..3 {
            let to = if (usize::from(last) + i) % 2 == 0 {
                a.addr
            } else {
                b.addr
            };
            assert_eq!(post_from(ip(last), to, &wrong).await, 401);
        }
    }
    assert_eq!(post_from(ip(1), a.addr, &right).await, 429, "ceiling at A");
    assert_eq!(post_from(ip(1), b.addr, &right).await, 429, "ceiling at B");

    // No raw client id or secret in a Redis key.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}}}:fail:*"))
        .query(&mut conn)
        .unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains("agent-s")
        && !k.contains("not-the-secret")
        && !k.contains("127.0.0")));
    cleanup(&url, &prefix);
}

#[tokio::test]
async fn with_redis_down_the_local_limiter_still_limits_and_nobody_is_locked_out() {
    let mut redis = RedisServer::start();
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("shared"));
    s.redis = Some((redis.url(), "idguard-fail".into()));
    s.identity =
        Some("issuer = \"https://idguard.lb.test\"\nmax_failed_auth_per_minute = 3\n".into());
    let hash = fleet_secret_hash(&s, AGENT_SECRET);
    s.raw(&format!(
        "[[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{hash}\" }}]\n"
    ));
    let h = s.start().await;
    room_in_the_minute(20).await;
    let wrong = basic("agent-s", "not-the-secret");
    let right = basic("agent-s", AGENT_SECRET);
    assert_eq!(post_from(ip(2), h.addr, &wrong).await, 401);
    redis.kill();
    // The store's outage neither locks the client out nor counts against it.
    assert_eq!(post_from(ip(1), h.addr, &right).await, 200);
    assert_eq!(post_from(ip(1), h.addr, &right).await, 200);
    // The local limiter goes on counting: the failure before the outage and two during it reach the limit.
    assert_eq!(post_from(ip(2), h.addr, &wrong).await, 401);
    assert_eq!(post_from(ip(2), h.addr, &wrong).await, 401);
    assert_eq!(post_from(ip(2), h.addr, &right).await, 429);
    assert_eq!(post_from(ip(1), h.addr, &right).await, 200);
}

#[test]
fn the_audit_stream_keeps_about_its_configured_length() {
    use idguard_config::store::{AuditQuery, AuditRecord, Expect, Kind, Store, Write};
    let (url, prefix) = shared_redis();
    let dir = tempfile::tempdir().unwrap();
    let store = idguard_admin::redis_store::RedisStore::open(
        &idguard_admin::redis_store::RedisOptions::new(url.as_str()),
        &prefix,
        dir.path(),
    )
    .unwrap()
    .with_audit_stream_max_len(10);
    // A first load gives the new store its identity, as a replica's first start does.
    store.load().unwrap();
    for i in 0..300 {
        let id = format!("a{i}");
        let write = Write {
            kind: Kind::Agent,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(json!({"id": id})),
        };
        let record = AuditRecord {
            at: 0,
            actor: "admin".into(),
            auth: None,
            request_id: None,
            action: "create".into(),
            kind: Kind::Agent,
            id,
            before: None,
            after: None,
        };
        store.commit(&[write], &[record], None).unwrap();
    }
    // `MAXLEN ~` trims whole stream nodes (100 entries by default): about the bound, never the whole history.
    let kept = stream(&url, &prefix).len();
    assert!((10..=110).contains(&kept), "{kept} entries kept");
    // The local write-ahead copy keeps everything.
    let local = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert_eq!(local.lines().count(), 300);
    let newest = store
        .audit(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(newest.records[0].record.id, "a299");
    cleanup(&url, &prefix);
}
