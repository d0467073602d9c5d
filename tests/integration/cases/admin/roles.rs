//! The corpus's admin cases (N01–N04) for every credential that calls the admin API (issue 11): the admin token,
//! and an owner, an editor and a viewer, each an operator whose token was issued through the API. The checks of
//! N01 and N02 that live beside this module (`admin.rs`, `durability.rs`) loop over [`every_role`]; the ones
//! here are those that only make sense per role: scoped idempotency keys, reloads and a drain under operator
//! traffic, and where an operator token is refused.
//!
//! What each role must see: an owner's or an editor's write behaves exactly as the admin token's, with its audit
//! records in the operator's name; a viewer's write is refused 403 before any work, whatever it carries (a
//! stale `If-Match`, an invalid body, an `Idempotency-Key` another caller used): nothing stored, nothing
//! remembered, nothing audited.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::*;
use crate::common::admin_client::Reply;
use crate::common::process::Served;

/// A credential the admin API is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum As {
    /// The break-glass admin token.
    Admin,
    /// An operator with the owner role.
    Owner,
    /// An operator with the editor role.
    Editor,
    /// An operator with the viewer role.
    Viewer,
}

impl As {
    /// Whether this credential may change the topology.
    pub(crate) fn writes(self) -> bool {
        self != As::Viewer
    }

    /// Its actor in audit records.
    pub(crate) fn actor(self) -> &'static str {
        match self {
            As::Admin => "admin",
            As::Owner => "olga",
            As::Editor => "eddie",
            As::Viewer => "vera",
        }
    }

    fn role(self) -> &'static str {
        match self {
            As::Admin | As::Owner => "owner",
            As::Editor => "editor",
            As::Viewer => "viewer",
        }
    }
}

/// A client of the admin API at `addr` for every credential: the admin token, then an owner, an editor and a
/// viewer, each created through the API (by the admin token) with a token of its own.
pub(crate) async fn every_role(addr: SocketAddr) -> Vec<(As, AdminClient)> {
    let admin = AdminClient::new(addr, ADMIN_TOKEN);
    let mut out = vec![(As::Admin, admin.clone())];
    for who in [As::Owner, As::Editor, As::Viewer] {
        let token = operators::operator(&admin, who.actor(), who.role()).await;
        out.push((who, AdminClient::new(addr, &token)));
    }
    out
}

