//! Properties of the form-body token scan, through [`form_body_carries_token`] (its public behaviour): the verdict
//! does not depend on how the body is cut into chunks, and a parameter literally named `access_token` (any case,
//! or with `%5f`) is caught wherever it sits. The fuzz target `fuzz/fuzz_targets/form_scan.rs` also checks that
//! nothing else is refused.

use proptest::prelude::*;

use super::*;

fn parameter() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("access_token".to_owned()),
        Just("ACCESS_token".to_owned()),
        Just("access%5Ftoken".to_owned()),
        Just("my_access_token".to_owned()),
        Just("xaccess_token".to_owned()),
        "[a-z_%0-9]{1,14}",
    ];
    (name, "[a-zA-Z0-9=%+]{0,20}").prop_map(|(n, v)| format!("{n}={v}"))
}

fn body() -> impl Strategy<Value = String> {
    prop::collection::vec(parameter(), 0..6).prop_map(|params| params.join("&"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_verdict_does_not_depend_on_the_cuts(body in body(), cuts in prop::collection::vec(0usize..40, 0..6)) {
        let bytes = body.as_bytes();
        let whole = form_body_carries_token([bytes]);
        let mut chunks = Vec::new();
        let mut rest = bytes;
        for cut in cuts {
            let (chunk, tail) = rest.split_at(cut.min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks.push(rest);
        prop_assert_eq!(form_body_carries_token(chunks.iter().copied()), whole, "{:?} cut as {:?}", body, chunks);
        let literal = body.split('&').any(|pair| {
            pair.split_once('=').is_some_and(|(name, _)| {
                name.eq_ignore_ascii_case("access_token") || name.eq_ignore_ascii_case("access%5ftoken")
            })
        });
        prop_assert!(!literal || whole, "{:?} passed", body);
    }
}
