//! The identity service's token-request form parser (`identity/src/lib.rs`, `Form::parse`) on arbitrary bodies.
//! Never panics; refuses a body exactly when a parameter name repeats (after decoding, RFC 6749 §3.1); an
//! accepted form answers every parameter with its decoded value (an empty one counts as absent); its `Debug`
//! output names parameters and never prints a value.
#![no_main]

use std::collections::HashMap;

use idguard_identity::Form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Form::parse(data);
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut repeated = false;
    for (k, v) in form_urlencoded::parse(data) {
        repeated |= expected.insert(k.into_owned(), v.into_owned()).is_some();
    }
    let form = match parsed {
        Ok(form) => form,
        Err(_) => {
            assert!(repeated, "refused a form without a repeated name: {data:?}");
            return;
        }
    };
    assert!(!repeated, "accepted a repeated name: {data:?}");
    for (k, v) in &expected {
        assert_eq!(
            form.get(k),
            Some(v.as_str()).filter(|v| !v.is_empty()),
            "{k:?} in {data:?}"
        );
    }
    // An alphanumeric value may appear in the Debug text only inside the (escaped) names it lists: the text
    // around the names is punctuation, and shorter or punctuated values could match the text's own structure.
    let shown = format!("{form:?}");
    let mut names: Vec<&str> = expected.keys().map(String::as_str).collect();
    names.sort_unstable();
    let names_shown = format!("{names:?}");
    for v in expected.values() {
        if v.len() >= 3
            && v.chars().all(char::is_alphanumeric)
            && !"Formparameters".contains(v.as_str())
        {
            assert!(
                !shown.contains(v.as_str()) || names_shown.contains(v.as_str()),
                "Debug shows a value: {shown}"
            );
        }
    }
});
