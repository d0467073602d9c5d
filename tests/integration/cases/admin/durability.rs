//! Writes that must not be lost or half-applied: the audit log first, kill -9, export, internal failures.

use super::*;

#[tokio::test]
async fn writes_are_audited_first_and_refused_when_the_audit_log_cannot_be_written() {
    // Corpus N02 for every credential: each writer's write is audited in its name before it is acknowledged; with
    // the audit sink down every writer's write is 503 and nothing is applied, a viewer's is still 403 (the role
    // check comes first), and the data plane keeps serving.
    let (_mock, h, api) = standard().await;
    let callers = roles::every_role(h.admin).await;
    let audit_path = h.setup.dir.path().join("data/audit.log");
    for (who, caller) in callers.iter().filter(|(w, _)| w.writes()) {
        let secret = canary("audited");
        let id = format!("c-aud-{}", who.actor());
        let (status, _, _) = caller
            .post(
                "/admin/v1/credentials",
                json!({"id": id, "kind": "llm", "value": secret, "hosts": ["api.example.com"]}),
            )
            .await;
        assert_eq!(status, 201, "{who:?}");
        let audit = std::fs::read_to_string(&audit_path).unwrap();
        let record: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
        assert_eq!(
            (
                record["action"].as_str(),
                record["kind"].as_str(),
                record["id"].as_str(),
                record["actor"].as_str()
            ),
            (
                Some("create"),
                Some("credential"),
                Some(id.as_str()),
                Some(who.actor())
            )
        );
        assert_eq!(record["after"]["sealed"], "[redacted]");
        assert!(
            !audit.contains(&secret) && !audit.contains("idg1."),
            "a credential value reached the audit log"
        );
    }
    let agents_before = api.get("/admin/v1/agents").await.2;
    // Break the audit sink: every write is refused and nothing changes.
    std::fs::remove_file(&audit_path).unwrap();
    std::fs::create_dir(&audit_path).unwrap();
    let generation = h.generation().await;
    for (who, caller) in &callers {
        let reply = caller
            .post("/admin/v1/agents", json!({"name": "unaudited"}))
            .await;
        if who.writes() {
            let (status, headers, body) = &reply;
            assert_eq!(
                (*status, body["error"]["code"].as_str()),
                (503, Some("audit_unavailable")),
                "{who:?}"
            );
            assert!(headers.get("retry-after").is_some());
        } else {
            roles::assert_refused_for_viewer(&reply, "with the audit sink down");
        }
    }
    assert_eq!(api.get("/admin/v1/agents").await.2, agents_before);
    assert_eq!(h.generation().await, generation, "nothing applied");
    // The data plane is unaffected.
    assert_eq!(file_agent_calls_openai(&h).await, 200);
}

