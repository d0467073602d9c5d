use super::*;

fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_preset_fills_what_was_left_empty() {
    let body = save_body("llm", &form(&[("preset", "anthropic"), ("name", "Claude")])).unwrap();
    assert_eq!(body["upstream"], "https://api.anthropic.com");
    assert_eq!(body["style"], "anthropic");
    let typed = form(&[
        ("preset", "openai"),
        ("upstream", "https://proxy.example.com/v1"),
    ]);
    let body = save_body("llm", &typed).unwrap();
    assert_eq!(
        body["upstream"], "https://proxy.example.com/v1",
        "what was typed wins"
    );
    assert_eq!(body["style"], "bearer");
    assert!(
        save_body("external", &form(&[("preset", "openai")]))
            .unwrap()
            .get("upstream")
            .is_none()
    );
    assert!(save_body("nope", &form(&[])).is_none());
}

#[test]
fn a_client_form_sends_its_lists_and_an_external_one_its_oauth_client() {
    let body = save_body(
        "client",
        &form(&[
            ("redirect_uris", "https://a/cb\nhttps://b/cb"),
            ("enabled", "no"),
        ]),
    )
    .unwrap();
    assert_eq!(
        body["redirect_uris"],
        json!(["https://a/cb", "https://b/cb"])
    );
    assert_eq!(body["users"], json!([]));
    assert_eq!(body["enabled"], false);
    let body = save_body(
        "external",
        &form(&[
            ("token_url", "https://idp/token"),
            ("client_id", "c"),
            ("scopes", "a b"),
        ]),
    )
    .unwrap();
    assert_eq!(
        body["oauth"],
        json!({"token_url": "https://idp/token", "client_id": "c", "scopes": ["a", "b"]})
    );
}

#[test]
fn permissions_are_added_and_removed_by_scope() {
    let service =
        json!({"permissions": [{"scope": "crm.read"}, {"name": "W", "scope": "crm.write"}]});
    let added = permissions(
        &service,
        "add-permission",
        "",
        &form(&[("scope", "crm.x"), ("name", "X")]),
    );
    assert_eq!(added.len(), 3);
    assert_eq!(added[2], json!({"name": "X", "scope": "crm.x"}));
    let removed = permissions(&service, "remove-permission", "crm.read", &form(&[]));
    assert_eq!(removed, vec![json!({"name": "W", "scope": "crm.write"})]);
}
