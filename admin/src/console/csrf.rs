//! CSRF: every console form carries the session's token in a hidden `csrf` field; every POST is checked against
//! it in constant time before anything else. A POST whose `Origin` (when the browser sends one) is not the
//! console's own is refused too. The sign-in forms, before any session exists, use a double-submit token: a random
//! value in a short-lived cookie and in the form.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::ConsoleError;

/// The pre-session cookie of the sign-in form.
pub(super) const SIGNIN_COOKIE: &str = "idg_console_signin";

/// Whether `presented` (the form's field) equals `expected`, compared in constant time; a missing or empty field
/// never matches.
pub(super) fn matches(presented: Option<&str>, expected: &str) -> bool {
    match presented {
        Some(p) if !p.is_empty() && !expected.is_empty() => {
            bool::from(p.as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    }
}

/// Checks the form's `csrf` field against `expected` and the `Origin` header (unless absent or `null`) against
/// `base_url`.
///
/// # Errors
/// [`ConsoleError::Csrf`].
pub(super) fn check(
    headers: &HeaderMap,
    base_url: Option<&str>,
    presented: Option<&str>,
    expected: &str,
) -> Result<(), ConsoleError> {
    let origin_ok = match headers.get(header::ORIGIN) {
        // `null`: what a browser sends from a page with `Referrer-Policy: no-referrer` (every console page); the
        // token alone decides then.
        None => true,
        Some(origin) if origin.as_bytes() == b"null" => true,
        Some(origin) => base_url.is_some_and(|b| {
            origin
                .to_str()
                .is_ok_and(|o| o.eq_ignore_ascii_case(origin_of(b)))
        }),
    };
    if origin_ok && matches(presented, expected) {
        Ok(())
    } else {
        tracing::warn!(
            reason = "console_csrf",
            "console form without its session's CSRF token or from another origin"
        );
        Err(ConsoleError::Csrf)
    }
}

/// `scheme://authority` of a base URL (which has no path).
fn origin_of(base_url: &str) -> &str {
    let after_scheme = base_url.find("://").map_or(0, |i| i + 3);
    match base_url[after_scheme..].find('/') {
        Some(i) => &base_url[..after_scheme + i],
        None => base_url,
    }
}

/// The value of cookie `name` in the request, if any.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_origins() {
        assert!(matches(Some("abc"), "abc"));
        assert!(!matches(Some("abd"), "abc"));
        assert!(!matches(None, "abc"));
        assert!(!matches(Some(""), ""));
        let mut h = HeaderMap::new();
        assert!(check(&h, Some("http://127.0.0.1:9"), Some("t"), "t").is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:9".parse().unwrap());
        assert!(check(&h, Some("http://127.0.0.1:9"), Some("t"), "t").is_ok());
        assert!(check(&h, Some("http://127.0.0.1:9"), None, "t").is_err());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(check(&h, Some("http://127.0.0.1:9"), Some("t"), "t").is_ok());
        assert!(check(&h, Some("http://127.0.0.1:9"), Some("u"), "t").is_err());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(check(&h, Some("http://127.0.0.1:9"), Some("t"), "t").is_err());
        assert_eq!(origin_of("https://a.example:8/x"), "https://a.example:8");
        h.insert(header::COOKIE, "a=1; idg_console=xyz".parse().unwrap());
        assert_eq!(cookie(&h, "idg_console"), Some("xyz"));
        assert_eq!(cookie(&h, "idg"), None);
    }
}
