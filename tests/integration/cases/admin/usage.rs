//! `GET /admin/v1/usage`, the quota gauges and warnings, the refusal message; `If-Match` as RFC 9110 allows it.

use super::*;
use crate::common::process::Served;

/// Every quota gauge line for `quota`: used, limit, and the two warning thresholds.
fn gauges(metrics: &str, quota: &str) -> [f64; 4] {
    [
        metric_value(metrics, &format!("idguard_quota_used{{quota=\"{quota}\"}}")),
        metric_value(
            metrics,
            &format!("idguard_quota_limit{{quota=\"{quota}\"}}"),
        ),
        metric_value(
            metrics,
            &format!("idguard_quota_warning{{quota=\"{quota}\",threshold=\"80\"}}"),
        ),
        metric_value(
            metrics,
            &format!("idguard_quota_warning{{quota=\"{quota}\",threshold=\"100\"}}"),
        ),
    ]
}

#[tokio::test]
async fn usage_counts_agents_clients_services_and_credentials_and_the_gauges_follow() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.raw("[store]\nm2m_licenses = 10\nmax_credentials = 4\n");
    let h = s.start().await;
    let api = AdminClient::of(&h);
    // Two file agents and one file credential.
    let (status, _, usage) = api.get("/admin/v1/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        usage,
        json!({
            "m2m_licenses": {"used": 2, "total": 10, "agents": 2, "clients": 0, "enterprise_services": 0, "level": "ok"},
            "credentials": {"used": 1, "total": 4, "level": "ok"},
        })
    );
    assert_eq!(
        gauges(&h.metrics().await, "m2m_licenses"),
        [2.0, 10.0, 0.0, 0.0]
    );
    assert_eq!(
        gauges(&h.metrics().await, "credentials"),
        [1.0, 4.0, 0.0, 0.0]
    );
    let (status, _, agent) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(
        api.post("/admin/v1/clients", json!({"id": "c1"})).await.0,
        201
    );
    let crm = json!({"id": "crm", "audience": "https://crm.internal", "permissions": [{"scope": "crm.read"}]});
    assert_eq!(api.post("/admin/v1/enterprise", crm).await.0, 201);
    for id in ["c2", "c3"] {
        let cred = json!({"id": id, "kind": "external", "value": canary("v"), "hosts": ["api.example.com"]});
        assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    }
    let usage = api.get("/admin/v1/usage").await.2;
    assert_eq!(
        usage["m2m_licenses"],
        json!({"used": 5, "total": 10, "agents": 3, "clients": 1, "enterprise_services": 1, "level": "ok"})
    );
    // 3 of 4 credentials is 75 %: below the warning.
    assert_eq!(
        usage["credentials"],
        json!({"used": 3, "total": 4, "level": "ok"})
    );
    let metrics = h.metrics().await;
    assert_eq!(gauges(&metrics, "m2m_licenses"), [5.0, 10.0, 0.0, 0.0]);
    assert_eq!(gauges(&metrics, "credentials"), [3.0, 4.0, 0.0, 0.0]);
    let cred =
        json!({"id": "c4", "kind": "external", "value": canary("v"), "hosts": ["api.example.com"]});
    assert_eq!(api.post("/admin/v1/credentials", cred).await.0, 201);
    let usage = api.get("/admin/v1/usage").await.2;
    assert_eq!(
        usage["credentials"],
        json!({"used": 4, "total": 4, "level": "full"})
    );
    assert_eq!(
        gauges(&h.metrics().await, "credentials"),
        [4.0, 4.0, 1.0, 1.0]
    );
    // Deletes count down, and the gauges follow.
    let agent = agent["id"].as_str().unwrap();
    assert_eq!(
        api.delete(&format!("/admin/v1/agents/{agent}")).await.0,
        204
    );
    assert_eq!(api.delete("/admin/v1/credentials/c4").await.0, 204);
    assert_eq!(api.delete("/admin/v1/credentials/c3").await.0, 204);
    let usage = api.get("/admin/v1/usage").await.2;
    assert_eq!(usage["m2m_licenses"]["used"], 4);
    assert_eq!(usage["m2m_licenses"]["agents"], 2);
    assert_eq!(usage["credentials"]["used"], 2);
    let metrics = h.metrics().await;
    assert_eq!(gauges(&metrics, "m2m_licenses"), [4.0, 10.0, 0.0, 0.0]);
    assert_eq!(gauges(&metrics, "credentials"), [2.0, 4.0, 0.0, 0.0]);
    // The token is required, as everywhere under /admin/v1.
    let anonymous = AdminClient::new(h.admin, "wrong");
    assert_eq!(anonymous.get("/admin/v1/usage").await.0, 401);
}

