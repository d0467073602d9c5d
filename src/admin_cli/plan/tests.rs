use std::collections::BTreeSet;

use clap::Parser as _;

use super::*;
use crate::admin_cli::AdminArgs;

#[derive(clap::Parser)]
struct Line {
    #[command(flatten)]
    admin: AdminArgs,
}

/// One command line per operation; `{id}`-style arguments come back as the document's path templates.
const LINES: &[&str] = &[
    "agents list",
    "agents create --name x",
    "agents get {id}",
    "agents edit {id} --enabled false",
    "agents delete {id}",
    "agents topology {id}",
    "agents permission {id} --scope s",
    "agents secrets list {id}",
    "agents secrets create {id}",
    "agents secrets delete {id} {secret}",
    "agents keys list {id}",
    "agents keys add {id} --pem -",
    "agents keys delete {id} {key}",
    "grant {id} {node} --scope a",
    "revoke {id} {node}",
    "outbound {id} {node}",
    "inbound grant {id} {client} --scope a",
    "inbound revoke {id} {client}",
    "inbound get {id} {client}",
    "credentials list",
    "credentials create --kind llm --host h",
    "credentials get {id}",
    "credentials edit {id} --name n",
    "credentials rotate {id}",
    "credentials rollback {id}",
    "credentials delete {id}",
    "llm list",
    "llm create --id x",
    "llm get {id}",
    "llm edit {id} --upstream u",
    "llm delete {id} --cascade",
    "external list",
    "external create --id x",
    "external get {id}",
    "external edit {id} --name n",
    "external delete {id}",
    "enterprise list",
    "enterprise create --id x",
    "enterprise get {id}",
    "enterprise edit {id} --name n",
    "enterprise delete {id}",
    "clients list",
    "clients create --id c",
    "clients get {id}",
    "clients edit {id} --enabled true",
    "clients delete {id}",
    "clients secrets list {id}",
    "clients secrets create {id}",
    "clients secrets delete {id} {secret}",
    "clients keys list {id}",
    "clients keys add {id} --pem -",
    "clients keys delete {id} {key}",
    "users list",
    "users create --id u",
    "users get {id}",
    "users edit {id} --name n",
    "users delete {id}",
    "groups list",
    "groups create --id g",
    "groups get {id}",
    "groups edit {id} --name n",
    "groups delete {id}",
    "orgs list",
    "organizations create --id o",
    "orgs get {id}",
    "orgs edit {id} --parent p",
    "orgs delete {id}",
    "operators list",
    "operators create --role viewer",
    "operators get {id}",
    "operators edit {id} --role owner",
    "operators delete {id}",
    "operators issue-token {id}",
    "operators revoke-token {id} {token_id}",
    "audit --kind agent",
    "usage",
    "topology {id}",
    "store reseed",
    "store accept",
    "openapi",
];

fn planned(line: &str) -> Plan {
    let argv = std::iter::once("admin").chain(line.split(' '));
    let parsed = Line::try_parse_from(argv).unwrap_or_else(|e| panic!("{line}: {e}"));
    let mut stdin = Stdin::with_text("CANARY-value\n");
    plan(&parsed.admin.command, &mut stdin).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn every_operation_of_the_openapi_document_has_a_command() {
    let doc: Value =
        serde_json::from_str(include_str!("../../../admin/src/api/openapi.json")).unwrap();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let commands: BTreeSet<String> = LINES
        .iter()
        .map(|line| {
            let p = planned(line);
            let path = p.call.path.replace("%7B", "{").replace("%7D", "}");
            format!("{} {path}", p.call.method)
        })
        .collect();
    let missing: Vec<_> = documented.difference(&commands).collect();
    let extra: Vec<_> = commands.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "operations without a command: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "commands the document does not have: {extra:?}"
    );
}

#[test]
fn secrets_come_from_stdin_into_the_body_only() {
    let p = planned("credentials create --id k --kind llm --host api.example.com");
    let body: Value = serde_json::from_str(p.call.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"id": "k", "kind": "llm", "hosts": ["api.example.com"], "value": "CANARY-value"})
    );
    let p = planned("credentials rotate k --grace-seconds 60 --if-match 3");
    let body: Value = serde_json::from_str(p.call.body.as_deref().unwrap()).unwrap();
    assert_eq!(body, json!({"value": "CANARY-value", "grace_seconds": 60}));
    assert_eq!(p.call.headers, vec![("if-match", "\"3\"".to_owned())]);
    let p = planned("users create --id u --password-stdin");
    assert!(
        p.call
            .body
            .as_deref()
            .unwrap()
            .contains("\"password\":\"CANARY-value\"")
    );
    // Without the flag, no password is read or sent.
    assert!(
        !planned("users create --id u")
            .call
            .body
            .as_deref()
            .unwrap()
            .contains("password")
    );
    // A directory replace names its id.
    let p = planned("groups edit g-1 --name G");
    assert_eq!(
        (p.call.method, p.call.path.as_str()),
        (Method::PUT, "/admin/v1/groups/g-1")
    );
    assert!(p.call.body.as_deref().unwrap().contains("\"id\":\"g-1\""));
}

#[test]
fn a_secret_is_spliced_into_the_body_as_a_json_string() {
    for (fields, value) in [
        (json!({"id": "k", "hosts": ["h"]}), "plain-CANARY"),
        (json!({}), "quote\" back\\slash\ttab\u{1}ctl é ✓"),
    ] {
        let Value::Object(map) = fields.clone() else {
            unreachable!()
        };
        let text = Body::with_secret(map, "value", Secret::new(value.to_owned())).serialize();
        let capacity = text.capacity();
        let mut want = fields;
        want["value"] = Value::from(value);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            want,
            "{}",
            &*text
        );
        assert!(text.len() <= capacity);
    }
    // A field of the same name from --from-file is replaced, not duplicated.
    let Value::Object(map) = json!({"value": "from-file"}) else {
        unreachable!()
    };
    let text = Body::with_secret(map, "value", Secret::new("stdin".into())).serialize();
    assert_eq!(&*text, r#"{"value":"stdin"}"#);
}

#[test]
fn path_segments_cannot_add_segments_or_queries() {
    assert_eq!(seg("agent-1"), "agent-1");
    assert_eq!(seg("alice@example.com"), "alice@example.com");
    assert_eq!(seg("../x?y=1#z"), "..%2Fx%3Fy%3D1%23z");
    assert_eq!(seg("é"), "%C3%A9");
}
