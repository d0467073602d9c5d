//! `Observe`: the outermost layer. It gives the request its id, pins the routing table in force, turns any
//! [`ProxyError`] into its response (the one mapping in [`crate::error`]), stamps `x-request-id` on the response,
//! counts the request (and, apart, idguard's own refusal of it), and writes the single access-log line. Every
//! request's outcome is logged here, once; a layer below logs only a cause that it alone can see (an exchange
//! refused, an upstream that failed), never a second line for the same outcome.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::HeaderName;
use http::{Request, Response};
use hyper::body::Incoming;
use tower::{Layer, Service};

use crate::body::ProxyBody;
use crate::ctx::{Ctx, LogFields};
use crate::error::ProxyError;
use crate::metrics::status_class;
use crate::state::Shared;

/// Longest path written to a log line.
const MAX_LOGGED_PATH: usize = 256;

/// Builds [`Observe`] for one connection.
#[derive(Clone)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
    peer: SocketAddr,
    tls: bool,
}

impl ObserveLayer {
    /// For a connection from `peer`.
    pub fn new(shared: Arc<Shared>, peer: SocketAddr, tls: bool) -> Self {
        Self { shared, peer, tls }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            shared: self.shared.clone(),
            peer: self.peer,
            tls: self.tls,
            inner,
        }
    }
}

/// Request ids, error responses, metrics and the access log.
#[derive(Clone)]
pub struct Observe<S> {
    shared: Arc<Shared>,
    peer: SocketAddr,
    tls: bool,
    inner: S,
}

impl<S> Service<Request<Incoming>> for Observe<S>
where
    S: Service<Request<Incoming>, Response = Response<ProxyBody>, Error = ProxyError>,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let start = Instant::now();
        let request_id = self.shared.next_request_id();
        let routes = self.shared.routes.load_full();
        let generation = routes.snapshot.generation;
        let log = Arc::new(LogFields::default());
        let method = req.method().clone();
        let path: String = req.uri().path().chars().take(MAX_LOGGED_PATH).collect();
        req.extensions_mut().insert(Ctx {
            request_id: request_id.clone(),
            routes,
            peer: self.peer,
            tls: self.tls,
            body_fault: Arc::default(),
            log: log.clone(),
            route: None,
            identity: None,
            token: None,
            subject_token: None,
            obtained: None,
        });
        let fut = self.inner.call(req);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (mut resp, reason, denied) = match fut.await {
                Ok(resp) => {
                    let reason = log.reason.get().copied().unwrap_or("forwarded");
                    (resp, reason, false)
                }
                Err(err) => {
                    let err = crate::middleware::fresh::while_incomplete(
                        err,
                        shared.readiness.store_topology_missing(),
                    );
                    let reason = err.reason();
                    let denied = err.is_denial();
                    (err.into_response(&request_id), reason, denied)
                }
            };
            resp.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), request_id.clone());
            let status = resp.status().as_u16();
            let node = log.node.get().map_or("_none", |n| &**n);
            let agent = log.agent.get().map_or("_none", |a| &**a);
            let decision = log.decision.get().copied().unwrap_or("none");
            let elapsed = start.elapsed();
            shared
                .metrics
                .requests
                .with_label_values(&[node, agent, status_class(status)])
                .inc();
            // Only idguard's own refusals: an upstream's 4xx passed through is a request, not a denial.
            if denied {
                shared
                    .metrics
                    .denials
                    .with_label_values(&[node, agent])
                    .inc();
            }
            shared
                .metrics
                .duration
                .with_label_values(&[node])
                .observe(elapsed.as_secs_f64());
            tracing::info!(
                target: "idguard::access",
                request_id = request_id.to_str().unwrap_or_default(),
                method = %method,
                path = %path,
                node,
                agent,
                decision,
                status,
                reason,
                generation,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
            Ok(resp)
        })
    }
}
