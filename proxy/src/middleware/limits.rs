//! `EnforceLimits`: size and shape limits checked before any other work, from the snapshot's `[limits]`:
//! request-target length (414), header count and total size (431), header names with underscores or values
//! with control or non-ASCII bytes (400), absolute-form targets (400), two `Host` headers or an HTTP/2 `host`
//! other than `:authority` (400), TRACE/CONNECT (405), a declared body over the limit (413, before reading it),
//! and two or an ambiguous `Content-Type` (400). The body is wrapped so an undeclared one that crosses the limit
//! fails mid-stream (413), a malformed one fails with 400 and one that stops arriving with 408, without ever
//! being buffered.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{Method, Request, Version};
use hyper::body::Incoming;
use tower::{Layer, Service};

use crate::body::LimitedBody;
use crate::ctx::Ctx;
use crate::error::{ProxyError, RequestReason};
use crate::middleware::{Req, Resp};

/// Builds [`EnforceLimits`].
#[derive(Clone, Copy, Debug, Default)]
pub struct EnforceLimitsLayer;

impl<S> Layer<S> for EnforceLimitsLayer {
    type Service = EnforceLimits<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EnforceLimits { inner }
    }
}

/// Refuses oversized or malformed requests and limits the body.
#[derive(Clone)]
pub struct EnforceLimits<S> {
    inner: S,
}

impl<S> Service<Request<Incoming>> for EnforceLimits<S>
where
    S: Service<Req, Response = Resp, Error = ProxyError>,
{
    type Response = Resp;
    type Error = ProxyError;
    type Future = Either<Ready<Result<Resp, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let (limit, fault) = match req.extensions().get::<Ctx>() {
            Some(ctx) => (ctx.routes.snapshot.settings.limits, ctx.body_fault.clone()),
            None => return Either::Left(ready(Err(ProxyError::Internal))),
        };
        // RFC 6750 §2.2 defines a token in the body only for form-encoded bodies; only those are scanned.
        let form = match check(&req, &limit).and_then(|()| is_form(req.headers())) {
            Ok(form) => form,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        let req = req.map(|body| {
            let body = LimitedBody::new(body, limit.max_body_bytes, limit.body_idle_timeout, fault);
            if form {
                body.scanning_for_tokens()
            } else {
                body
            }
        });
        Either::Right(self.inner.call(req))
    }
}

fn check<B>(req: &Request<B>, limit: &idguard_config::snapshot::Limits) -> Result<(), ProxyError> {
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > limit.max_uri_bytes {
        return Err(ProxyError::UriTooLong);
    }
    // In HTTP/1 the target must be origin-form; HTTP/2 always carries :authority, so only h1 is checked.
    if req.version() < Version::HTTP_2
        && (req.uri().scheme().is_some() || req.uri().authority().is_some())
    {
        return Err(ProxyError::InvalidRequest(RequestReason::AbsoluteForm));
    }
    let headers = req.headers();
    if headers.len() > limit.max_headers {
        return Err(ProxyError::HeadersTooLarge);
    }
    let mut total = 0usize;
    for (name, value) in headers {
        total += name.as_str().len() + value.len() + 4;
        if total > limit.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge);
        }
        if name.as_str().contains('_') {
            return Err(ProxyError::InvalidRequest(RequestReason::BadHeaderName));
        }
        if !is_clean_value(value.as_bytes()) {
            return Err(ProxyError::InvalidRequest(RequestReason::BadHeaderValue));
        }
    }
    // Two hosts, or an HTTP/2 `host` that is not `:authority` (RFC 9113 §8.3.1), leave it to each reader which
    // one the request is for.
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::InvalidRequest(RequestReason::DuplicateHost));
    }
    if req.version() == Version::HTTP_2
        && let (Some(host), Some(authority)) = (host, req.uri().authority())
        && !host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
    {
        return Err(ProxyError::InvalidRequest(RequestReason::HostMismatch));
    }
    if req.method() == Method::TRACE || req.method() == Method::CONNECT {
        // Before routing there is no node yet: the 405 lists the default methods.
        return Err(ProxyError::MethodNotAllowed(None));
    }
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
        let declared = len.to_str().ok().and_then(|s| s.parse::<u64>().ok());
        if declared.is_none_or(|n| n > limit.max_body_bytes) {
            return Err(ProxyError::BodyTooLarge);
        }
    }
    Ok(())
}