/// What a viewer's write must answer, whatever it sent: 403 naming the editor role.
pub(crate) fn assert_refused_for_viewer(reply: &Reply, what: &str) {
    let (status, _, body) = reply;
    assert_eq!(
        (*status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{what}: {body}"
    );
    assert!(
        error_message(body).ends_with("requires the editor role"),
        "{what}: {body}"
    );
}

/// The audit records of `actor`, newest first, as the admin token reads them.
pub(crate) async fn audit_of(admin: &AdminClient, actor: &str) -> Vec<Value> {
    let (status, _, page) = admin
        .get(&format!("/admin/v1/audit?actor={actor}&limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["records"].as_array().unwrap().clone()
}

fn names(list: &[Value], name: &str) -> usize {
    list.iter().filter(|a| a["name"] == name).count()
}

#[tokio::test]
async fn n01_an_idempotency_key_is_one_effect_per_caller_and_nothing_for_a_viewer() {
    let (_mock, h, admin) = standard().await;
    let callers = every_role(h.admin).await;
    // Every caller sends the very same request under the very same key: the key is theirs, not the route's.
    let body = json!({"name": "keyed"});
    let mut created: Vec<String> = vec![];
    for (who, api) in &callers {
        let keyed = api.idempotency_key("shared-key-1");
        let first = keyed.post("/admin/v1/agents", body.clone()).await;
        let second = keyed.post("/admin/v1/agents", body.clone()).await;
        let other = keyed
            .post("/admin/v1/agents", json!({"name": "other"}))
            .await;
        if who.writes() {
            assert_eq!(first.0, 201, "{who:?}: {}", first.2);
            assert_eq!((first.0, &first.2), (second.0, &second.2), "{who:?}");
            let id = first.2["id"].as_str().unwrap().to_owned();
            assert!(
                !created.contains(&id),
                "{who:?} was given another caller's answer for the same key"
            );
            created.push(id.clone());
            assert_eq!(
                (other.0, other.2["error"]["code"].as_str()),
                (422, Some("idempotency_key_reused")),
                "{who:?}"
            );
            // One effect, audited once, in the caller's name.
            let records: Vec<Value> = audit_of(&admin, who.actor())
                .await
                .into_iter()
                .filter(|r| r["id"] == id.as_str())
                .collect();
            assert_eq!(records.len(), 1, "{who:?}: {records:?}");
        } else {
            // The role check comes first: no replay of a writer's answer, no 422 for the other body.
            for (reply, what) in [(&first, "first"), (&second, "again"), (&other, "other")] {
                assert_refused_for_viewer(reply, what);
            }
        }
        let list = admin.list_all("/admin/v1/agents").await;
        assert_eq!(
            names(&list, "keyed"),
            created.len(),
            "{who:?}: one effect each"
        );
        assert_eq!(names(&list, "other"), 0);
    }
    assert_eq!(created.len(), 3);
    assert_eq!(audit_of(&admin, "vera").await, Vec::<Value>::new());
    // Nothing was remembered for the viewer's key: promoted, the same operator's first use of it is a first use
    // (a stored refusal would replay, a stored request would make this other body a 422).
    assert_eq!(
        admin
            .patch("/admin/v1/operators/vera", json!({"role": "editor"}))
            .await
            .0,
        200
    );
    let vera = &callers[3].1;
    let (status, _, body) = vera
        .idempotency_key("shared-key-1")
        .post("/admin/v1/agents", json!({"name": "promoted"}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn n01_a_stale_if_match_is_412_for_a_writer_and_403_for_a_viewer() {
    let (_mock, h, admin) = standard().await;
    let callers = every_role(h.admin).await;
    let (status, _, agent) = admin.post("/admin/v1/agents", json!({"name": "v1"})).await;
    assert_eq!(status, 201);
    let path = format!("/admin/v1/agents/{}", agent["id"].as_str().unwrap());
    let mut version = 1;
    for (who, api) in &callers {
        let current = api
            .if_match(version)
            .patch(&path, json!({"name": format!("by {}", who.actor())}))
            .await;
        let stale = api
            .if_match(version - 1)
            .patch(&path, json!({"name": "stale"}))
            .await;
        if who.writes() {
            assert_eq!(current.0, 200, "{who:?}: {}", current.2);
            version += 1;
            assert_eq!(current.1["etag"], format!("\"{version}\"").as_str());
            assert_eq!(
                (stale.0, stale.2["error"]["code"].as_str()),
                (412, Some("precondition_failed")),
                "{who:?}"
            );
            let records = audit_of(&admin, who.actor()).await;
            assert_eq!(records[0]["action"], "update", "{who:?}");
            assert_eq!(records[0]["after"]["name"], format!("by {}", who.actor()));
        } else {
            assert_refused_for_viewer(&current, "a current If-Match");
            assert_refused_for_viewer(&stale, "a stale If-Match");
        }
        let (_, headers, now) = admin.get(&path).await;
        assert_eq!(
            headers["etag"],
            format!("\"{version}\"").as_str(),
            "{who:?}"
        );
        assert_ne!(now["name"], "stale");
    }
    assert_eq!(version, 4, "three writers, one update each");
}

#[tokio::test]
async fn n03_reloads_during_writes_of_every_role_lose_nothing() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 100000\n");
    let h = s.start().await;
    let admin = AdminClient::of(&h);
    let callers = every_role(h.admin).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = vec![];
    for (who, api) in callers {
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            // (acknowledged ids, answers that were not the expected success)
            let (mut acked, mut failed) = (vec![], vec![]);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                if who.writes() {
                    let name = format!("{}-{i}", who.actor());
                    let (status, _, body) =
                        api.post("/admin/v1/agents", json!({"name": name})).await;
                    match status {
                        201 => acked.push(body["id"].as_str().unwrap().to_owned()),
                        _ => failed.push((status, body)),
                    }
                } else {
                    let (status, _, body) = api.get("/admin/v1/agents").await;
                    if status != 200 {
                        failed.push((status, body));
                    }
                }
            }
            (who, acked, failed, i)
        }));
    }
    // Reloads of the routing file, an extra file-managed agent coming and going, while they write and poll. The
    // file is replaced by a rename: a write reads the file too, and one written in place can be read half-way.
    let base = h.setup.toml();
    let variant = format!("{base}\n[[agents]]\nid = \"agent-file-x\"\n");
    for i in 0..12 {
        let text = if i % 2 == 0 { &variant } else { &base };
        assert!(h.reload_renamed(text).await.is_ok(), "reload {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut results = vec![];
    for worker in workers {
        results.push(worker.await.unwrap());
    }
    let list = admin.list_all("/admin/v1/agents").await;
    for (who, acked, failed, requests) in results {
        assert!(failed.is_empty(), "{who:?}: {failed:?}");
        assert!(requests > 3, "{who:?} made only {requests} requests");
        let records = audit_of(&admin, who.actor()).await;
        for id in &acked {
            assert!(
                list.iter().any(|a| a["id"] == id.as_str()),
                "{who:?}: acknowledged {id} lost across reloads"
            );
            assert!(
                records.iter().any(|r| r["id"] == id.as_str()),
                "{who:?}: {id} not audited in its name"
            );
        }
        if who.writes() {
            assert!(!acked.is_empty(), "{who:?} wrote nothing");
        }
    }
}

#[tokio::test]
async fn n03_sigterm_drains_the_requests_of_every_role_and_keeps_every_acknowledged_write() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 100000\n");
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let served = Served::start(&s.config_path(), &env);
    let callers = every_role(served.admin).await;
    let acked = Arc::new(Mutex::new(Vec::<(As, String)>::new()));
    let mut workers = vec![];
    for (who, api) in callers {
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            // Until the listener is gone: every answer given is a full success, never a cut or a 5xx.
            let mut answers = vec![];
            for i in 0.. {
                let reply = if who.writes() {
                    let body = json!({"name": format!("{}-{i}", who.actor())});
                    api.try_call(
                        "POST",
                        "/admin/v1/agents",
                        Some(body),
                        Duration::from_secs(5),
                    )
                    .await
                } else {
                    api.try_call("GET", "/admin/v1/agents", None, Duration::from_secs(5))
                        .await
                };
                let Some((status, _, body)) = reply else {
                    return (who, answers);
                };
                if status == 201 {
                    acked
                        .lock()
                        .unwrap()
                        .push((who, body["id"].as_str().unwrap().to_owned()));
                }
                answers.push(status);
            }
            (who, answers)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let logs = served.stop();
    assert!(logs.contains("shutting down"), "{logs}");
    for worker in workers {
        let (who, answers) = worker.await.unwrap();
        let want = if who.writes() { 201 } else { 200 };
        assert!(!answers.is_empty(), "{who:?} was never answered");
        assert!(answers.iter().all(|s| *s == want), "{who:?}: {answers:?}");
    }
    // Restarted on the same data: every acknowledged write of every writer is there, in its author's name.
    let served = Served::start(&s.config_path(), &env);
    let admin = AdminClient::new(served.admin, ADMIN_TOKEN);
    let list = admin.list_all("/admin/v1/agents").await;
    let acked = acked.lock().unwrap().clone();
    for who in [As::Admin, As::Owner, As::Editor] {
        assert!(
            acked.iter().any(|(w, _)| *w == who),
            "{who:?} wrote nothing"
        );
    }
    for (who, id) in &acked {
        assert!(
            list.iter().any(|a| a["id"] == id.as_str()),
            "{who:?}: acknowledged {id} lost in the drain"
        );
    }
    let audit = std::fs::read_to_string(s.dir.path().join("idguard-data/audit.log")).unwrap();
    for (who, id) in &acked {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&format!("\"id\":\"{id}\""))
                    && l.contains(&format!("\"actor\":\"{}\"", who.actor()))),
            "{who:?}: {id} not audited in its name"
        );
    }
    drop(served);
}

