//! `RouteRequest`: strict path check, then prefix → route (`/llm/`, `/ext/`, `/svc/`, `/agents/`). Runs before token verification so a path escape is a
//! 400 and an unknown node a 404 whatever the token, and so every later stage works on one checked path.

use http::Method;

use crate::ctx::{Ctx, Matched};
use crate::error::{ProxyError, RequestReason};
use crate::middleware::{Req, RequestStep};
use crate::path;
use crate::routes::RouteClass;

/// Matches `/llm/{node}/…`, `/ext/{node}/…`, `/svc/{service}/…` and `/agents/{agent}/…`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteRequest;

impl RequestStep for RouteRequest {
    fn apply(&self, req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let raw_path = req.uri().path();
        path::check_allowing_trailing_slash(raw_path)
            .map_err(|()| ProxyError::InvalidRequest(RequestReason::PathEscape))?;
        let (class, after) = if let Some(after) = raw_path.strip_prefix("/llm/") {
            (RouteClass::Llm, after)
        } else if let Some(after) = raw_path.strip_prefix("/ext/") {
            (RouteClass::External, after)
        } else if let Some(after) = raw_path.strip_prefix("/svc/") {
            (RouteClass::Service, after)
        } else if let Some(after) = raw_path.strip_prefix("/agents/") {
            (RouteClass::Inbound, after)
        } else {
            return Err(ProxyError::UnknownRoute);
        };
        let (id, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let node = ctx
            .routes
            .route(class, id)
            .ok_or(ProxyError::UnknownRoute)?
            .clone();
        let _ = ctx.log.node.set(node.id.clone());
        let method = req.method();
        if *method == Method::TRACE || *method == Method::CONNECT || !node.methods.contains(method)
        {
            return Err(ProxyError::MethodNotAllowed(Some(Box::new(
                node.methods.allow().clone(),
            ))));
        }
        ctx.route = Some(Matched {
            node,
            rest: rest.to_owned(),
            query: req.uri().query().map(str::to_owned),
        });
        Ok(())
    }
}
