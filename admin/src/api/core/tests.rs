//! The shared decisions, without a socket: `If-Match` and the precondition it becomes, `Idempotency-Key` and
//! replays, immutable fields, and what the file and the store say about an id (file-managed, taken, absent),
//! including the cross-kind rules for nodes and client ids and the cascades of a delete.

use axum::http::{HeaderMap, HeaderValue};
use idguard_config::raw::RawConfig;
use idguard_config::store::{Expect, IdempotentAnswer, Kind, StoredObject};
use serde_json::json;

use super::*;
use crate::api::agents::Agents;
use crate::api::clients::Clients;
use crate::api::credentials::Credentials;
use crate::api::nodes::{External, Llm};
use crate::api::tests::stored_object as object;
use crate::api::write::Plan;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

/// The routing file of these tests: one agent, one LLM node, one client, one credential, one edge.
fn file() -> RawConfig {
    idguard_config::reload::parse(
        r#"
[[agents]]
id = "file-agent"

[[llm]]
id = "file-llm"
upstream = "https://api.example.com"
style = "bearer"
credential = "file-cred"

[[clients]]
id = "file-client"

[[credentials]]
id = "file-cred"
kind = "llm"
env = "X"

[[outbound]]
agent = "file-agent"
node = "file-llm"
"#,
        "test.toml",
    )
    .unwrap()
}

/// What a request sees of `file` and `stored`.
fn current<'a>(file: &'a RawConfig, stored: &'a [StoredObject]) -> Current<'a> {
    Current { file, stored }
}

/// Runs `f` over the file and the store of these tests.
fn with_current<T>(f: impl FnOnce(Current<'_>) -> T) -> T {
    let (file, stored) = (file(), stored());
    f(current(&file, &stored))
}

/// What the store holds in these tests.
fn stored() -> Vec<StoredObject> {
    vec![
        object(Kind::Agent, "api-agent", 3, json!({"id": "api-agent"})),
        object(Kind::Enterprise, "api-svc", 1, json!({})),
        object(
            Kind::Outbound,
            "api-agent/file-llm",
            1,
            json!({"agent": "api-agent", "node": "file-llm"}),
        ),
        object(
            Kind::Outbound,
            "other/file-llm",
            1,
            json!({"agent": "other", "node": "file-llm"}),
        ),
        object(
            Kind::Inbound,
            "c/api-agent",
            2,
            json!({"client": "c", "agent": "api-agent", "scopes": ["a", "b"]}),
        ),
    ]
}

fn code(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => match e {
            AdminError::FileManaged { .. } => "file_managed",
            AdminError::NotFound { .. } => "not_found",
            AdminError::Exists { .. } => "exists",
            AdminError::Immutable(_) => "immutable",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::IdempotencyMismatch => "idempotency_mismatch",
            other => panic!("unexpected {other:?}"),
        }
        .into(),
    }
}

