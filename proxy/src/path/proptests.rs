//! Properties of the path checker over generated paths rich in dots, escapes, semicolons and slashes: it never
//! panics; what it accepts, percent-decoded, holds no dot segment (matrix parameters included), no empty segment,
//! nothing left to decode, and joined under a base stays under it after dot-segment removal; and a path of plain
//! segments is always accepted. The fuzz target `fuzz/fuzz_targets/path.rs` checks the same on arbitrary bytes.

use proptest::prelude::*;

use super::*;

const BASE: &str = "/base";

/// Path pieces chosen to collide with every rule: dot segments, their escapes, matrix parameters, overlong forms.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(";".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%3b".to_owned()),
        Just("%3B".to_owned()),
        Just("%25".to_owned()),
        Just("%c0%ae".to_owned()),
        Just("%C3%A9".to_owned()),
        Just("%".to_owned()),
        Just("\\".to_owned()),
        "[a-zA-Z0-9_~:@-]{1,3}",
        any::<char>().prop_map(String::from),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

fn percent_decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h << 4) | l);
                i += 3;
            }
            (byte, ..) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 §5.2.4, treating `x;params` as `x` when deciding what a dot segment is (as servlet containers do).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment.split(';').next().unwrap_or(segment) {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    format!("/{}", out.join("/"))
}

fn assert_safe(path: &str) -> Result<(), TestCaseError> {
    let decoded = String::from_utf8(percent_decode(path))
        .map_err(|_| TestCaseError::fail(format!("not UTF-8 once decoded: {path:?}")))?;
    prop_assert!(
        !decoded
            .bytes()
            .any(|b| b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f),
        "decodes to a byte that means something again: {path:?}"
    );
    if decoded != "/" {
        let body = &decoded[1..];
        let body = body.strip_suffix('/').unwrap_or(body);
        for segment in body.split('/') {
            let bare = segment.split(';').next().unwrap_or(segment);
            prop_assert!(!segment.is_empty(), "empty segment in {path:?}");
            prop_assert!(
                bare != "." && bare != "..",
                "dot segment once decoded: {path:?}"
            );
        }
    }
    let joined = join(BASE, path).map_err(|()| TestCaseError::fail("join refused"))?;
    let resolved = remove_dot_segments(&String::from_utf8_lossy(&percent_decode(&joined)));
    prop_assert!(
        resolved == BASE || resolved.starts_with("/base/"),
        "{path:?} escapes the base: {resolved:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_paths_cannot_climb(path in path()) {
        let strict = check(&path).is_ok();
        let lenient = check_allowing_trailing_slash(&path).is_ok();
        prop_assert!(!strict || lenient, "{path:?}");
        if lenient {
            assert_safe(&path)?;
        }
    }

    #[test]
    fn any_text_is_checked_without_panic(path in any::<String>()) {
        if check_allowing_trailing_slash(&path).is_ok() {
            assert_safe(&path)?;
        }
    }

    #[test]
    fn plain_segments_are_accepted(segments in prop::collection::vec("[a-zA-Z0-9_~:@-]{1,8}(%20[a-z]{1,3})?", 1..6)) {
        let path = format!("/{}", segments.join("/"));
        prop_assert!(check(&path).is_ok(), "{path:?}");
        let with_slash = format!("{path}/");
        prop_assert!(check_allowing_trailing_slash(&with_slash).is_ok(), "{path:?}");
    }
}