/// Whether the body is form-encoded, from its one `Content-Type`. A second `Content-Type`, or one listing several
/// media types, is refused: the upstream might read the other one, and the token scan would look at the wrong body.
fn is_form(headers: &http::HeaderMap) -> Result<bool, ProxyError> {
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    let Some(value) = types.next() else {
        return Ok(false);
    };
    if types.next().is_some() {
        return Err(ProxyError::InvalidRequest(
            RequestReason::AmbiguousContentType,
        ));
    }
    let bytes = value.as_bytes();
    // Parameters may quote commas (`boundary="a,b"`); the media type itself never holds one.
    let media_type = bytes
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if media_type.contains(&b',') {
        return Err(ProxyError::InvalidRequest(
            RequestReason::AmbiguousContentType,
        ));
    }
    Ok(media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded"))
}

/// Visible ASCII and tab only. A fold without early exit, so the compiler vectorizes it: the scan runs over
/// every header byte of every request, the ~1 KB token included.
fn is_clean_value(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(0x20) < 0x5f) | (b == b'\t'))
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Request, Version};

    use crate::error::{ProxyError, RequestReason};

    fn types(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::CONTENT_TYPE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn one_content_type_naming_one_media_type_decides_the_form_scan() {
        for (values, form) in [
            (&[][..], false),
            (&["application/x-www-form-urlencoded"][..], true),
            (
                &[" Application/X-WWW-Form-URLEncoded ; charset=utf-8"],
                true,
            ),
            (&["application/json"], false),
            (&["multipart/form-data; boundary=\"a,b\""], false),
        ] {
            assert_eq!(super::is_form(&types(values)), Ok(form), "{values:?}");
        }
        let ambiguous = Err(ProxyError::InvalidRequest(
            RequestReason::AmbiguousContentType,
        ));
        for values in [
            &["application/json", "application/x-www-form-urlencoded"][..],
            &["application/json, application/x-www-form-urlencoded"],
        ] {
            assert_eq!(super::is_form(&types(values)), ambiguous, "{values:?}");
        }
    }

    #[test]
    fn hosts_must_be_single_and_in_http2_match_the_authority() {
        let limits = idguard_config::snapshot::Limits {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_uri_bytes: 8192,
            max_body_bytes: 1024,
            header_read_timeout: std::time::Duration::from_secs(1),
            first_bytes_timeout: std::time::Duration::from_secs(1),
            http2_idle_timeout: std::time::Duration::from_secs(1),
            http2_keepalive_interval: std::time::Duration::from_secs(1),
            http2_keepalive_timeout: std::time::Duration::from_secs(1),
            body_idle_timeout: std::time::Duration::from_secs(1),
            max_connections: 1,
            max_connections_per_ip: 1,
        };
        let check = |version, uri: &str, hosts: &[&str]| {
            let mut b = Request::get(uri).version(version);
            for h in hosts {
                b = b.header("host", *h);
            }
            super::check(&b.body(()).unwrap(), &limits).err()
        };
        let bad = |r| Some(ProxyError::InvalidRequest(r));
        assert_eq!(check(Version::HTTP_11, "/x", &["a"]), None);
        assert_eq!(
            check(Version::HTTP_11, "/x", &["a", "a"]),
            bad(RequestReason::DuplicateHost)
        );
        assert_eq!(check(Version::HTTP_2, "http://p:1/x", &[]), None);
        assert_eq!(check(Version::HTTP_2, "http://p:1/x", &["P:1"]), None);
        assert_eq!(
            check(Version::HTTP_2, "http://p:1/x", &["q:1"]),
            bad(RequestReason::HostMismatch)
        );
        assert_eq!(
            check(Version::HTTP_2, "http://p:1/x", &["p:1", "p:1"]),
            bad(RequestReason::DuplicateHost)
        );
    }

    #[test]
    fn header_values_with_control_or_non_ascii_bytes_are_unclean() {
        assert!(super::is_clean_value(b"Bearer abc.DEF-_~ \t!"));
        for bad in [&b"a\x00b"[..], b"a\x7fb", b"caf\xc3\xa9", b"a\rb", b"\x1f"] {
            assert!(!super::is_clean_value(bad), "{bad:?}");
        }
    }
}
