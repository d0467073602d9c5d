//! Upstream URL rules for nodes created through the admin API (corpus J01). The routing file is written by the
//! operator and may point at loopback or internal hosts; the API is a network-reachable way to make the proxy
//! send a stored key somewhere, so it is held to more: `https` only, a DNS name or a public address, and never a
//! loopback, private, link-local, CGNAT (cloud metadata at 100.100.100.200) or unspecified address, nor one of
//! the numeric spellings that hide them (`2130706433`, `0x7f.1`, `017700000001`, `::ffff:127.0.0.1`). Hosts in
//! `[admin] upstream_allow_hosts` are exempt, plain http included.
//!
//! A DNS name that later resolves to such an address (rebinding) is not caught here; that check belongs at
//! connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::Uri;

/// Checks an API-supplied upstream URL. `Err` carries the message for the `upstream` field.
///
/// # Errors
/// A message naming the rule the URL breaks.
pub fn check_upstream(url: &str, allow: &[String]) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().ok_or("must be an absolute URL with a host")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if allow.iter().any(|a| a.eq_ignore_ascii_case(&bare)) {
        return match uri.scheme_str() {
            Some("https" | "http") => Ok(()),
            _ => Err("scheme must be https or http".into()),
        };
    }
    if uri.scheme_str() != Some("https") {
        return Err("must be https: the injected key must not cross the network in clear (file://, gopher:// and plain http are refused)".into());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry user information".into());
    }
    let name = bare.trim_end_matches('.');
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(format!("{host} is a loopback name"));
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return if is_internal(ip) {
            Err(format!(
                "{host} is a loopback, private, link-local or metadata address"
            ))
        } else {
            Ok(())
        };
    }
    // Anything that is not a dotted quad but looks numeric is how 127.0.0.1 hides: 2130706433, 0x7f.1, 0177.1.
    let labels: Vec<&str> = name.split('.').collect();
    let numeric =
        |l: &str| !l.is_empty() && (l.bytes().all(|b| b.is_ascii_digit()) || l.starts_with("0x"));
    if labels.iter().all(|l| numeric(l))
        || labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{host} is a numeric host in a non-standard form"));
    }
    Ok(())
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) // AWS IMDS over IPv6
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10, which holds 100.100.100.200
        || a == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j01_internal_and_disguised_targets_are_refused() {
        for url in [
            "http://169.254.169.254/",
            "https://169.254.169.254/latest",
            "https://100.100.100.200/",
            "https://127.0.0.1:6379",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://017700000001/",
            "https://localhost./",
            "https://api.localhost/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://172.16.5.4/",
            "https://[fd00::1]/",
            "https://0.0.0.0/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://api.openai.com/v1",
            "https://user:pw@api.openai.com/",
        ] {
            assert!(check_upstream(url, &[]).is_err(), "{url} should be refused");
        }
        for url in [
            "https://api.openai.com/v1",
            "https://8.8.8.8/",
            "https://llm.internal.example.com",
        ] {
            assert!(check_upstream(url, &[]).is_ok(), "{url} should pass");
        }
        assert!(check_upstream("http://127.0.0.1:8080", &["127.0.0.1".into()]).is_ok());
        assert!(check_upstream("file:///x", &["127.0.0.1".into()]).is_err());
    }
}
