//! Authorizations: outbound (`/admin/v1/agents/{id}/outbound/{node}`: an agent may call a node or an enterprise
//! service, with scopes), inbound (`/admin/v1/agents/{id}/inbound/{client}`: a client application may call an
//! agent, with the agent's permission scope), and the agent permission itself (`/admin/v1/agents/{id}/permission`).
//! Also the cascades other resources use: withdrawing the authorizations that name a deleted object, and narrowing
//! them when a permission goes.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use idguard_config::raw::{RawAgentPermission, RawConfig, RawEdge, RawInbound};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::agents::Agents;
use super::core::{
    Current, Resource, Result, answer_stored, change, delete_of, get_of, if_match, parse, to_value,
    upsert,
};
use super::write::Plan;
use idguard_config::defaults;

/// Outbound authorizations, id `agent/node`.
pub(super) struct Outbound;

/// Inbound authorizations, id `client/agent`.
pub(super) struct Inbound;

/// An authorization: scopes on an edge.
pub(super) trait Edge: Resource {
    /// Its scopes.
    fn scopes(raw: &mut Self::Raw) -> &mut Vec<String>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutEdge {
    #[serde(default)]
    scopes: Vec<String>,
}

// === impl Outbound ===

impl Resource for Outbound {
    const KIND: Kind = Kind::Outbound;
    type Raw = RawEdge;

    fn file(file: &RawConfig) -> &[RawEdge] {
        &file.outbound
    }

    fn id(raw: &RawEdge) -> Cow<'_, str> {
        Cow::Owned(format!("{}/{}", raw.agent, raw.node))
    }

    fn view(_: &AdminApi, e: &RawEdge) -> Value {
        json!({"agent": e.agent, "node": e.node, "scopes": e.scopes})
    }
}

impl Edge for Outbound {
    fn scopes(raw: &mut RawEdge) -> &mut Vec<String> {
        &mut raw.scopes
    }
}

// === impl Inbound ===

impl Resource for Inbound {
    const KIND: Kind = Kind::Inbound;
    type Raw = RawInbound;

    fn file(file: &RawConfig) -> &[RawInbound] {
        &file.inbound
    }

    fn id(raw: &RawInbound) -> Cow<'_, str> {
        Cow::Owned(format!("{}/{}", raw.client, raw.agent))
    }

    fn view(_: &AdminApi, e: &RawInbound) -> Value {
        json!({"client": e.client, "agent": e.agent, "scopes": e.scopes})
    }
}

impl Edge for Inbound {
    fn scopes(raw: &mut RawInbound) -> &mut Vec<String> {
        &mut raw.scopes
    }
}

/// The authorization and permission routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route(
            "/admin/v1/agents/{id}/outbound/{node}",
            get(get_outbound).put(put_outbound).delete(delete_outbound),
        )
        .route(
            "/admin/v1/agents/{id}/inbound/{client}",
            get(get_inbound).put(put_inbound).delete(delete_inbound),
        )
        .route("/admin/v1/agents/{id}/permission", put(put_permission))
}

/// `GET /admin/v1/agents/{id}/outbound/{node}`: the outbound authorization, the file's or the store's (404 when
/// the agent may not call the node).
async fn get_outbound(
    State(api): State<AdminApi>,
    Path((agent, node)): Path<(String, String)>,
) -> Result<Response> {
    get_of::<Outbound>(&api, &format!("{agent}/{node}")).await
}

/// `GET /admin/v1/agents/{id}/inbound/{client}`: the inbound authorization, the file's or the store's (404 when
/// the client may not call the agent).
async fn get_inbound(
    State(api): State<AdminApi>,
    Path((agent, client)): Path<(String, String)>,
) -> Result<Response> {
    get_of::<Inbound>(&api, &format!("{client}/{agent}")).await
}

/// `PUT /admin/v1/agents/{id}/outbound/{node}`: grant (or change the scopes of) an outbound authorization.
async fn put_outbound(
    State(api): State<AdminApi>,
    Path((agent, node)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PutEdge = parse(&body)?;
    let raw = RawEdge {
        agent,
        node,
        scopes: req.scopes,
    };
    put_edge::<Outbound>(&api, raw, &headers).await
}

/// `DELETE /admin/v1/agents/{id}/outbound/{node}`: withdraw the outbound authorization.
async fn delete_outbound(
    State(api): State<AdminApi>,
    Path((agent, node)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_of::<Outbound>(&api, format!("{agent}/{node}"), if_match(&headers), false).await
}

/// `PUT /admin/v1/agents/{id}/inbound/{client}`: grant (or change) the client's inbound authorization: which of
/// the agent's permissions it may use.
async fn put_inbound(
    State(api): State<AdminApi>,
    Path((agent, client)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PutEdge = parse(&body)?;
    let raw = RawInbound {
        client,
        agent,
        scopes: req.scopes,
    };
    put_edge::<Inbound>(&api, raw, &headers).await
}

/// `DELETE /admin/v1/agents/{id}/inbound/{client}`: withdraw the inbound authorization.
async fn delete_inbound(
    State(api): State<AdminApi>,
    Path((agent, client)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_of::<Inbound>(&api, format!("{client}/{agent}"), if_match(&headers), false).await
}

/// Creates (201) or replaces (200) an API-managed authorization; the file's are refused.
async fn put_edge<E: Edge>(api: &AdminApi, raw: E::Raw, headers: &HeaderMap) -> Result<Response> {
    let id = E::id(&raw).into_owned();
    let (status, version) = upsert::<E>(api, id, &raw, if_match(headers)).await?;
    Ok(answer_stored::<E>(api, status, &raw, version))
}

/// `PUT /admin/v1/agents/{id}/permission`: the agent's permission — name, scope (default `agent.access`), mode
/// `auto` or `manual`, and in manual mode the users, groups and organizations it is granted to. A scope that
/// changes is withdrawn from every API-managed inbound authorization that granted the old one.
async fn put_permission(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let permission: RawAgentPermission = parse(&body)?;
    let agent = id.clone();
    let (raw, version, ()) =
        change::<Agents, _>(&api, id, if_match(&headers), move |_, cur, raw, plan| {
            let scope = permission
                .scope
                .clone()
                .unwrap_or_else(|| defaults::AGENT_PERMISSION_SCOPE.into());
            raw.permission = Some(permission);
            narrow::<Inbound>(cur, plan, |e| e.agent == agent, |s| s == scope)
        })
        .await?;
    Ok(answer_stored::<Agents>(&api, StatusCode::OK, &raw, version))
}

/// Adds to `plan` the deletion of every stored authorization of kind `E` that `names` the object going away.
pub(super) fn withdraw<E: Edge>(
    cur: Current<'_>,
    plan: &mut Plan,
    names: impl Fn(&E::Raw) -> bool,
) {
    for (o, edge) in cur.each::<E>() {
        if names(&edge) {
            plan.push_delete(o);
        }
    }
}

/// Adds to `plan` the narrowing of every stored authorization of kind `E` that `applies` to the changed object:
/// only the scopes `kept` stay.
pub(super) fn narrow<E: Edge>(
    cur: Current<'_>,
    plan: &mut Plan,
    applies: impl Fn(&E::Raw) -> bool,
    kept: impl Fn(&str) -> bool,
) -> Result<()> {
    for (o, mut edge) in cur.each::<E>() {
        if !applies(&edge) || E::scopes(&mut edge).iter().all(|s| kept(s)) {
            continue;
        }
        E::scopes(&mut edge).retain(|s| kept(s));
        plan.push_update(o, to_value(&edge)?);
    }
    Ok(())
}
