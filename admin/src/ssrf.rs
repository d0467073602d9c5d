//! Upstream URL rules for nodes created through the admin API (corpus J01, J03). The routing file is written by
//! the operator and may point at loopback or internal hosts; the API is a network-reachable way to make the proxy
//! send a stored key somewhere, so it is held to more: `https` only, a DNS name or a public address, and never an
//! address [`idguard_config::net::is_internal`] refuses (loopback, private, link-local, CGNAT with the
//! 100.100.100.200 metadata address, unspecified, multicast), in any spelling: the numeric forms that hide
//! 127.0.0.1 (`2130706433`, `0x7f.1`, `017700000001`), every IPv6 form embedding a forbidden IPv4 address
//! (`[::ffff:127.0.0.1]`, `[::127.0.0.1]`, `[64:ff9b::7f00:1]`, 6to4, Teredo), and scoped IPv6 literals
//! (`[fe80::1%25lo]`).
//!
//! A host name is resolved when it is written ([`check_upstream_resolved`]) and refused when any of its
//! addresses is internal, or when it does not resolve at all. Hosts in `[admin] upstream_allow_hosts` are exempt,
//! plain http included.
//!
//! A name that resolves to a public address now and an internal one later (DNS rebinding) passes here; the
//! proxy's connector checks every address again when it connects and connects only to the addresses it checked
//! (`proxy/src/upstream/guard.rs`).

use std::net::IpAddr;
use std::time::Duration;

use axum::http::Uri;
use idguard_config::Resolver;
use idguard_config::net::is_internal;

/// How long a write waits for a host name to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a refusal tells the operator to do about a deliberate internal upstream.
const ALLOW_HINT: &str =
    "list the host in [admin] upstream_allow_hosts if it is a deliberate internal upstream";

/// Checks an API-supplied upstream URL without resolving it. `Ok(Some((host, port)))` is a host name that must
/// still be resolved and checked ([`check_upstream_resolved`]); `Ok(None)` needs nothing more (an allowed host,
/// or a public address). `Err` carries the message for the field.
///
/// # Errors
/// A message naming the rule the URL breaks.
pub fn check_upstream(url: &str, allow: &[String]) -> Result<Option<(String, u16)>, String> {
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().ok_or("must be an absolute URL with a host")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if allow.iter().any(|a| a.eq_ignore_ascii_case(&bare)) {
        return match uri.scheme_str() {
            Some("https" | "http") => Ok(None),
            _ => Err("scheme must be https or http".into()),
        };
    }
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "must be https: the injected key must not cross the network in clear (file://, gopher:// and plain \
             http are refused; {ALLOW_HINT})"
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry user information".into());
    }
    let internal = || {
        Err(format!(
            "{host} is a loopback, private, link-local or metadata address; {ALLOW_HINT}"
        ))
    };
    if host.starts_with('[') {
        // A zone (`%25lo`) scopes a link-local address to an interface of this machine: never a public upstream.
        if bare.contains('%') {
            return Err(format!("{host} is a scoped link-local IPv6 address"));
        }
        return match bare.parse::<IpAddr>() {
            Ok(ip) if is_internal(ip) => internal(),
            Ok(_) => Ok(None),
            Err(_) => Err(format!("{host} is not an IPv6 address")),
        };
    }
    let name = bare.trim_end_matches('.');
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(format!("{host} is a loopback name; {ALLOW_HINT}"));
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return if is_internal(ip) {
            internal()
        } else {
            Ok(None)
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
    let port = uri.port_u16().unwrap_or(443);
    Ok(Some((name.to_owned(), port)))
}

/// [`check_upstream`], then, for a host name, resolves it with `resolver` (within [`RESOLVE_TIMEOUT`]) and
/// refuses it unless every address it resolves to passes the same rules. A name that does not resolve is refused:
/// its destination cannot be judged.
///
/// # Errors
/// A message naming the rule the URL breaks; for a name, the address that broke it.
pub async fn check_upstream_resolved(
    url: &str,
    allow: &[String],
    resolver: &Resolver,
) -> Result<(), String> {
    let Some((host, port)) = check_upstream(url, allow)? else {
        return Ok(());
    };
    let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.lookup(&host, port)).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(_) => return Err(format!("{host} does not resolve")),
        Err(_) => {
            return Err(format!(
                "{host} does not resolve (no answer within {} s)",
                RESOLVE_TIMEOUT.as_secs()
            ));
        }
    };
    match addrs.iter().find(|a| is_internal(a.ip())) {
        Some(a) => Err(format!(
            "{host} resolves to {}, a loopback, private, link-local or metadata address; {ALLOW_HINT}",
            a.ip()
        )),
        None => Ok(()),
    }
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

    #[test]
    fn j03_every_ipv6_disguise_of_a_forbidden_address_is_refused() {
        for (form, url) in [
            ("IPv4-compatible", "https://[::127.0.0.1]/"),
            ("IPv4-mapped", "https://[::ffff:169.254.169.254]/"),
            ("IPv4-translated", "https://[::ffff:0:127.0.0.1]/"),
            ("NAT64", "https://[64:ff9b::7f00:1]/"),
            ("NAT64 metadata", "https://[64:ff9b::a9fe:a9fe]/"),
            ("NAT64 local-use", "https://[64:ff9b:1::808:808]/"),
            ("6to4", "https://[2002:7f00:1::]/"),
            ("Teredo", "https://[2001:0:7f00:1::]/"),
            ("link-local with a zone", "https://[fe80::1%25lo]/"),
            ("link-local", "https://[fe80::1]/"),
            ("unique-local", "https://[fc00::1]:8443/"),
            ("IMDS", "https://[fd00:ec2::254]/"),
        ] {
            let refused = check_upstream(url, &[]);
            assert!(refused.is_err(), "{form}: {url} should be refused");
        }
        assert_eq!(check_upstream("https://[2606:4700::1111]/", &[]), Ok(None));
        assert_eq!(check_upstream("https://[64:ff9b::808:808]/", &[]), Ok(None));
    }

    #[test]
    fn refusals_name_the_allow_list_setting() {
        for url in [
            "http://api.example.com/",
            "https://127.0.0.1/",
            "https://localhost/",
        ] {
            let message = check_upstream(url, &[]).unwrap_err();
            assert!(
                message.contains("[admin] upstream_allow_hosts"),
                "{url}: {message}"
            );
        }
    }

    #[tokio::test]
    async fn j03_a_name_is_judged_by_every_address_it_resolves_to() {
        let resolver = Resolver::manual();
        resolver.set("public.test", &["93.184.216.34".parse().unwrap()]);
        resolver.set(
            "mixed.test",
            &[
                "93.184.216.34".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
            ],
        );
        resolver.set("nip.test", &["::ffff:10.0.0.1".parse().unwrap()]);
        resolver.set("gone.test", &[]);
        let check = |url: &'static str, allow: Vec<String>| {
            let resolver = resolver.clone();
            async move { check_upstream_resolved(url, &allow, &resolver).await }
        };
        assert_eq!(check("https://public.test/v1", vec![]).await, Ok(()));
        for url in ["https://mixed.test/", "https://nip.test:8443/"] {
            let message = check(url, vec![]).await.unwrap_err();
            assert!(
                message.contains("resolves to") && message.contains("upstream_allow_hosts"),
                "{url}: {message}"
            );
        }
        assert_eq!(
            check("https://gone.test/", vec![]).await,
            Err("gone.test does not resolve".into())
        );
        // An allowed host is not resolved at all.
        assert_eq!(
            check("https://gone.test/", vec!["gone.test".into()]).await,
            Ok(())
        );
    }
}