#[tokio::test]
async fn every_acknowledged_write_survives_kill_9() {
    // Corpus N01: a stream of writes, SIGKILL in the middle, restart: every acknowledged write is there, at most
    // the one in flight is extra, and nothing is partial.
    use std::sync::{Arc, Mutex};

    use crate::common::process::Served;
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 100000\n");
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let mut served = Served::start(&s.config_path(), &env);
    // The writer is an editor, an operator with a token of its own (issue 11: N01 per role).
    let owner = AdminClient::new(served.admin, ADMIN_TOKEN);
    let editor = operators::operator(&owner, "eddie", "editor").await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (acked, api) = (acked.clone(), AdminClient::new(served.admin, &editor));
        tokio::spawn(async move {
            for i in 0..100_000 {
                let body = json!({"name": format!("bot-{i}")});
                let Some((201, _, v)) = api
                    .try_post("/admin/v1/agents", body, Duration::from_secs(2))
                    .await
                else {
                    return;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap().to_owned());
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    served.child.kill().unwrap(); // SIGKILL
    let _ = served.child.wait();
    let _ = writer.await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "only {} writes acknowledged before the kill",
        acked.len()
    );
    drop(served);

    let served = Served::start(&s.config_path(), &env);
    // Every page: more agents may have been acknowledged than one page holds.
    let list = AdminClient::new(served.admin, ADMIN_TOKEN)
        .list_all("/admin/v1/agents")
        .await;
    let stored: Vec<&str> = list
        .iter()
        .filter(|a| a["managed_by"] == "api")
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(
            stored.contains(&id.as_str()),
            "acknowledged {id} lost after kill -9"
        );
    }
    assert!(
        stored.len() <= acked.len() + 1,
        "{} stored, {} acknowledged",
        stored.len(),
        acked.len()
    );
    let audit = std::fs::read_to_string(s.dir.path().join("idguard-data/audit.log")).unwrap();
    let editors = audit
        .lines()
        .filter(|l| l.contains("\"actor\":\"eddie\""))
        .count();
    assert!(
        editors >= acked.len(),
        "every acknowledged write has its audit record, in the editor's name ({editors} of {})",
        acked.len()
    );
    drop(served);
}

#[tokio::test]
async fn export_writes_a_file_that_check_accepts_and_serve_reproduces() {
    use crate::common::process::{Served, run};
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let served = Served::start(&s.config_path(), &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let (status, _, agent) = api
        .post("/admin/v1/agents", json!({"name": "exported"}))
        .await;
    assert_eq!(status, 201);
    let id = agent["id"].as_str().unwrap().to_owned();
    let secret = canary("exported");
    assert_eq!(
        api.post(
            "/admin/v1/credentials",
            json!({"id": "c-exp", "kind": "llm", "value": secret, "hosts": ["127.0.0.1"]})
        )
        .await
        .0,
        201
    );
    let node = json!({"id": "exp", "upstream": format!("http://{}/e", mock.addr), "style": "azure", "credential": "c-exp"});
    assert_eq!(api.post("/admin/v1/llm", node).await.0, 201);
    assert_eq!(
        api.put(
            &format!("/admin/v1/agents/{id}/outbound/exp"),
            json!({"scopes": []})
        )
        .await
        .0,
        201
    );
    served.stop();

    let exported = s.dir.path().join("exported.toml");
    let config = s.config_path();
    let (code, _, err) = run(
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        !text.contains(&secret),
        "the export holds only the sealed value"
    );
    let (code, out, _) = run(
        &["check", "--config", exported.to_str().unwrap()],
        &[("IDGUARD_MASTER_KEY", &s.master)],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 agents, 2 nodes, 2 credentials, 2 outbound authorizations"),
        "{out}"
    );

    // Served from the export alone, with an empty store, the API-made agent still reaches its node.
    let empty = s.dir.path().join("empty-data");
    let served = Served::start(
        &exported,
        &[
            ("IDGUARD_MASTER_KEY", s.master.as_str()),
            ("IDGUARD_DATA_DIR", empty.to_str().unwrap()),
        ],
    );
    let token = keys().es256.token(&claims(&id, ""));
    let (status, _, _) = get(
        &format!("http://{}/llm/exp/v1/x", served.public),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mock.last().header("api-key"), Some(secret.as_str()));
    assert_eq!(mock.last().uri, "/e/v1/x");
}

#[tokio::test]
async fn an_unreadable_routing_file_is_a_retryable_503_logged_once_and_nothing_is_stored() {
    use crate::common::process::Served;
    let mock = Mock::start().await;
    let s = Setup::standard(&mock, &canary("file"));
    let config = s.config_path();
    std::fs::write(&config, s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let served = Served::start(&config, &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    // The file becomes a directory: reading it fails whoever runs the test (root reads a file of mode 000).
    let saved = config.with_extension("saved");
    std::fs::rename(&config, &saved).unwrap();
    std::fs::create_dir(&config).unwrap();
    for (method, body) in [("POST", Some(json!({"name": "unread"}))), ("GET", None)] {
        let (status, headers, body) = api.call(method, "/admin/v1/agents", body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("routing_file_unusable")),
            "{method}: {body}"
        );
        assert!(
            !error_message(&body).contains("directory"),
            "a generic body: {body}"
        );
        assert_eq!(headers.get("retry-after").unwrap(), "1");
    }
    std::fs::remove_dir(&config).unwrap();
    std::fs::rename(&saved, &config).unwrap();
    let (_, _, list) = api.get("/admin/v1/agents").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "unread"),
        "nothing was stored"
    );
    let audit = std::fs::read_to_string(s.dir.path().join("idguard-data/audit.log"));
    assert!(!audit.unwrap_or_default().contains("unread"));
    // One log line per failed request, with the cause and the request.
    let logs = served.stop();
    let lines = logged(&logs, "config_unreadable");
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(
        lines[0].contains("POST") && lines[1].contains("GET"),
        "{logs}"
    );
    assert!(
        lines.iter().all(|l| l.contains("/admin/v1/agents")),
        "{logs}"
    );
}

#[tokio::test]
async fn a_corrupt_stored_object_is_an_internal_error_and_its_content_is_never_logged() {
    use crate::common::keys::rand_hex;
    use crate::common::process::Served;
    let url = crate::common::harness::redis_url();
    let prefix = format!("idguard-test-{}", rand_hex(6));
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw(&format!(
        "[store]\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n"
    ));
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let env = [
        ("IDGUARD_MASTER_KEY", s.master.as_str()),
        ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    // This test's keys go even when an assertion fails.
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            crate::common::harness::redis_cleanup(&self.0, &self.1);
        }
    }
    let _cleanup = Cleanup(url.clone(), prefix.clone());
    let served = Served::start(&s.config_path(), &env);
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    // A stored agent whose body does not fit the agent type, with a value that must stay out of every log line;
    // then a record that is not a stored object at all.
    let secret = canary("corrupt");
    let body_corrupt = json!({"kind": "agent", "id": "bad", "version": 1, "created_at": 0, "updated_at": 0,
               "body": {"id": "bad", "enabled": secret}});
    let record_corrupt = json!({"kind": "agent", "id": "bad", "version": secret});
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for record in [body_corrupt, record_corrupt] {
        let _: () = redis::cmd("HSET")
            .arg(format!("{{{prefix}}}:objects"))
            .arg("agent/bad")
            .arg(record.to_string())
            .query(&mut conn)
            .unwrap();
        for (method, path, body) in [
            ("GET", "/admin/v1/agents", None),
            ("GET", "/admin/v1/agents/bad", None),
            ("POST", "/admin/v1/agents", Some(json!({"name": "beside"}))),
        ] {
            let (status, _, body) = api.call(method, path, body).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (500, Some("internal_error")),
                "{method} {path}: {body}"
            );
            assert!(!body.to_string().contains(&secret));
        }
    }
    let _: () = redis::cmd("HDEL")
        .arg(format!("{{{prefix}}}:objects"))
        .arg("agent/bad")
        .query(&mut conn)
        .unwrap();
    let (status, _, list) = api.get("/admin/v1/agents").await;
    assert_eq!(status, 200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "beside"),
        "nothing was stored"
    );
    let logs = served.stop();
    let lines = logged(&logs, "stored_object_corrupt");
    assert_eq!(lines.len(), 6, "one line per failed request: {logs}");
    assert!(lines.iter().all(|l| l.contains("agent/bad")), "{logs}");
    assert!(!logs.contains(&secret[secret.len() - 8..]), "{logs}");
}
