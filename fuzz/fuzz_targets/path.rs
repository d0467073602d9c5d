//! The path checker (`proxy/src/path.rs`) on arbitrary text. Never panics; a path it accepts, once
//! percent-decoded, has no dot segment (matrix parameters included), no empty segment, no backslash, no control
//! byte and no `%` left to decode again, and joined under a base it stays under that base after dot-segment
//! removal.
#![no_main]

use idguard_proxy::path::{check, check_allowing_trailing_slash, join};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "/base";

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let strict = check(path).is_ok();
    let lenient = check_allowing_trailing_slash(path).is_ok();
    assert!(
        !strict || lenient,
        "check accepts what the lenient check refuses: {path:?}"
    );
    if lenient {
        assert_safe(path);
    }
});

fn assert_safe(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    let decoded = percent_decode(path);
    let text = std::str::from_utf8(&decoded)
        .unwrap_or_else(|_| panic!("not UTF-8 once decoded: {path:?}"));
    assert!(
        !text
            .bytes()
            .any(|b| b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f),
        "decodes to a byte that means something again: {path:?}"
    );
    if text != "/" {
        let body = text.strip_prefix('/').unwrap_or(text);
        let body = body.strip_suffix('/').unwrap_or(body);
        for segment in body.split('/') {
            let bare = segment.split(';').next().unwrap_or(segment);
            assert!(!segment.is_empty(), "empty segment: {path:?}");
            assert!(
                bare != "." && bare != "..",
                "dot segment once decoded: {path:?}"
            );
        }
    }
    let joined =
        join(BASE, path).unwrap_or_else(|()| panic!("join refused a checked path: {path:?}"));
    let resolved = remove_dot_segments(&String::from_utf8_lossy(&percent_decode(&joined)));
    assert!(
        resolved == BASE || resolved.starts_with(&format!("{BASE}/")),
        "escapes the base: {path:?} -> {resolved:?}"
    );
}

/// Decodes every `%XX`; a `%` without two hex digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// RFC 3986 §5.2.4, with `;parameters` ignored when deciding what a dot segment is (as servlet containers do).
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
