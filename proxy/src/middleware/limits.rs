//! `EnforceLimits`: size and shape limits checked before any other work, from the snapshot's `[limits]`:
//! request-target length (414), header count and total size (431), header names with underscores or values
//! with control or non-ASCII bytes (400), absolute-form targets (400), TRACE/CONNECT (405), and a declared body
//! over the limit (413, before reading it). The body is wrapped so an undeclared one that crosses the limit
//! fails mid-stream (413) without ever being buffered.

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
        let (limit, tripped, token) = match req.extensions().get::<Ctx>() {
            Some(ctx) => (
                ctx.routes.snapshot.settings.limits,
                ctx.body_tripped.clone(),
                ctx.body_token.clone(),
            ),
            None => return Either::Left(ready(Err(ProxyError::Internal))),
        };
        if let Err(e) = check(&req, &limit) {
            return Either::Left(ready(Err(e)));
        }
        // RFC 6750 §2.2 defines a token in the body only for form-encoded bodies; only those are scanned.
        let form = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let req = req.map(|body| {
            let body = LimitedBody::new(body, limit.max_body_bytes, tripped);
            if form {
                body.scanning_for_tokens(token)
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

/// Visible ASCII and tab only. A fold without early exit, so the compiler vectorizes it: the scan runs over
/// every header byte of every request, the ~1 KB token included.
fn is_clean_value(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(0x20) < 0x5f) | (b == b'\t'))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_with_control_or_non_ascii_bytes_are_unclean() {
        assert!(super::is_clean_value(b"Bearer abc.DEF-_~ \t!"));
        for bad in [&b"a\x00b"[..], b"a\x7fb", b"caf\xc3\xa9", b"a\rb", b"\x1f"] {
            assert!(!super::is_clean_value(bad), "{bad:?}");
        }
    }
}
