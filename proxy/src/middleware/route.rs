//! `RouteRequest`: strict path check, then prefix → node. Runs before token verification so a path escape is a
//! 400 and an unknown node a 404 whatever the token, and so every later stage works on one checked path.

use http::Method;
use idguard_config::snapshot::NodeKind;

use crate::ctx::{Ctx, Matched};
use crate::error::{ProxyError, RequestReason};
use crate::middleware::{Req, RequestStep};
use crate::path;

/// Matches `/llm/{node}/…` and `/ext/{node}/…`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteRequest;

impl RequestStep for RouteRequest {
    fn apply(&self, req: &mut Req, ctx: &mut Ctx) -> Result<(), ProxyError> {
        let raw_path = req.uri().path();
        path::check_allowing_trailing_slash(raw_path)
            .map_err(|()| ProxyError::InvalidRequest(RequestReason::PathEscape))?;
        let (kind, after) = if let Some(after) = raw_path.strip_prefix("/llm/") {
            (NodeKind::Llm, after)
        } else if let Some(after) = raw_path.strip_prefix("/ext/") {
            (NodeKind::External, after)
        } else {
            return Err(ProxyError::UnknownRoute);
        };
        let (id, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let node = ctx
            .routes
            .node(kind, id)
            .ok_or(ProxyError::UnknownRoute)?
            .clone();
        let _ = ctx.log.node.set(node.id.clone());
        let method = req.method();
        if *method == Method::TRACE || *method == Method::CONNECT || !node.methods.contains(method)
        {
            return Err(ProxyError::MethodNotAllowed);
        }
        ctx.route = Some(Matched {
            node,
            rest: rest.to_owned(),
            query: req.uri().query().map(str::to_owned),
        });
        Ok(())
    }
}