#[tokio::test]
async fn n04_an_operator_token_is_refused_everywhere_but_the_admin_api() {
    let (mock, h, admin) = standard().await;
    let callers = every_role(h.admin).await;
    let agent_token = keys().es256.token(&claims("agent-1", ""));
    // The proxy's own agent still gets through: the refusals below are about the token, not the route.
    assert_eq!(file_agent_calls_openai(&h).await, 200);
    let upstream_calls = mock.count();
    for (who, api) in &callers {
        let token = api.token();
        assert_eq!(api.get("/admin/v1/agents").await.0, 200, "{who:?}");
        // No admin route on the data-plane listener, whoever asks.
        for path in ["/admin/v1/agents", "/admin/v1/operators", "/admin/v1/audit"] {
            let (status, _, _) = get(&h.url(path), &[("authorization", &bearer(token))]).await;
            assert_eq!(status, 404, "{who:?} {path} on the data plane");
        }
        // An admin credential is no agent token: the proxy refuses it and calls no upstream.
        let (status, _, body) = get(
            &h.url("/llm/openai/x"),
            &[("authorization", &bearer(token))],
        )
        .await;
        assert_eq!(status, 401, "{who:?} as an agent: {body}");
    }
    assert_eq!(
        mock.count(),
        upstream_calls,
        "no upstream saw an admin credential"
    );
    // An agent token is no operator token.
    let (status, headers, _) = AdminClient::new(h.admin, &agent_token)
        .get("/admin/v1/agents")
        .await;
    assert_eq!(status, 401);
    assert!(headers.get("www-authenticate").is_some());
    // Each operator's token, once expired or revoked, is refused like a wrong one.
    let mut expiring = vec![];
    for (who, api) in callers.iter().filter(|(w, _)| *w != As::Admin) {
        let id = who.actor();
        let (_, short) =
            operators::token(&admin, id, json!({"name": "short", "expires_in": 60})).await;
        let short = AdminClient::new(h.admin, &short);
        assert_eq!(short.get("/admin/v1/agents").await.0, 200, "{who:?}");
        expiring.push((*who, short));
        let (_, _, view) = admin.get(&format!("/admin/v1/operators/{id}")).await;
        let first = view["tokens"][0]["id"].as_str().unwrap().to_owned();
        let revoke = format!("/admin/v1/operators/{id}/tokens/{first}");
        assert_eq!(admin.delete(&revoke).await.0, 204, "{who:?}");
        let (status, _, body) = api.get("/admin/v1/agents").await;
        assert_eq!(status, 401, "{who:?} revoked: {body}");
        assert_eq!(api.post("/admin/v1/agents", json!({})).await.0, 401);
    }
    h.setup.clock.advance(Duration::from_secs(61));
    for (who, short) in &expiring {
        let (status, headers, _) = short.get("/admin/v1/agents").await;
        assert_eq!(status, 401, "{who:?} expired");
        assert!(headers.get("www-authenticate").is_some());
    }
    // The admin token is unaffected.
    assert_eq!(admin.get("/admin/v1/agents").await.0, 200);
}
