//! The proxy's form-body token scan (`proxy/src/body.rs`, through `form_body_carries_token`, the scan a
//! form-encoded request body goes through) on arbitrary bodies cut into arbitrary chunks. Never panics; the
//! verdict does not depend on where the body is cut; a parameter spelled `access_token=` (in any case, or with
//! the underscore percent-encoded) is always caught; and a body is only refused when one of its parameters
//! decodes to a name equal to `access_token` in some case.
//!
//! Input: one byte per cut (the chunk lengths, until a zero byte), then the body.
#![no_main]

use idguard_proxy::body::form_body_carries_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut_end = data.iter().position(|&b| b == 0).unwrap_or(0).min(16);
    let (cuts, body) = (&data[..cut_end], &data[(cut_end + 1).min(data.len())..]);
    let whole = form_body_carries_token([body]);
    let mut chunks = Vec::new();
    let mut rest = body;
    for &len in cuts {
        let (chunk, tail) = rest.split_at(usize::from(len).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks.push(rest);
    assert_eq!(
        form_body_carries_token(chunks.iter().copied()),
        whole,
        "the verdict depends on the cuts {cuts:?}"
    );

    let mut literal = false;
    let mut decoded = false;
    for pair in body.split(|&b| b == b'&') {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let raw = pair[..eq].to_ascii_lowercase();
        literal |= raw == b"access_token" || raw == b"access%5ftoken";
        let name: String = form_urlencoded::parse(&pair[..eq])
            .map(|(k, _)| k.into_owned())
            .collect();
        decoded |= name.eq_ignore_ascii_case("access_token");
    }
    if literal {
        assert!(whole, "a literal access_token parameter passed: {body:?}");
    }
    if whole {
        assert!(
            decoded,
            "refused a body without an access_token parameter: {body:?}"
        );
    }
});
