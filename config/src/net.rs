//! Which network addresses idguard refuses to send a request to on someone else's say-so, and the one seam through
//! which it resolves host names.
//!
//! Two rules, used by the admin API when an upstream is written and by the proxy's connector when it connects:
//! - [`is_internal`]: loopback, private, link-local, CGNAT (which holds the 100.100.100.200 metadata address),
//!   unspecified, multicast and reserved IPv4 space, the IPv6 equivalents (`::1`, `fc00::/7`, `fe80::/10`, …),
//!   the local-use NAT64 prefix `64:ff9b:1::/48`, and **every IPv6 form that embeds a forbidden IPv4 address**:
//!   IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, NAT64
//!   `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::/48` and Teredo `2001::/32` (server and client addresses).
//! - [`is_metadata`]: only the cloud-metadata and link-local ranges (169.254.0.0/16, 100.100.100.200,
//!   `fe80::/10`, `fd00:ec2::254`) and the IPv6 forms embedding them.
//!
//! [`Resolver`] is the system resolver (`getaddrinfo` through tokio), or in tests one whose answers a test sets,
//! so that a name can resolve to one address when it is written and another when it is connected to (DNS
//! rebinding) without touching real DNS.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

/// The system resolver, or one with answers set by a test. Cheap to clone; clones share the answers.
#[derive(Clone, Default)]
pub struct Resolver {
    /// `None`: the system resolver. `Some`: these answers first, the system resolver for other names.
    answers: Option<Arc<RwLock<Answers>>>,
}

/// A manual resolver's answers, by lower-cased name without a trailing dot.
type Answers = HashMap<String, Vec<IpAddr>>;

// === impl Resolver ===

impl Resolver {
    /// The system resolver.
    pub fn system() -> Self {
        Self::default()
    }

    /// A resolver that answers the names given to [`Resolver::set`] itself and asks the system for the rest.
    pub fn manual() -> Self {
        Self {
            answers: Some(Arc::default()),
        }
    }

    /// Makes a manual resolver answer `host` with `addrs` from now on (an empty list: the name does not
    /// resolve). Returns `false` and does nothing on the system resolver.
    pub fn set(&self, host: &str, addrs: &[IpAddr]) -> bool {
        let Some(answers) = &self.answers else {
            return false;
        };
        answers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(normalize(host), addrs.to_vec());
        true
    }

    /// The addresses `host` resolves to, each with `port`.
    ///
    /// # Errors
    /// The resolver's failure; a name a manual resolver was told does not resolve is `NotFound`.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if let Some(answers) = &self.answers {
            let set = answers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&normalize(host))
                .cloned();
            if let Some(addrs) = set {
                if addrs.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::NotFound, "no such host"));
                }
                return Ok(addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect());
            }
        }
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.answers {
            None => "Resolver(system)",
            Some(_) => "Resolver(manual)",
        })
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `ip` is an address no API-written upstream may reach: loopback, private, link-local, metadata,
/// CGNAT, unspecified, multicast or reserved space, in any IPv4 or IPv6 spelling.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            embedded_v4(v6).into_iter().flatten().any(internal_v4)
                || v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (holds AWS IMDS fd00:ec2::254)
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed inside sites)
                || (s[0] & 0xff00) == 0xff00 // multicast
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64 64:ff9b:1::/48
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        }
    }
}

/// Whether `ip` is a cloud-metadata or link-local address (169.254.0.0/16, 100.100.100.200, `fe80::/10`,
/// `fd00:ec2::254`), in any IPv4 or IPv6 spelling: what no upstream reached by name may resolve to.
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => metadata_v4(v4),
        IpAddr::V6(v6) => {
            embedded_v4(v6).into_iter().flatten().any(metadata_v4)
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        }
    }
}

