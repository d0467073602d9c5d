//! Properties of [`Form::parse`]: any set of distinct parameters, however encoded, reads back exactly (an empty
//! value counts as absent); a repeated name, even spelled differently on the wire, is refused; arbitrary bytes
//! are refused only for a repeated name; `Debug` shows names, never values. The fuzz target
//! `fuzz/fuzz_targets/token_form.rs` checks the same on arbitrary bytes for longer.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Names and values with the characters form encoding treats specially.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,12}",
        "[ -~]{0,16}",
        any::<String>(),
        Just("client_secret".to_owned()),
        Just("a b+c&d=e%f".to_owned()),
    ]
}

/// `name` percent-encoded byte by byte: the same name as the serializer's spelling, written differently.
fn fully_escaped(name: &str) -> String {
    name.bytes().map(|b| format!("%{b:02X}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn distinct_parameters_read_back_exactly(params in prop::collection::btree_map(text(), text(), 0..8)) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        let form = Form::parse(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        for (name, value) in &params {
            prop_assert_eq!(form.get(name), Some(value.as_str()).filter(|v| !v.is_empty()));
        }
        let shown = format!("{form:?}");
        let names = format!("{:?}", params.keys().collect::<Vec<_>>());
        for value in params.values().filter(|v| v.len() >= 3 && !names.contains(v.as_str())) {
            prop_assert!(!shown.contains(value.as_str()), "Debug shows a value: {}", shown);
        }
    }

    #[test]
    fn a_repeated_name_is_refused_however_it_is_spelled(
        params in prop::collection::btree_map("[a-z_]{1,12}", text(), 1..6),
        pick in any::<prop::sample::Index>(),
        second in text(),
    ) {
        let params: BTreeMap<String, String> = params;
        let name = pick.get(&params.keys().collect::<Vec<_>>()).to_string();
        let mut body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        body.push('&');
        body.push_str(&fully_escaped(&name));
        body.push('=');
        body.push_str(&form_urlencoded::byte_serialize(second.as_bytes()).collect::<String>());
        prop_assert!(Form::parse(body.as_bytes()).is_err(), "{:?}", body);
    }

    #[test]
    fn arbitrary_bytes_are_refused_only_for_a_repeated_name(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // A small alphabet, so names repeat, spelled alike or not.
        "[ab&=+%6]{0,24}".prop_map(String::into_bytes),
    ]) {
        let mut seen = std::collections::HashSet::new();
        let repeated = form_urlencoded::parse(&body).any(|(name, _)| !seen.insert(name));
        prop_assert_eq!(Form::parse(&body).is_err(), repeated, "{:?}", body);
    }
}
