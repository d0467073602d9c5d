//! The request-path layers, one concern each. Their order lives in [`crate::stack`].
//!
//! Most stages are synchronous checks or rewrites of the request: they implement [`RequestStep`] and run inside
//! [`StepLayer`], whose future is either an immediate error or the inner service's own future (no allocation).
//! Stages that must await ([`verify_token::VerifyAgentToken`] when a key refetch is needed) or that change the
//! body type ([`limits::EnforceLimits`]) or wrap the whole exchange ([`observe::Observe`]) are full services.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::{LimitedBody, ProxyBody};
use crate::ctx::Ctx;
use crate::error::ProxyError;

pub mod authorize;
pub mod fresh;
pub mod inject;
pub mod limits;
pub mod observe;
pub mod obtain;
pub mod route;
pub mod strip;
pub mod verify_token;

/// The request type below [`limits::EnforceLimits`].
pub type Req = Request<LimitedBody>;
/// The response type of every stage.
pub type Resp = Response<ProxyBody>;

/// One synchronous stage: inspect or rewrite the request and its [`Ctx`], or refuse it.
pub trait RequestStep: Clone + Send + Sync + 'static {
    /// Runs the stage.
    ///
    /// # Errors
    /// The [`ProxyError`] that ends the request here.
    fn apply(&self, req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError>;
}

/// Wraps a service with a [`RequestStep`].
#[derive(Clone)]
pub struct StepLayer<T> {
    step: T,
}

impl<T> StepLayer<T> {
    /// A layer running `step` before the inner service.
    pub fn new(step: T) -> Self {
        Self { step }
    }
}

impl<T: Clone, S> Layer<S> for StepLayer<T> {
    type Service = Step<T, S>;
    fn layer(&self, inner: S) -> Self::Service {
        Step {
            step: self.step.clone(),
            inner,
        }
    }
}

/// The service [`StepLayer`] builds.
#[derive(Clone)]
pub struct Step<T, S> {
    step: T,
    inner: S,
}

// === impl Step ===

impl<T, S> Service<Req> for Step<T, S>
where
    T: RequestStep,
    S: Service<Req, Response = Resp, Error = ProxyError>,
{
    type Response = Resp;
    type Error = ProxyError;
    type Future = Either<Ready<Result<Resp, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        // Take the context out while the step borrows the request mutably, then put it back.
        let Some(mut ctx) = req.extensions_mut().remove::<Ctx>() else {
            return Either::Left(ready(Err(ProxyError::Internal)));
        };
        let outcome = self.step.apply(&mut req, &mut ctx);
        req.extensions_mut().insert(ctx);
        match outcome {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(e) => Either::Left(ready(Err(e))),
        }
    }
}