/// The IPv4 addresses an IPv6 address carries and would reach: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 well-known prefix (`64:ff9b::a.b.c.d`), 6to4
/// (`2002:AABB:CCDD::/48`), and Teredo (`2001:0:SSSS:SSSS::/32`: the server, and the client stored inverted in
/// the last 32 bits).
pub fn embedded_v4(v6: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let last = v4(s[6], s[7]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => {
            [Some(last), None]
        }
        [0x0064, 0xff9b, 0, 0, 0, 0, ..] => [Some(last), None],
        [0x2002, hi, lo, ..] => [Some(v4(hi, lo)), None],
        [0x2001, 0, hi, lo, ..] => [Some(v4(hi, lo)), Some(v4(!s[6], !s[7]))],
        _ => [None, None],
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || a >= 240 // reserved 240.0.0.0/4, and the broadcast address
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10, which holds 100.100.100.200
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (NAT64 discovery, DS-Lite)
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
}

fn metadata_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_ipv6_form_of_a_forbidden_ipv4_address_is_internal() {
        for (form, addr) in [
            ("IPv4-mapped", "::ffff:127.0.0.1"),
            ("IPv4-mapped metadata", "::ffff:169.254.169.254"),
            ("IPv4-compatible", "::127.0.0.1"),
            ("IPv4-compatible private", "::10.0.0.1"),
            ("IPv4-translated", "::ffff:0:127.0.0.1"),
            ("NAT64 well-known prefix", "64:ff9b::7f00:1"),
            ("NAT64 metadata", "64:ff9b::169.254.169.254"),
            ("NAT64 local-use /48", "64:ff9b:1::8.8.8.8"),
            ("6to4 loopback", "2002:7f00:1::"),
            ("6to4 private", "2002:c0a8:0101::1"),
            ("Teredo server", "2001:0:7f00:1::"),
            ("Teredo client (inverted)", "2001:0:808:808:0:0:80ff:fffe"),
            ("link-local", "fe80::1"),
            ("unique-local", "fd12:3456::1"),
            ("unique-local fc", "fc00::1"),
            ("AWS IMDS", "fd00:ec2::254"),
            ("site-local", "fec0::1"),
            ("multicast", "ff02::1"),
            ("loopback", "::1"),
            ("unspecified", "::"),
        ] {
            assert!(is_internal(ip(addr)), "{form}: {addr} should be internal");
        }
    }

    #[test]
    fn ipv4_internal_ranges_and_public_addresses() {
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.5.4",
            "192.168.0.1",
            "169.254.169.254",
            "100.100.100.200",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
        ] {
            assert!(is_internal(ip(addr)), "{addr} should be internal");
        }
        for addr in [
            "8.8.8.8",
            "93.184.216.34",
            "100.128.0.1",
            "2606:4700::1111",
            "2002:808:808::1",              // 6to4 of a public address
            "64:ff9b::808:808",             // NAT64 of a public address
            "::ffff:8.8.8.8",               // mapped public
            "2001:0:808:808:0:0:f7f7:f7f7", // Teredo, both ends public
        ] {
            assert!(!is_internal(ip(addr)), "{addr} should be public");
        }
    }

    #[test]
    fn metadata_is_only_the_metadata_and_link_local_ranges() {
        for addr in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::",
        ] {
            assert!(is_metadata(ip(addr)), "{addr} should be metadata");
        }
        for addr in [
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "fd00::1",
            "100.64.0.1",
            "8.8.8.8",
        ] {
            assert!(!is_metadata(ip(addr)), "{addr} is not metadata");
        }
    }

    #[tokio::test]
    async fn a_manual_resolver_answers_what_it_was_told_and_clones_share_it() {
        let resolver = Resolver::manual();
        let twin = resolver.clone();
        assert!(twin.set("Evil.Test.", &[ip("127.0.0.1")]));
        assert_eq!(
            resolver.lookup("evil.test", 8443).await.unwrap(),
            vec![SocketAddr::new(ip("127.0.0.1"), 8443)]
        );
        twin.set("evil.test", &[]);
        assert_eq!(
            resolver.lookup("evil.test", 1).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!Resolver::system().set("evil.test", &[]));
    }
}