#[tokio::test]
async fn crossing_80_and_100_percent_is_warned_once_each() {
    // No file agents; 5 licenses: the 4th agent crosses 80 %, the 5th 100 %.
    let mut s = Setup::new();
    s.raw("[store]\nm2m_licenses = 5\n");
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY", &s.master),
            ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    let api = AdminClient::new(served.admin, ADMIN_TOKEN);
    let warned = |threshold: u32| {
        let needle = format!("quota m2m_licenses at {threshold} %");
        served
            .output()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, _, agent) = api.post("/admin/v1/agents", json!({})).await;
        assert_eq!(status, 201);
        ids.push(agent["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(warned(80), 0);
    let (_, _, agent) = api.post("/admin/v1/agents", json!({})).await;
    ids.push(agent["id"].as_str().unwrap().to_owned());
    within(Duration::from_secs(2), "the 80 % warning", async || {
        warned(80) == 1
    })
    .await;
    // Staying above 80 % (an update, a reload) warns no more.
    let first = &ids[0];
    let path = format!("/admin/v1/agents/{first}");
    assert_eq!(api.patch(&path, json!({"name": "renamed"})).await.0, 200);
    assert_eq!(api.post("/admin/v1/agents", json!({})).await.0, 201);
    within(Duration::from_secs(2), "the 100 % warning", async || {
        warned(100) == 1
    })
    .await;
    let metrics = get(&format!("http://{}/metrics", served.admin), &[])
        .await
        .2;
    assert_eq!(gauges(&metrics, "m2m_licenses"), [5.0, 5.0, 1.0, 1.0]);
    // The refusal states the real count in use.
    let (status, _, body) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("M2M application license quota exhausted: 5 of 5 in use"),
        "{body}"
    );
    served.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = served.stop();
    let count = |needle: &str| out.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("quota m2m_licenses at 80 %"), 1, "{out}");
    assert_eq!(count("quota m2m_licenses at 100 %"), 1, "{out}");
}

#[tokio::test]
async fn the_refusal_states_the_real_count_when_the_file_exceeds_the_quota() {
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    s.agent("agent-3").agent("agent-4");
    s.credential("cred-2", "external", &canary("file2"));
    s.raw("[store]\nm2m_licenses = 2\nmax_credentials = 1\n");
    let h = s.start().await;
    let api = AdminClient::of(&h);
    let (status, _, body) = api.post("/admin/v1/agents", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"]["message"],
        "M2M application license quota exhausted: 4 of 2 in use \
         (each agent, client application and enterprise service uses one)"
    );
    let cred =
        json!({"id": "c2", "kind": "external", "value": canary("v"), "hosts": ["api.example.com"]});
    let (status, _, body) = api.post("/admin/v1/credentials", cred).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (409, Some("stored credential limit reached: 2 of 1 stored"))
    );
    let usage = api.get("/admin/v1/usage").await.2;
    assert_eq!(usage["m2m_licenses"]["used"], 4);
    assert_eq!(usage["m2m_licenses"]["level"], "full");
    assert_eq!(usage["credentials"]["used"], 2);
}

