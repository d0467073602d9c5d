//! Strict request-path checking. The proxy never decodes and re-encodes a path: it refuses any path that could
//! mean something different to the upstream than to us, and forwards the rest byte for byte. Refused (400):
//! dot segments (`.`, `..`, also before `;` or `%3B` parameters), empty segments (`//`), backslashes, encoded
//! dots, slashes, backslashes, NUL and `%` itself (double encoding), malformed escapes, escapes that decode to
//! control bytes or invalid UTF-8 (overlong forms such as `%c0%ae`), and raw bytes outside printable ASCII.
//! Because nothing that survives can climb, the upstream path is always `base_path` + the remainder, and [`join`]
//! asserts that once more.

/// Checks a raw path (no query). `Ok(())` when it is safe to forward unchanged.
///
/// # Errors
/// `Err(())` when the path is refused; the caller answers 400 `path_escape`.
#[allow(clippy::result_unit_err)]
pub fn check(path: &str) -> Result<(), ()> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(());
    }
    let mut decoded_run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(());
                };
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return Err(());
                };
                let v = (h << 4) | l;
                // Encoded dot, slash, backslash, percent: all ways to smuggle structure past a prefix check.
                if matches!(v, b'.' | b'/' | b'\\' | b'%') || v < 0x20 || v == 0x7f {
                    return Err(());
                }
                decoded_run.push(v);
                i += 3;
                continue;
            }
            b'\\' => return Err(()),
            0x21..=0x7e => {}
            _ => return Err(()),
        }
        if !decoded_run.is_empty() {
            std::str::from_utf8(&decoded_run).map_err(|_| ())?;
            decoded_run.clear();
        }
        i += 1;
    }
    if !decoded_run.is_empty() {
        std::str::from_utf8(&decoded_run).map_err(|_| ())?;
    }
    // Segment rules on the raw text: escapes of '.' and '/' were refused above, so raw is what matters.
    if path != "/" {
        for segment in path[1..].split('/') {
            let bare = before_parameters(segment);
            if segment.is_empty() || bare == "." || bare == ".." {
                return Err(());
            }
        }
    }
    Ok(())
}

/// Like [`check`], but a single trailing slash is allowed (`/v1/models/`).
///
/// # Errors
/// `Err(())` when the path is refused.
#[allow(clippy::result_unit_err)]
pub fn check_allowing_trailing_slash(path: &str) -> Result<(), ()> {
    match path.strip_suffix('/') {
        Some("") => Ok(()),
        Some(rest) if !rest.ends_with('/') => check(rest),
        Some(_) => Err(()),
        None => check(path),
    }
}

/// A raw segment up to its matrix parameters: `..;x` must not hide a dot segment, nor `..%3Bx` from an upstream
/// that decodes before it splits parameters off.
fn before_parameters(segment: &str) -> &str {
    let end = [";", "%3b", "%3B"]
        .iter()
        .filter_map(|p| segment.find(p))
        .min()
        .unwrap_or(segment.len());
    &segment[..end]
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Joins the node's base path (no trailing slash) and a checked remainder (empty or starting with `/`), and
/// confirms the result still starts with the base path followed by `/` or nothing.
///
/// # Errors
/// `Err(())` if the result would not start with the base (cannot happen for checked input; defence in depth).
#[allow(clippy::result_unit_err)]
pub fn join(base: &str, rest: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(base.len() + rest.len() + 1);
    out.push_str(base);
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    let after = out.strip_prefix(base).ok_or(())?;
    if !(after.is_empty() || after.starts_with('/')) {
        return Err(());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "/",
            "/v1/chat/completions",
            "/v1/models/gpt-4o",
            "/v1/files/file-abc%20def",
            "/v1beta/models/gemini:generateContent",
            "/x/@evil.example/y",
            "/caf%C3%A9",
            "/v1/models/",
            "/files/a%3Bb",
            "/.well-known/x",
        ] {
            assert!(check_allowing_trailing_slash(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn refuses_every_escape_form() {
        for p in [
            "/../admin",
            "/v1/../../etc",
            "/v1/./x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/.%2e/x",
            "/%252e%252e/x",
            "/a%2fb",
            "/a%2F..%2Fb",
            "/a%5cb",
            "/a\\b",
            "/;/../x",
            "/..;/x",
            "//admin",
            "/a//b",
            "/a%00b",
            "/%c0%ae%c0%ae/x",
            "/a%zz",
            "/a%2",
            "/a%",
            "relative",
            "",
            "/a%0d%0aX-Injected:1",
            // Found by the property tests: a dot segment behind an encoded `;`, for an upstream that decodes
            // before it splits off matrix parameters.
            "/.%3b",
            "/..%3b/x",
            "/v1/..%3Bjsessionid=1/admin",
        ] {
            assert!(
                check_allowing_trailing_slash(p).is_err(),
                "{p} should be refused"
            );
        }
    }

    #[test]
    fn join_stays_under_base() {
        assert_eq!(join("/v1", "/chat").unwrap(), "/v1/chat");
        assert_eq!(join("/v1", "").unwrap(), "/v1");
        assert_eq!(join("", "").unwrap(), "/");
        assert_eq!(join("", "/x").unwrap(), "/x");
        assert!(join("/v1", "x").is_err());
    }
}

#[cfg(test)]
mod proptests;
