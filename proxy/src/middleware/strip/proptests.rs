//! Properties of the header stripper over generated header sets: no credential slot, hop-by-hop, forwarding or
//! `x-idguard-*` header survives, nor any header a `Connection` value names (read from the raw bytes a peer sent,
//! whatever else the value holds), and every other header is kept with its values in order. The fuzz target
//! `fuzz/fuzz_targets/strip.rs` checks the same on arbitrary bytes.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;

fn name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        prop::sample::select(STRIPPED_HEADERS.to_vec()),
        prop::sample::select(vec![
            "content-type",
            "accept",
            "x-custom",
            "x-hop",
            "x-idguard-agent",
            "X-IDGUARD-Subject-Token",
        ])
        .prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap_or(http::header::ACCEPT)),
        "[a-zA-Z][a-zA-Z0-9-]{0,10}"
            .prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap_or(http::header::ACCEPT)),
    ]
}

/// A `Connection`-style list: names, separators with optional whitespace, and now and then a byte outside
/// visible ASCII (obs-text, which HTTP/1.1 allows in a field value).
fn list_value() -> impl Strategy<Value = HeaderValue> {
    let item = prop_oneof![
        3 => name().prop_map(|n| n.as_str().as_bytes().to_vec()),
        1 => Just(b"close".to_vec()),
        1 => prop::collection::vec(0x80u8..=0xff, 1..3),
        1 => Just(b"X-Mixed-Case".to_vec()),
    ];
    let sep = prop::sample::select(vec![&b","[..], b", ", b" ,\t", b",,"]);
    prop::collection::vec((item, sep), 1..5).prop_map(|items| {
        let mut out = Vec::new();
        for (i, (item, sep)) in items.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(sep);
            }
            out.extend_from_slice(item);
        }
        HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("close"))
    })
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let value = prop_oneof![
        Just(HeaderValue::from_static("v")),
        "[ -~]{0,12}"
            .prop_map(|v| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("v"))),
    ];
    let plain = prop::collection::vec((name(), value), 0..12);
    let connection = prop::collection::vec(list_value(), 0..3);
    (plain, connection).prop_map(|(plain, connection)| {
        let mut map = HeaderMap::new();
        for (n, v) in plain {
            map.append(n, v);
        }
        for v in connection {
            map.append(http::header::CONNECTION, v);
        }
        map
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nothing_that_may_carry_a_credential_or_steer_the_hop_survives(before in headers()) {
        let named: Vec<HeaderName> = before
            .get_all(http::header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
            .collect();
        let mut after = before.clone();
        strip_headers(&mut after);
        let removed = |name: &HeaderName| {
            STRIPPED_HEADERS.contains(name)
                || named.contains(name)
                || name.as_str().starts_with("x-idguard-")
        };
        for name in after.keys() {
            prop_assert!(!removed(name), "{} survived stripping {:?}", name, before);
        }
        for name in before.keys().filter(|n| !removed(n)) {
            let kept: Vec<&HeaderValue> = after.get_all(name).iter().collect();
            let sent: Vec<&HeaderValue> = before.get_all(name).iter().collect();
            prop_assert_eq!(kept, sent, "{} was altered", name);
        }
    }
}