#[test]
fn check_warns_when_the_file_alone_exceeds_a_quota() {
    let mut s = Setup::new();
    s.agent("a1").agent("a2").agent("a3");
    s.raw("[store]\nm2m_licenses = 2\n");
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let (code, out, _) = crate::common::process::run(
        &["check", "--config", s.config_path().to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: 3 agents, clients and enterprise services need 3 M2M application licenses, more than store.m2m_licenses = 2"),
        "{out}"
    );
}

#[tokio::test]
async fn if_match_takes_any_and_lists_of_versions() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    let (_, _, agent) = api.post("/admin/v1/agents", json!({})).await;
    let path = format!("/admin/v1/agents/{}", agent["id"].as_str().unwrap());
    let rename = |name: &str| json!({"name": name});
    // `*`: any existing version.
    let (status, headers, _) = api.header("if-match", "*").patch(&path, rename("a")).await;
    assert_eq!((status, &headers["etag"]), (200, &"\"2\"".parse().unwrap()));
    // A list holding the current version.
    let (status, headers, _) = api
        .header("if-match", "\"1\", W/\"2\", \"7\"")
        .patch(&path, rename("b"))
        .await;
    assert_eq!((status, &headers["etag"]), (200, &"\"3\"".parse().unwrap()));
    // A list without it: 412, nothing changed.
    let (status, _, _) = api
        .header("if-match", "\"1\", \"2\"")
        .patch(&path, rename("c"))
        .await;
    assert_eq!(status, 412);
    // Malformed: 400 naming the header, nothing changed.
    for bad in ["\"x\"", "\"3\", *", "\"3\",", ""] {
        let (status, _, body) = api.header("if-match", bad).patch(&path, rename("d")).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("If-Match"),
            "{body}"
        );
    }
    let (_, headers, now) = api.get(&path).await;
    assert_eq!(
        (&headers["etag"], &now["name"]),
        (&"\"3\"".parse().unwrap(), &json!("b"))
    );
    // `*` on an authorization that does not exist yet: nothing to match, 412, and nothing created.
    let edge = "/admin/v1/agents/agent-2/outbound/openai";
    let (status, _, _) = api.header("if-match", "*").put(edge, json!({})).await;
    assert_eq!(status, 412);
    let topo = api.get("/admin/v1/agents/agent-2/topology").await.2;
    assert_eq!(topo["edges"], json!([]), "{topo}");
    // `*` on a delete.
    assert_eq!(api.header("if-match", "*").delete(&path).await.0, 204);
    assert_eq!(api.header("if-match", "*").delete(&path).await.0, 404);
}

#[tokio::test]
async fn bodies_refuse_null_and_name_fields_not_types() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("file")).start().await;
    let api = AdminClient::of(&h);
    // `"id": null` is not a missing id: 400 naming `id`, nothing created.
    let (status, _, body) = api.post("/admin/v1/clients", json!({"id": null})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`id` must not be null"),
        "{body}"
    );
    let (status, _, body) = api
        .post(
            "/admin/v1/users",
            json!({"id": "u1", "groups": ["g", null]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`groups[1]` must not be null"),
        "{body}"
    );
    assert_eq!(api.get("/admin/v1/clients").await.2["items"], json!([]));
    // A nested object of the wrong shape: the message names the field and the JSON shape, not a Rust type.
    let node = json!({"id": "n", "upstream": "https://api.example.com", "style": "bearer",
                      "credential": "cred-openai", "oauth": "x"});
    let (status, _, body) = api.post("/admin/v1/external", node).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`oauth`") && message.contains("expected an object"),
        "{message}"
    );
    assert!(
        !message.contains("struct") && !message.contains("Raw"),
        "{message}"
    );
    let node = json!({"id": "n", "upstream": "https://api.example.com", "style": "bearer",
                      "credential": "cred-openai", "oauth": {"token_url": "https://api.example.com/t", "client_id": "c", "extra": 1}});
    let (status, _, body) = api.post("/admin/v1/external", node).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"),
        "{body}"
    );
}
