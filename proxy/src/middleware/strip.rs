//! `StripCallerCredentials`: remove everything the caller sent that could carry a credential, claim an
//! identity, or steer the hop: every token slot, cookies, hop-by-hop headers and every header the caller's
//! `Connection` names, forwarding and client-certificate headers, `x-idguard-*`, `Host`, and credential query
//! parameters. Runs after verification (which read the token) and before injection (which adds ours), so the
//! upstream sees exactly one credential: the stored one.

use http::header::{HeaderMap, HeaderName};

use crate::ctx::Ctx;
use crate::error::ProxyError;
use crate::middleware::{Req, RequestStep};
use crate::routes::{CredentialSource, Injection};

/// Headers removed from every request before injection, parsed once (removing by `&str` would parse each name
/// on every request).
pub const STRIPPED_HEADERS: [HeaderName; 28] = [
    // credential slots
    HeaderName::from_static("authorization"),
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("cookie"),
    HeaderName::from_static("proxy-authorization"),
    // hop-by-hop (RFC 9110 §7.6.1)
    HeaderName::from_static("connection"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("upgrade"),
    HeaderName::from_static("proxy-authenticate"),
    // forwarding and identity claims: only the proxy sets these
    HeaderName::from_static("host"),
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-agent-id"),
    HeaderName::from_static("x-forwarded-client-cert"),
    HeaderName::from_static("client-cert"),
    HeaderName::from_static("client-cert-chain"),
    HeaderName::from_static("x-ssl-client-cert"),
    HeaderName::from_static("x-request-id"),
];

/// Query parameters that carry credentials and are removed.
pub const STRIPPED_QUERY_PARAMS: &[&str] = &["key", "access_token", "api_key", "apikey"];

/// Removes the caller's credentials and hop headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct StripCallerCredentials;

impl RequestStep for StripCallerCredentials {
    fn apply(&self, req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let headers = req.headers_mut();
        strip_headers(headers);
        let Some(route) = ctx.route.as_mut() else {
            return Err(ProxyError::Internal);
        };
        // A custom injection header is a credential slot too, whatever its name.
        let custom_query = match &route.node.credential {
            CredentialSource::Static(Some(Injection::Header { name, .. })) => {
                headers.remove(name);
                None
            }
            CredentialSource::Static(Some(Injection::Query { name, .. })) => Some(name.as_str()),
            CredentialSource::Static(None)
            | CredentialSource::OAuth(_)
            | CredentialSource::Exchange(_)
            | CredentialSource::Caller => None,
        };
        if let Some(query) = route.query.take() {
            route.query = strip_query(&query, custom_query);
        }
        Ok(())
    }
}

/// Removes [`STRIPPED_HEADERS`], every header named in `Connection`, and `x-idguard-*`.
pub fn strip_headers(headers: &mut HeaderMap) {
    // Split the raw bytes: a value holding obs-text is not a `str`, but the names listed beside it still count.
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &STRIPPED_HEADERS {
        headers.remove(name);
    }
    // Rare: only allocate when a caller actually sent one of our header names.
    if headers.keys().any(|k| k.as_str().starts_with("x-idguard-")) {
        let ours: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-idguard-"))
            .cloned()
            .collect();
        for name in ours {
            headers.remove(name);
        }
    }
}

/// Drops credential parameters (and `extra`) from a raw query, comparing percent-decoded names without regard
/// to case. `None` when nothing is left.
pub fn strip_query(query: &str, extra: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = decode_name(pair.split('=').next().unwrap_or(pair));
            !STRIPPED_QUERY_PARAMS
                .iter()
                .any(|p| name.eq_ignore_ascii_case(p))
                && !extra.is_some_and(|e| name.eq_ignore_ascii_case(e))
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join("&"))
    }
}

/// Percent- and plus-decodes a query parameter name, lossily (for comparison only).
pub fn decode_name(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_credentials_are_removed_even_encoded() {
        assert_eq!(strip_query("key=abc&x=1", None).as_deref(), Some("x=1"));
        assert_eq!(strip_query("%6Bey=abc&x=1", None).as_deref(), Some("x=1"));
        assert_eq!(strip_query("KEY=abc", None), None);
        assert_eq!(
            strip_query("a=1&token=z", Some("token")).as_deref(),
            Some("a=1")
        );
        assert_eq!(strip_query("a=1&&b=2", None).as_deref(), Some("a=1&b=2"));
        assert_eq!(decode_name("a%2"), "a%2");
    }

    /// Found by the `strip` fuzz target: a `Connection` value holding a byte outside visible ASCII (obs-text, which
    /// hyper accepts) hid the names listed beside it, so those hop-by-hop headers reached the upstream.
    #[test]
    fn a_connection_value_with_obs_text_still_names_its_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_bytes(b"\xdf\xff3,,content-type,, x-hop").unwrap(),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("!"),
        );
        headers.insert("x-hop", http::HeaderValue::from_static("secret"));
        headers.insert("x-kept", http::HeaderValue::from_static("1"));
        strip_headers(&mut headers);
        assert_eq!(
            headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-kept"]
        );
    }
}

#[cfg(test)]
mod proptests;
