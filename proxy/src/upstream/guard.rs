//! The connect-time address check (corpus J02a, J03): every address an upstream's host resolves to is checked
//! against the route's [`AddressPolicy`] before any connection is opened, and the connector then connects only
//! to the addresses it checked (the name is resolved once per connection, here), so a name that resolved to a
//! public address when it was written and to 127.0.0.1 now (DNS rebinding) is refused. An IP literal skips
//! resolution in hyper-util's connector, so [`GuardedConnector`] checks literals itself.
//!
//! A refusal is an [`UpstreamBlocked`] error inside the client's error chain; [`blocked`] finds it.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use idguard_config::Resolver;
use idguard_config::net::{is_internal, is_metadata};
use tokio::net::TcpStream;
use tower::Service;

type BoxError = Box<dyn StdError + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Which addresses a route's upstream (or token endpoint) may be reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Public addresses only: an object written through the admin API whose host is not in
    /// `[admin] upstream_allow_hosts`. Loopback, private, link-local, metadata and the rest of
    /// [`is_internal`] are refused, by name or as a literal.
    PublicOnly,
    /// Anything but the cloud-metadata and link-local ranges ([`is_metadata`]) reached by name: the routing
    /// file's objects (an operator may point them at internal hosts) and allow-listed hosts. A literal address
    /// is what its writer chose and is not checked.
    NoMetadataByName,
}

/// The connection was refused because the upstream's address is one its route may not reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves to {addr}, an address this route may not reach")]
pub struct UpstreamBlocked {
    /// The host as the URL names it.
    pub host: String,
    /// The refused address.
    pub addr: IpAddr,
}

/// A hyper-util resolver that checks every address a name resolves to against a policy.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: AddressPolicy,
    resolver: Resolver,
}

/// hyper-util's connector with a [`GuardedResolver`], also checking IP literals.
#[derive(Clone, Debug)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: AddressPolicy,
}

// === impl AddressPolicy ===

impl AddressPolicy {
    /// The policy for an upstream `host` of an object written through the API (`api`) or the file, given the
    /// admin API's allow-list.
    pub fn for_host(api: bool, host: &str, allow: &[String]) -> Self {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if api && !allow.iter().any(|a| a.eq_ignore_ascii_case(bare)) {
            AddressPolicy::PublicOnly
        } else {
            AddressPolicy::NoMetadataByName
        }
    }

    /// Whether a name resolving to `ip` is refused.
    fn refuses_resolved(self, ip: IpAddr) -> bool {
        match self {
            AddressPolicy::PublicOnly => is_internal(ip),
            AddressPolicy::NoMetadataByName => is_metadata(ip),
        }
    }

    /// Whether the literal address `ip` in a URL is refused.
    fn refuses_literal(self, ip: IpAddr) -> bool {
        match self {
            AddressPolicy::PublicOnly => is_internal(ip),
            AddressPolicy::NoMetadataByName => false,
        }
    }
}

// === impl GuardedResolver ===

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let Self { policy, resolver } = self.clone();
        Box::pin(async move {
            // The connector sets the URL's port on every address afterwards.
            let addrs = resolver.lookup(name.as_str(), 0).await?;
            if let Some(a) = addrs.iter().find(|a| policy.refuses_resolved(a.ip())) {
                return Err(UpstreamBlocked {
                    host: name.as_str().to_owned(),
                    addr: a.ip(),
                }
                .into());
            }
            Ok(addrs.into_iter())
        })
    }
}

// === impl GuardedConnector ===

impl GuardedConnector {
    /// hyper-util's connector resolving with `resolver` and refusing what `policy` refuses.
    pub fn new(policy: AddressPolicy, resolver: Resolver) -> Self {
        Self {
            inner: HttpConnector::new_with_resolver(GuardedResolver { policy, resolver }),
            policy,
        }
    }

    /// The wrapped connector, to set its TCP options.
    pub fn tcp(&mut self) -> &mut HttpConnector<GuardedResolver> {
        &mut self.inner
    }
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let literal = dst
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok().map(|ip| (h, ip)));
        if let Some((host, ip)) = literal
            && self.policy.refuses_literal(ip)
        {
            let blocked = UpstreamBlocked {
                host: host.to_owned(),
                addr: ip,
            };
            return Box::pin(std::future::ready(Err(blocked.into())));
        }
        let connecting = self.inner.call(dst);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// The [`UpstreamBlocked`] refusal in `err`'s chain of causes, if that is why it failed.
pub fn blocked<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a UpstreamBlocked> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(b) = e.downcast_ref::<UpstreamBlocked>() {
            return Some(b);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn api_objects_are_held_to_public_addresses_unless_their_host_is_allowed() {
        let allow = vec!["127.0.0.1".to_owned(), "::1".to_owned()];
        assert_eq!(
            AddressPolicy::for_host(true, "api.example.com", &allow),
            AddressPolicy::PublicOnly
        );
        for (api, host) in [
            (true, "127.0.0.1"),
            (true, "[::1]"),
            (false, "api.example.com"),
        ] {
            assert_eq!(
                AddressPolicy::for_host(api, host, &allow),
                AddressPolicy::NoMetadataByName,
                "{host}"
            );
        }
    }

    #[test]
    fn what_each_policy_refuses() {
        use AddressPolicy::{NoMetadataByName as File, PublicOnly as Api};
        for (policy, addr, by_name, literal) in [
            (Api, "127.0.0.1", true, true),
            (Api, "::ffff:10.0.0.1", true, true),
            (Api, "169.254.169.254", true, true),
            (Api, "93.184.216.34", false, false),
            (File, "127.0.0.1", false, false),
            (File, "10.0.0.1", false, false),
            (File, "169.254.169.254", true, false),
            (File, "fd00:ec2::254", true, false),
            (File, "100.100.100.200", true, false),
        ] {
            assert_eq!(
                (
                    policy.refuses_resolved(ip(addr)),
                    policy.refuses_literal(ip(addr))
                ),
                (by_name, literal),
                "{policy:?} {addr}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_refused_address_fails_before_any_connection() {
        let resolver = Resolver::manual();
        resolver.set("rebound.test", &[ip("93.184.216.34"), ip("127.0.0.1")]);
        let guarded = GuardedResolver {
            policy: AddressPolicy::PublicOnly,
            resolver: resolver.clone(),
        };
        let err = guarded
            .oneshot("rebound.test".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            blocked(&*err),
            Some(&UpstreamBlocked {
                host: "rebound.test".into(),
                addr: ip("127.0.0.1")
            })
        );
        let connector = GuardedConnector::new(AddressPolicy::PublicOnly, resolver);
        let err = connector
            .oneshot("http://[::ffff:127.0.0.1]:9/".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(blocked(&*err).map(|b| b.addr), Some(ip("::ffff:127.0.0.1")));
    }
}
