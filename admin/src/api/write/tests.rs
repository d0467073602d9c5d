//! The write pipeline's decisions, without a socket: preconditions applied in memory (create on an existing
//! object, delete of a missing one, a stale version), the console's quotas, the shape of a plan, and what audit
//! records never hold.

use idguard_config::store::{Expect, Kind, StoredObject, Write};
use serde_json::{Value, json};

use super::*;

fn object(kind: Kind, id: &str, version: u64) -> StoredObject {
    crate::api::tests::stored_object(kind, id, version, json!({"id": id}))
}

fn write(kind: Kind, id: &str, expect: Expect, body: Option<Value>) -> Write {
    Write {
        kind,
        id: id.into(),
        expect,
        body,
    }
}

#[test]
fn writes_apply_in_memory_only_when_every_precondition_holds() {
    use Expect::{Absent, Present, Version};
    // (what, [(kind, id, expect, puts a body)], objects after; `None`: refused with 412). Stored: agent `a` at 3.
    let a = Kind::Agent;
    type Planned<'a> = &'a [(Kind, &'a str, Expect, bool)];
    #[rustfmt::skip]
    let rows: [(&str, Planned<'_>, Option<usize>); 11] = [
        ("create a new id", &[(a, "b", Absent, true)], Some(2)),
        ("create an existing id", &[(a, "a", Absent, true)], None),
        ("same id, other kind", &[(Kind::Client, "a", Absent, true)], Some(2)),
        ("update at the version read", &[(a, "a", Version(3), true)], Some(1)),
        ("update at a stale version", &[(a, "a", Version(2), true)], None),
        ("update a missing object", &[(a, "b", Version(1), true)], None),
        ("delete an existing object", &[(a, "a", Version(3), false)], Some(0)),
        ("delete a missing object", &[(a, "b", Present, false)], None),
        ("cascade delete, any version", &[(a, "a", Present, false)], Some(0)),
        ("a later write sees an earlier one", &[(a, "a", Version(3), false), (a, "a", Absent, true)], Some(1)),
        ("one refusal refuses the plan", &[(a, "b", Absent, true), (a, "a", Version(9), false)], None),
    ];
    let put = json!({"id": "a", "name": "n"});
    for (what, writes, want) in rows {
        let writes: Vec<Write> = writes
            .iter()
            .map(|(kind, id, expect, puts)| write(*kind, id, *expect, puts.then(|| put.clone())))
            .collect();
        match (apply_writes(vec![object(a, "a", 3)], &writes), want) {
            (Ok(objects), Some(n)) => assert_eq!(objects.len(), n, "{what}"),
            (Err(AdminError::Precondition), None) => {}
            (got, want) => panic!("{what}: {got:?}, want {want:?} objects"),
        }
    }
    let update = [write(a, "a", Version(3), Some(put))];
    let updated = apply_writes(vec![object(a, "a", 3)], &update).unwrap();
    assert_eq!(
        updated[0].body["name"], "n",
        "the new body is what gets validated"
    );
}

#[test]
fn quotas_count_the_candidate_and_bind_only_creates_of_their_kind() {
    use Expect::{Absent, Version};
    let licenses = "M2M application license quota exhausted: 3 of 3 in use \
                    (each agent, client application and enterprise service uses one)";
    let credentials = "stored credential limit reached: 2 of 2 stored";
    // A routing file that grew beyond the quota: the message states the real count.
    let over = "M2M application license quota exhausted: 8 of 3 in use \
                (each agent, client application and enterprise service uses one)";
    // (what, the write's kind and precondition, licensed and credentials in the candidate, answer); 3 licenses,
    // at most 2 credentials.
    #[rustfmt::skip]
    let rows = [
        ("an agent within the licenses", Kind::Agent, Absent, 3, 0, "ok"),
        ("an agent beyond them", Kind::Agent, Absent, 4, 0, licenses),
        ("a client beyond them", Kind::Client, Absent, 4, 0, licenses),
        ("a service beyond them", Kind::Enterprise, Absent, 4, 0, licenses),
        ("an agent while the file is over", Kind::Agent, Absent, 9, 0, over),
        ("an update while over", Kind::Agent, Version(1), 9, 9, "ok"),
        ("another kind while over", Kind::Llm, Absent, 9, 9, "ok"),
        ("a credential within the cap", Kind::Credential, Absent, 9, 2, "ok"),
        ("a credential beyond it", Kind::Credential, Absent, 0, 3, credentials),
    ];
    for (what, kind, expect, licensed, stored, want) in rows {
        let plan = Plan {
            writes: vec![write(kind, "x", expect, Some(json!({})))],
            ..Plan::default()
        };
        let usage = Usage {
            agents: licensed,
            clients: 0,
            services: 0,
            licenses: 3,
            credentials: stored,
            max_credentials: 2,
        };
        let got = match check_quotas(&plan, usage) {
            Ok(()) => "ok".to_owned(),
            Err(AdminError::Quota(message)) => message,
            Err(other) => panic!("{what}: {other:?}"),
        };
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn a_plan_carries_one_audit_record_per_write_with_the_state_before_and_after() {
    let current = object(Kind::Agent, "a", 3);
    let plan = Plan::update(
        &current,
        Expect::Version(3),
        json!({"id": "a", "name": "n"}),
    );
    let mut cascaded = Plan::default();
    cascaded.push_delete(&object(Kind::Outbound, "a/n", 1));
    cascaded.push_update(&object(Kind::Inbound, "c/a", 2), json!({"id": "c/a"}));
    let plan = plan.then(cascaded);
    let writes: Vec<(Kind, Expect, bool)> = plan
        .writes
        .iter()
        .map(|w| (w.kind, w.expect, w.body.is_some()))
        .collect();
    assert_eq!(
        writes,
        vec![
            (Kind::Agent, Expect::Version(3), true),
            (Kind::Outbound, Expect::Present, false),
            (Kind::Inbound, Expect::Version(2), true),
        ]
    );
    let audit: Vec<(&str, bool, bool)> = plan
        .audit
        .iter()
        .map(|a| (a.action.as_str(), a.before.is_some(), a.after.is_some()))
        .collect();
    assert_eq!(
        audit,
        vec![
            ("update", true, true),
            ("delete", true, false),
            ("update", true, true)
        ]
    );
    let created = Plan::create(Kind::Agent, "b", json!({"id": "b"}));
    assert_eq!(created.writes[0].expect, Expect::Absent);
    assert_eq!(created.audit[0].action, "create");
    assert!(created.audit[0].before.is_none());
}

#[test]
fn audit_bodies_never_hold_a_credential_value_or_a_password_hash() {
    let body = json!({"id": "x", "sealed": "idg1.abc", "value": "v", "password_hash": "$argon2id$h", "name": "n"});
    let credential = redact(Kind::Credential, body.clone());
    assert_eq!(
        (
            &credential["sealed"],
            &credential["value"],
            &credential["name"]
        ),
        (&json!("[redacted]"), &json!("[redacted]"), &json!("n"))
    );
    assert_eq!(
        redact(Kind::User, body.clone())["password_hash"],
        "[redacted]"
    );
    assert_eq!(
        redact(Kind::Agent, body.clone()),
        body,
        "other kinds hold no secret"
    );
    // A replaced value kept for rollback is redacted too; its fingerprint and deadline stay.
    let kept = redact(
        Kind::Credential,
        json!({"id": "x", "previous": {"sealed": "idg1.x", "fingerprint": "f", "until": 5}}),
    );
    assert_eq!(
        kept["previous"],
        json!({"sealed": "[redacted]", "fingerprint": "f", "until": 5})
    );
    // A field that is absent stays absent.
    assert_eq!(
        redact(Kind::Credential, json!({"id": "x", "env": "E"})),
        json!({"id": "x", "env": "E"})
    );
}

#[test]
fn only_created_nodes_are_held_to_bound_credentials() {
    let raw = idguard_config::reload::parse(
        r#"
[[credentials]]
id = "bound"
kind = "llm"
env = "K"
hosts = ["api.example.com"]

[[credentials]]
id = "unbound"
kind = "llm"
env = "K"

[[llm]]
id = "uses-bound"
upstream = "https://api.example.com"
style = "bearer"
credential = "bound"

[[llm]]
id = "uses-unbound"
upstream = "https://api.example.com"
style = "bearer"
credential = "unbound"

[[enterprise]]
id = "svc"
audience = "urn:svc"
exchange = { token_url = "https://as.example.com/token", client_id = "idg", credential = "unbound" }
"#,
        "test",
    )
    .unwrap();
    let env = |_: &str| Some("v".to_owned());
    let ctx = idguard_config::validate::BuildContext {
        base_dir: ".".into(),
        master_keys: None,
        env: &env,
        generation: 1,
        public_addr: None,
    };
    let snapshot = idguard_config::validate::validate(raw, &ctx).unwrap();
    let plan = |kind, id: &str, expect| Plan {
        writes: vec![write(kind, id, expect, Some(json!({})))],
        ..Plan::default()
    };
    // (what, plan, the refused field; `None`: accepted).
    let rows = [
        (
            "create with a bound credential",
            plan(Kind::Llm, "uses-bound", Expect::Absent),
            None,
        ),
        (
            "create with an unbound one",
            plan(Kind::Llm, "uses-unbound", Expect::Absent),
            Some("llm.credential"),
        ),
        (
            "an exchange credential too",
            plan(Kind::Enterprise, "svc", Expect::Absent),
            Some("enterprise.exchange.credential"),
        ),
        (
            "an object stored before keeps working",
            plan(Kind::Llm, "uses-unbound", Expect::Version(1)),
            None,
        ),
        (
            "other kinds are not nodes",
            plan(Kind::Agent, "uses-unbound", Expect::Absent),
            None,
        ),
    ];
    for (what, plan, want) in rows {
        match (check_bindings(&plan, &snapshot), want) {
            (Ok(()), None) => {}
            (Err(AdminError::Invalid(errors)), Some(field)) => {
                assert_eq!(errors[0].path, field, "{what}")
            }
            (got, want) => panic!("{what}: {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_refusal_names_the_field_of_the_body_sent_not_the_merged_topology() {
    let error = |path: &str| ValidationError {
        path: path.into(),
        line: None,
        message: "m".into(),
    };
    let writes = [
        write(Kind::Llm, "gpt", Expect::Absent, Some(json!({"id": "gpt"}))),
        // A delete sends no body: an error about what it leaves behind stays where it is.
        write(Kind::Credential, "gone", Expect::Present, None),
    ];
    let refused = AdminError::Invalid(vec![
        error("llm[id=gpt].style"),
        error("llm[id=gpt]"),
        error("llm[id=gpt-2].style"),
        error("llm[id=other].credential"),
        error("credentials[id=gone].kind"),
        error("llm[0].credential"),
    ]);
    let AdminError::Invalid(errors) = located_in_request(refused, &writes) else {
        panic!("still a validation refusal");
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "llm.style",
            "llm",
            "llm[id=gpt-2].style",
            "llm[id=other].credential",
            "credentials[id=gone].kind",
            "llm[0].credential"
        ]
    );
    // Other refusals pass unchanged.
    assert!(matches!(
        located_in_request(AdminError::Precondition, &writes),
        AdminError::Precondition
    ));
}
