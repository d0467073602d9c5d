//! The rules every section shares: the error collector, the syntax of ids, scopes, header names and audiences,
//! the URL rules for upstreams and token endpoints, and where a relative path in the file points.

use std::path::{Path, PathBuf};

use crate::error::ValidationError;
use crate::raw::RawConfig;
use crate::snapshot::{Credential, Origin, UpstreamUrl};
use crate::store::Kind;

/// The message for a value that is not a scope token ([`is_scope_token`]).
pub(super) const SCOPE_RULE: &str =
    "a scope is 1-128 printable ASCII characters without spaces, quotes or backslashes";

/// The message for a value that is not an audience ([`is_audience`]).
pub(super) const AUDIENCE_RULE: &str = "must be 1-512 printable ASCII characters without spaces";

/// Every problem found so far, in the order found.
pub(super) struct Errors(pub(super) Vec<ValidationError>);

pub(super) enum IdKind {
    /// Agents and credentials: `[A-Za-z0-9._:-]{1,128}`.
    Principal,
    /// Nodes (they appear in paths): `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
    Route,
}

// === impl Errors ===

impl Errors {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            line: None,
            message: message.into(),
        });
    }

    /// How many problems so far: a section compares the count before and after to know whether it found any.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

pub(super) fn check_id(id: &str, path: &str, kind: IdKind, errors: &mut Errors) {
    let ok = match kind {
        IdKind::Principal => {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        }
        IdKind::Route => {
            (1..=64).contains(&id.len())
                && id != "."
                && id != ".."
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
    };
    if !ok {
        let rule = match kind {
            IdKind::Principal => "1-128 characters of A-Z a-z 0-9 . _ : -",
            IdKind::Route => "1-64 characters of A-Z a-z 0-9 . _ - (it appears in request paths)",
        };
        errors.push(path, format!("{id:?} is not a valid id: use {rule}"));
    }
}

/// RFC 6749 scope-token: `%x21 / %x23-5B / %x5D-7E`, here at most 128 bytes.
pub fn is_scope_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// An audience: 1-512 printable ASCII characters, no spaces.
pub(super) fn is_audience(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.bytes().all(|b| b.is_ascii_graphic())
}

pub(super) fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^`|~".contains(&b))
}

/// An upstream base URL: https (or http to loopback), no user information, no query, plain path segments.
pub(super) fn upstream_url(text: &str, path: &str, errors: &mut Errors) -> Option<UpstreamUrl> {
    let Ok(uri) = text.parse::<http::Uri>() else {
        errors.push(path, format!("{text:?} is not a URL"));
        return None;
    };
    let scheme = uri.scheme_str().unwrap_or_default();
    let Some(authority) = uri.authority() else {
        errors.push(path, "must be an absolute http:// or https:// URL");
        return None;
    };
    if authority.as_str().contains('@') {
        errors.push(
            path,
            "must not carry user information; store credentials as credentials",
        );
        return None;
    }
    if uri.query().is_some() {
        errors.push(
            path,
            "must not carry a query; put query credentials in a credential with style = \"query\"",
        );
        return None;
    }
    match scheme {
        "https" => {}
        "http" if is_loopback_host(authority.host()) => {}
        "http" => {
            errors.push(
                path,
                "plain http is only allowed to loopback upstreams: the injected key would cross the network in clear",
            );
            return None;
        }
        _ => {
            errors.push(
                path,
                "scheme must be https (or http for a loopback upstream)",
            );
            return None;
        }
    }
    let base = uri.path().trim_end_matches('/');
    if base.split('/').any(|s| s == "." || s == "..") || base.contains('%') || base.contains("//") {
        errors.push(
            path,
            "the base path must be plain segments, without dot segments or percent-escapes",
        );
        return None;
    }
    Some(UpstreamUrl {
        scheme: scheme.to_owned(),
        authority: authority.as_str().to_owned(),
        base_path: base.to_owned(),
    })
}

/// A token endpoint: an absolute https URL (or http to loopback), no user information or fragment.
pub(super) fn endpoint_url(text: &str, path: &str, errors: &mut Errors) {
    match text.parse::<http::Uri>() {
        Ok(uri)
            if uri.authority().is_some_and(|a| !a.as_str().contains('@'))
                && (uri.scheme_str() == Some("https")
                    || (uri.scheme_str() == Some("http")
                        && uri.host().is_some_and(is_loopback_host))) => {}
        _ => errors.push(
            path,
            "must be an absolute https:// URL (http only to a loopback host), without user information",
        ),
    }
}

/// `localhost`, or a loopback address (127.0.0.0/8, `[::1]`).
pub(super) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A credential's `hosts` entry, normalized (lower-case, no brackets or trailing dot): a DNS name, `*.` and a DNS
/// name (any subdomain), or an IP address. `None` when it is none of these (a URL, a port, a path).
pub(super) fn host_pattern(entry: &str) -> Option<String> {
    let host = normalize_host(entry);
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Some(host);
    }
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)).then_some(host)
}

/// Whether `host` (as a URL names it) is one of `patterns` ([`host_pattern`]s).
pub(super) fn host_bound(patterns: &[String], host: &str) -> bool {
    let host = normalize_host(host);
    patterns.iter().any(|p| match p.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => *p == host,
    })
}

/// The host of a URL, if it has one.
pub(super) fn url_host(url: &str) -> Option<String> {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(normalize_host))
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Refuses, at `path`, sending credential `c` to `host` when its `hosts` do not include it.
pub(super) fn check_binding(c: &Credential, host: Option<&str>, path: &str, errors: &mut Errors) {
    let (Some(hosts), Some(host)) = (&c.hosts, host) else {
        return;
    };
    if !host_bound(hosts, host) {
        errors.push(
            path,
            format!(
                "credential {:?} may only be sent to {} (its hosts); this sends it to {host}",
                c.id,
                hosts.join(", ")
            ),
        );
    }
}

/// Who wrote the object `kind`/`id`: the store (merged into `raw`) or the file.
pub(super) fn origin(raw: &RawConfig, kind: Kind, id: &str) -> Origin {
    if raw.api_managed.contains(&(kind, id.to_owned())) {
        Origin::Api
    } else {
        Origin::File
    }
}

/// A path from the file, relative to the file's directory unless absolute.
pub(super) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
