use super::*;

#[test]
fn an_api_path_names_the_form_field() {
    assert_eq!(field_of_path("llm.upstream"), "upstream");
    assert_eq!(field_of_path("agents[1].permission.users[0]"), "users");
    assert_eq!(
        field_of_path("clients[0].redirect_uris[0]"),
        "redirect_uris"
    );
    assert_eq!(field_of_path("external.oauth.token_url"), "token_url");
    assert_eq!(field_of_path("name"), "name");
}

#[test]
fn a_refusal_reads_fields_or_a_field_named_message() {
    let e = FieldErrors::of(
        &json!({"error": {"code": "invalid_topology", "message": "x",
        "fields": [{"path": "llm.upstream", "message": "must be https"}]}}),
    );
    assert_eq!(e.fields, vec![("upstream".into(), "must be https".into())]);
    assert!(e.general.is_none());
    let e = FieldErrors::of(
        &json!({"error": {"code": "bad_request", "message": "grace_seconds: at most 604800"}}),
    );
    assert_eq!(
        e.fields,
        vec![("grace_seconds".into(), "at most 604800".into())]
    );
    let e = FieldErrors::of(
        &json!({"error": {"code": "conflict", "message": "the audience is immutable: it stays"}}),
    );
    assert!(e.fields.is_empty());
    assert!(e.general.is_some());
}

#[test]
fn times_read_as_utc_dates() {
    assert_eq!(when(0), "—");
    assert_eq!(when(1_796_200_939), "2026-12-02 08:42:19 UTC");
    assert_eq!(when(951_782_400), "2000-02-29 00:00:00 UTC");
}
