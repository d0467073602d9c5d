//! Lists that fit real directories: every collection pages by cursor, searches by id or name, and sorts by id, so a
//! walk through 5,000 users and 1,000 agents sees each exactly once — even while objects come and go.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::*;

/// Users and agents the routing file declares; ten more of each are made through the API.
const FILE_USERS: usize = 4990;
const FILE_AGENTS: usize = 990;
const API_MADE: usize = 10;

/// Walks `path` page by page (`limit` per page; `between` runs after the first page), counting each id seen.
async fn walk(
    api: &AdminClient,
    path: &str,
    limit: Option<usize>,
    mut between: impl AsyncFnMut(),
) -> (BTreeMap<String, usize>, Vec<String>, usize) {
    let mut seen = BTreeMap::new();
    let mut order = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![];
        if let Some(l) = limit {
            query.push(format!("limit={l}"));
        }
        if let Some(c) = &cursor {
            query.push(format!("cursor={c}"));
        }
        let (status, _, page) = api.get(&format!("{path}?{}", query.join("&"))).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit.unwrap_or(100));
        for item in items {
            let id = item["id"].as_str().unwrap().to_owned();
            *seen.entry(id.clone()).or_insert(0) += 1;
            order.push(id);
        }
        if pages == 1 {
            between().await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null());
                return (seen, order, pages);
            }
        }
    }
}

#[tokio::test]
async fn paging_through_5000_users_and_1000_agents_sees_each_exactly_once() {
    let mut s = Setup::new();
    s.raw("[store]\nm2m_licenses = 2000\n");
    for i in 0..FILE_USERS {
        s.raw(&format!(
            "[[users]]\nid = \"user-{i:05}\"\nname = \"Person {i:05}\"\n"
        ));
    }
    for i in 0..FILE_AGENTS {
        s.raw(&format!("[[agents]]\nid = \"agent-file-{i:04}\"\n"));
    }
    let h = s.start().await;
    let api = AdminClient::of(&h);
    // Ten users and ten agents through the API, in parallel: the lists merge the file and the store.
    let made = join_all((0..API_MADE).map(|i| {
        let api = api.clone();
        async move {
            let user = api
                .post("/admin/v1/users", json!({"id": format!("user-api-{i}")}))
                .await
                .0;
            let agent = api.post("/admin/v1/agents", json!({})).await;
            (
                user,
                agent.0,
                agent.2["id"].as_str().unwrap_or("").to_owned(),
            )
        }
    }))
    .await;
    let mut api_agents = vec![];
    for (user, agent, id) in made {
        assert_eq!((user, agent), (201, 201));
        api_agents.push(id);
    }

    // Users, 1,000 a page. After the first page one user is added before the cursor (not shown: already passed)
    // and one after it (shown on a later page); every user that existed throughout is seen exactly once.
    let (seen, order, pages) = walk(&api, "/admin/v1/users", Some(1000), async || {
        for id in ["aaa-early", "zzz-late"] {
            assert_eq!(api.post("/admin/v1/users", json!({"id": id})).await.0, 201);
        }
    })
    .await;
    assert_eq!(pages, 6);
    assert!(seen.values().all(|n| *n == 1), "a user was shown twice");
    assert_eq!(seen.len(), FILE_USERS + API_MADE + 1);
    assert!(seen.contains_key("zzz-late") && !seen.contains_key("aaa-early"));
    assert!(seen.contains_key("user-00000") && seen.contains_key("user-04989"));
    assert!((0..API_MADE).all(|i| seen.contains_key(&format!("user-api-{i}"))));
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "sorted by id");

    // Agents, the default 100 a page: 1,000 in 10 pages.
    let (seen, _, pages) = walk(&api, "/admin/v1/agents", None, async || {}).await;
    assert_eq!((seen.len(), pages), (FILE_AGENTS + API_MADE, 10));
    assert!(seen.values().all(|n| *n == 1), "an agent was shown twice");
    assert!(api_agents.iter().all(|id| seen.contains_key(id)));

    // Search by id or name, case-insensitively.
    let (_, _, found) = api.get("/admin/v1/users?q=USER-0123").await;
    let ids: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..10).map(|i| format!("user-0123{i}")).collect::<Vec<_>>()
    );
    assert!(found["next_cursor"].is_null());
    let (_, _, found) = api.get("/admin/v1/users?q=person%2004989").await;
    assert_eq!(found["items"][0]["id"], "user-04989");
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_list_parameters_are_refused_naming_the_parameter() {
    let (_mock, _h, api) = standard().await;
    let (_, _, first) = api.get("/admin/v1/agents?limit=1").await;
    let agents_cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (status, _, second) = api
        .get(&format!("/admin/v1/agents?limit=1&cursor={agents_cursor}"))
        .await;
    assert_eq!(
        (status, &second["items"][0]["id"]),
        (200, &json!("agent-2"))
    );
    // A cursor with the id changed but the tag kept: forged.
    let forged = format!(
        "YWdlbnQtMg{}",
        &agents_cursor[agents_cursor.find('.').unwrap()..]
    );
    for (path, field) in [
        ("/admin/v1/agents?limit=0", "limit"),
        ("/admin/v1/agents?limit=5000", "limit"),
        ("/admin/v1/users?limit=ten", "limit"),
        ("/admin/v1/agents?limit=1&limit=2", "limit"),
        ("/admin/v1/llm?q=a&q=b", "q"),
        ("/admin/v1/credentials?cursor=not-a-cursor", "cursor"),
        (&format!("/admin/v1/agents?cursor={forged}"), "cursor"),
        // A cursor is good for its own list only.
        (
            &format!("/admin/v1/clients?cursor={agents_cursor}"),
            "cursor",
        ),
        ("/admin/v1/agents/agent-1/secrets?sort=name", "sort"),
    ] {
        let (status, _, body) = api.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(error_message(&body).starts_with(field), "{path}: {body}");
    }
}
