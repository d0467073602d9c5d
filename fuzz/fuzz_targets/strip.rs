//! The header stripper (`proxy/src/middleware/strip.rs`) on arbitrary header sets. Never panics; afterwards no
//! credential slot, hop-by-hop, forwarding or `x-idguard-*` header remains, nor any header a `Connection` value
//! names (read as the raw bytes a peer sent), and every other header is kept with its values in order.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use idguard_proxy::middleware::strip::{STRIPPED_HEADERS, strip_headers};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Names worth hitting often besides the stripped ones.
const EXTRA_NAMES: &[&str] = &[
    "content-type",
    "x-custom",
    "x-idguard-agent",
    "X-IDGUARD-Subject-Token",
    "accept",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    /// A comma-separated list of names, as a `Connection` value carries.
    List(Vec<(Name, u8)>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<(Name, Value)>,
}

fn name_bytes(name: &Name) -> Vec<u8> {
    match name {
        Name::Known(i) => {
            let i = usize::from(*i);
            let all = STRIPPED_HEADERS.len() + EXTRA_NAMES.len();
            match i % all {
                j if j < STRIPPED_HEADERS.len() => STRIPPED_HEADERS[j].as_str().as_bytes().to_vec(),
                j => EXTRA_NAMES[j - STRIPPED_HEADERS.len()].as_bytes().to_vec(),
            }
        }
        Name::Raw(bytes) => bytes.clone(),
    }
}

fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::Raw(bytes) => bytes.clone(),
        Value::List(names) => {
            let mut out = Vec::new();
            for (i, (name, sep)) in names.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(
                        [&b","[..], b", ", b" ,\t", b",,"][usize::from(*sep) % 4],
                    );
                }
                out.extend(name_bytes(name));
            }
            out
        }
    }
}

fuzz_target!(|input: Input| {
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name_bytes(name)),
            HeaderValue::from_bytes(&value_bytes(value)),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let before = headers.clone();
    // The names a peer's Connection headers list, read from the raw bytes as any HTTP/1.1 hop would.
    let named: Vec<HeaderName> = before
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
        .collect();
    strip_headers(&mut headers);
    let removed = |name: &HeaderName| {
        STRIPPED_HEADERS.contains(name)
            || named.contains(name)
            || name.as_str().starts_with("x-idguard-")
    };
    for name in headers.keys() {
        assert!(!removed(name), "{name} survived stripping of {before:?}");
    }
    for name in before.keys() {
        if !removed(name) {
            let kept: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
            let sent: Vec<&HeaderValue> = before.get_all(name).iter().collect();
            assert_eq!(kept, sent, "{name} was altered");
        }
    }
});