#[test]
fn if_match_names_versions_or_any_or_is_refused() {
    let v = |x: &[u64]| Ok(Some(IfMatch::Versions(x.to_vec())));
    for (header, want) in [
        (None, Ok(None)),
        (Some("\"3\""), v(&[3])),
        (Some("3"), v(&[3])),
        (Some("W/\"3\""), v(&[3])),
        (Some(" \"12\" "), v(&[12])),
        (Some("*"), Ok(Some(IfMatch::Any))),
        (Some("\"1\", W/\"2\",3"), v(&[1, 2, 3])),
        (Some("\"x\""), Err("bad_request")),
        (Some("\"1\", *"), Err("bad_request")),
        (Some(""), Err("bad_request")),
        (Some("\"1\","), Err("bad_request")),
        (Some("-1"), Err("bad_request")),
    ] {
        let h = match header {
            Some(v) => headers(&[("if-match", v)]),
            None => HeaderMap::new(),
        };
        match (if_match(&h), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{header:?}"),
            (got, Err(want)) => assert_eq!(code(got), want, "{header:?}"),
            (got, want) => panic!("{header:?}: {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_change_expects_the_if_match_version_else_the_version_read() {
    let current = object(Kind::Agent, "a", 4, json!({}));
    let v = |x: &[u64]| Some(IfMatch::Versions(x.to_vec()));
    assert_eq!(expect_version(None, &current), Expect::Version(4));
    assert_eq!(
        expect_version(Some(IfMatch::Any), &current),
        Expect::Version(4)
    );
    assert_eq!(expect_version(v(&[2]), &current), Expect::Version(2));
    assert_eq!(expect_version(v(&[4]), &current), Expect::Version(4));
    assert_eq!(expect_version(v(&[2, 4]), &current), Expect::Version(4));
    assert_eq!(expect_version(v(&[2, 3]), &current), Expect::Version(2));
}

#[test]
fn an_idempotency_key_is_one_to_128_visible_characters() {
    let long = "k".repeat(128);
    let too_long = "k".repeat(129);
    for (key, want) in [
        (None, "ok"),
        (Some("k"), "ok"),
        (Some(long.as_str()), "ok"),
        (Some(""), "bad_request"),
        (Some(too_long.as_str()), "bad_request"),
    ] {
        let h = match key {
            Some(k) => headers(&[("idempotency-key", k)]),
            None => HeaderMap::new(),
        };
        assert_eq!(code(idempotency_key(&h)), want, "{key:?}");
    }
}

#[test]
fn the_same_request_replays_its_answer_and_another_request_under_the_key_is_refused() {
    let answer = |hash: &str| IdempotentAnswer {
        request_hash: hash.into(),
        status: 201,
        body: "{}".into(),
    };
    assert_eq!(
        replay(None, "h1").unwrap(),
        None,
        "a first request goes ahead"
    );
    assert_eq!(
        replay(Some(answer("h1")), "h1").unwrap(),
        Some(answer("h1")),
        "the same request gets the same answer"
    );
    assert_eq!(
        code(replay(Some(answer("h1")), "h2")),
        "idempotency_mismatch"
    );
}

#[test]
fn an_idempotency_key_is_scoped_to_its_caller_and_route() {
    let route = "POST /admin/v1/agents";
    let alice = scoped_key("alice", route, "k1");
    assert_eq!(alice, scoped_key("alice", route, "k1"));
    for other in [
        scoped_key("bob", route, "k1"),
        scoped_key("admin", route, "k1"),
        scoped_key("alice", "POST /admin/v1/clients", "k1"),
        scoped_key("alice", route, "k2"),
    ] {
        assert_ne!(alice, other);
    }
}

#[test]
fn an_immutable_field_may_be_repeated_but_not_changed() {
    let (a, b) = ("a".to_owned(), "b".to_owned());
    for (given, current, want) in [
        (None, Some(&a), "ok"),
        (None, None, "ok"),
        (Some(&a), Some(&a), "ok"),
        (Some(&b), Some(&a), "immutable"),
        (Some(&a), None, "immutable"),
    ] {
        assert_eq!(
            code(unchanged("audience", given, current)),
            want,
            "{given:?} over {current:?}"
        );
    }
}

#[test]
fn what_the_file_and_the_store_say_about_an_id() {
    let (file, stored) = (file(), stored());
    let cur = current(&file, &stored);
    // A change or delete: file-managed, stored, or absent.
    assert_eq!(code(cur.for_change::<Agents>("file-agent")), "file_managed");
    assert_eq!(cur.for_change::<Agents>("api-agent").unwrap().version, 3);
    assert_eq!(code(cur.for_change::<Agents>("ghost")), "not_found");
    assert_eq!(
        code(cur.for_change::<Clients>("api-agent")),
        "not_found",
        "kinds do not mix"
    );
    // A create-or-replace: file-managed, replace, or create.
    assert_eq!(
        code(cur.for_upsert::<crate::api::authorizations::Outbound>("file-agent/file-llm")),
        "file_managed"
    );
    assert!(
        cur.for_upsert::<crate::api::authorizations::Outbound>("api-agent/file-llm")
            .unwrap()
            .is_some()
    );
    assert!(
        cur.for_upsert::<crate::api::authorizations::Outbound>("api-agent/x")
            .unwrap()
            .is_none()
    );
    // A create: an id the file or the store has is refused; by default only within the kind.
    for (result, want) in [
        (Credentials::check_free(cur, "file-cred"), "file_managed"),
        (Credentials::check_free(cur, "new"), "ok"),
        (Agents::check_free(cur, "api-agent"), "exists"),
        (Agents::check_free(cur, "file-agent"), "file_managed"),
        (Agents::check_free(cur, "file-client"), "ok"),
    ] {
        assert_eq!(code(result), want);
    }
}

#[test]
fn node_and_client_ids_are_unique_across_kinds() {
    type Check = fn(Current<'_>, &str) -> Result<()>;
    #[rustfmt::skip]
    let rows: [(&str, Check, &str, &str); 9] = [
        ("the file's LLM node", Llm::check_free, "file-llm", "file_managed"),
        ("an LLM node, for an external one", External::check_free, "file-llm", "file_managed"),
        ("a stored enterprise service", External::check_free, "api-svc", "exists"),
        ("agents are another namespace", Llm::check_free, "file-agent", "ok"),
        ("the file's client", Clients::check_free, "file-client", "file_managed"),
        ("the file's agent", Clients::check_free, "file-agent", "exists"),
        ("a stored agent", Clients::check_free, "api-agent", "exists"),
        ("a stored service", Clients::check_free, "api-svc", "exists"),
        ("a free id", Clients::check_free, "new", "ok"),
    ];
    with_current(|cur| {
        for (why, check, id, want) in rows {
            assert_eq!(code(check(cur, id)), want, "{why}");
        }
    });
}

#[test]
fn deleting_an_agent_withdraws_the_stored_authorizations_that_name_it() {
    let (file, stored) = (file(), stored());
    let cur = current(&file, &stored);
    let mut plan = Plan::default();
    Agents::cascade(cur, "api-agent", &mut plan);
    let withdrawn: Vec<(Kind, &str, Expect)> = plan
        .writes
        .iter()
        .map(|w| (w.kind, w.id.as_str(), w.expect))
        .collect();
    assert_eq!(
        withdrawn,
        vec![
            (Kind::Outbound, "api-agent/file-llm", Expect::Present),
            (Kind::Inbound, "c/api-agent", Expect::Present),
        ]
    );
    assert!(plan.writes.iter().all(|w| w.body.is_none()));
    assert_eq!(plan.audit.len(), 2, "each with its audit record");
}

#[test]
fn objects_in_use_name_their_users_and_only_authorizations_are_withdrawn_by_a_cascade() {
    let (file, stored) = (file(), stored());
    let cur = current(&file, &stored);
    // A node: the agents of the file's edge and the stored ones, sorted.
    let users = Llm::used_by(cur, "file-llm").unwrap();
    assert_eq!(users.describe(), "agents api-agent, file-agent, other");
    let mut plan = Plan::default();
    assert!(Llm::withdraw_uses(cur, "file-llm", &mut plan));
    assert_eq!(plan.writes.len(), 2, "both stored edges to the node");
    // A client: the agents admitting it.
    let users = Clients::used_by(cur, "c").unwrap();
    assert_eq!(users.describe(), "agents api-agent");
    // A credential: the nodes using it, and no cascade.
    let users = Credentials::used_by(cur, "file-cred").unwrap();
    assert_eq!(users.describe(), "nodes file-llm");
    assert!(!Credentials::withdraw_uses(
        cur,
        "file-cred",
        &mut Plan::default()
    ));
    assert!(Llm::used_by(cur, "unused").unwrap().ids.is_empty());
}

#[test]
fn narrowing_keeps_the_remaining_scopes_and_expects_the_version_read() {
    let (file, stored) = (file(), stored());
    let cur = current(&file, &stored);
    let mut plan = Plan::default();
    crate::api::authorizations::narrow::<crate::api::authorizations::Inbound>(
        cur,
        &mut plan,
        |e| e.agent == "api-agent",
        |s| s == "a",
    )
    .unwrap();
    assert_eq!(plan.writes.len(), 1);
    assert_eq!(plan.writes[0].expect, Expect::Version(2));
    assert_eq!(
        plan.writes[0].body.as_ref().unwrap()["scopes"],
        json!(["a"])
    );
    // Nothing to narrow: no write.
    let mut plan = Plan::default();
    crate::api::authorizations::narrow::<crate::api::authorizations::Inbound>(
        cur,
        &mut plan,
        |e| e.agent == "api-agent",
        |s| s == "a" || s == "b",
    )
    .unwrap();
    assert!(plan.writes.is_empty());
}

#[test]
fn views_say_who_manages_them_and_stored_ones_carry_an_etag() {
    assert_eq!(
        stamp(json!({"id": "x"}), Managed::File),
        json!({"id": "x", "managed_by": "file", "version": null})
    );
    assert_eq!(
        stamp(json!({"id": "x"}), Managed::Api(4)),
        json!({"id": "x", "managed_by": "api", "version": 4})
    );
    let resp = answer(axum::http::StatusCode::OK, json!({}), Managed::Api(4));
    assert_eq!(resp.headers()["etag"], "\"4\"");
    let resp = answer(axum::http::StatusCode::OK, json!({}), Managed::File);
    assert!(resp.headers().get("etag").is_none());
}

#[test]
fn a_stored_body_that_does_not_fit_is_an_internal_error_without_its_content() {
    let o = object(
        Kind::Agent,
        "bad",
        1,
        json!({"id": "bad", "enabled": "SECRET-VALUE"}),
    );
    match raw_of::<Agents>(&o) {
        Err(AdminError::Internal(crate::error::Internal::Corrupt(why))) => {
            assert_eq!(why, "agent/bad: invalid type");
        }
        other => panic!("{other:?}"),
    }
}
