//! An agent's topology: `GET /admin/v1/agents/{id}/topology`, what a diagram draws — the agent, the nodes and
//! enterprise services it may call (with the credentials the nodes use), the client applications that may call
//! it, and the edges between them with their scopes, from the routing file and the store together. Every node but
//! the agent lists who uses it (`used_by`) across the whole topology, not only this agent: agents for a node or a
//! client, nodes for a credential.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use idguard_config::Snapshot;
use idguard_config::store::Kind;
use serde_json::json;

use super::AdminApi;
use super::core::{Result, not_found};
use super::usage_graph::{agents_admitting_in, agents_calling_in, nodes_using_in};
use crate::error::{AdminError, Internal};

/// The topology route.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new().route("/admin/v1/agents/{id}/topology", get(agent))
}

/// `GET /admin/v1/agents/{id}/topology`: the agent's diagram — the agent, the nodes it may call (with their
/// credentials), the clients that may call it, and the edges between them, from the file and the store together.
async fn agent(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    let (file, stored) = api.blocking(|api| Ok((api.file()?, api.stored()?))).await?;
    // Built from the file and the store as they are now, not the snapshot in force: a change shows at once,
    // before the reload it triggered has been applied. A topology that does not validate is not the caller's
    // fault here: an internal error.
    let snapshot = api.build(file, &stored).map_err(|e| match e {
        AdminError::Invalid(errors) => {
            Internal::Config(format!("{} validation errors", errors.len())).into()
        }
        other => other,
    })?;
    let view = of(&snapshot, &id).ok_or_else(|| not_found(Kind::Agent, &id))?;
    Ok(Json(view).into_response())
}

// === impl AdminApi ===

impl AdminApi {
    /// The agent's topology (as `GET /admin/v1/agents/{id}/topology` answers it) in the snapshot in force, without
    /// reading the routing file or the store: what the console's diagram draws. `None` for an unknown agent. A
    /// write through this replica is in force when it answers ([`AdminApi::wait_for_data_plane`]); one through
    /// another replica shows once this one has reloaded.
    pub fn topology_in_force(&self, id: &str) -> Option<serde_json::Value> {
        of(&self.snapshot(), id)
    }
}

/// `id`'s topology in `snapshot`: the agent, its nodes, clients and credentials, and the edges between them.
fn of(snapshot: &Snapshot, id: &str) -> Option<serde_json::Value> {
    let agent = snapshot.agents.get(id)?;
    let mut nodes = vec![
        json!({"kind": "agent", "id": &*agent.id, "name": agent.name, "audience": agent.audience, "enabled": agent.enabled}),
    ];
    let mut edges = Vec::new();
    let mut credentials = std::collections::BTreeSet::new();
    let mut reachable: Vec<_> = snapshot
        .edges
        .iter()
        .filter_map(|(node, by_agent)| {
            by_agent
                .get(id)
                .map(|e| (node.clone(), e.required_scopes.clone()))
        })
        .collect();
    reachable.sort();
    for (node_id, scopes) in reachable {
        let Some(node) = snapshot.nodes.get(&node_id) else {
            continue;
        };
        let used_by = agents_calling_in(snapshot, &node.id).to_json();
        nodes.push(json!({"kind": node.kind.as_str(), "id": &*node.id, "name": node.name, "credential": &*node.credential, "used_by": used_by}));
        let scopes: Vec<&str> = scopes.iter().map(|s| &**s).collect();
        edges.push(
            json!({"kind": "outbound", "from": &*agent.id, "to": &*node.id, "scopes": scopes}),
        );
        edges.push(json!({"kind": "uses", "from": &*node.id, "to": &*node.credential}));
        credentials.insert(node.credential.clone());
    }
    let mut granted: Vec<_> = snapshot
        .service_grants
        .iter()
        .filter_map(|(svc, by_agent)| by_agent.get(id).map(|scopes| (svc.clone(), scopes.clone())))
        .collect();
    granted.sort();
    for (svc_id, scopes) in granted {
        let Some(svc) = snapshot.services.get(&svc_id) else {
            continue;
        };
        let used_by = agents_calling_in(snapshot, &svc.id).to_json();
        nodes.push(json!({"kind": "enterprise", "id": &*svc.id, "name": svc.name, "audience": svc.audience, "used_by": used_by}));
        let scopes: Vec<&str> = scopes.iter().map(|s| &**s).collect();
        edges.push(
            json!({"kind": "outbound", "from": &*agent.id, "to": &*svc.id, "scopes": scopes}),
        );
    }
    for c in credentials {
        if let Some(cred) = snapshot.credentials.get(&c) {
            let used_by = nodes_using_in(snapshot, &cred.id).to_json();
            nodes.push(json!({"kind": "credential", "id": &*cred.id, "name": cred.name, "business_type": cred.kind.as_str(), "used_by": used_by}));
        }
    }
    // Who may call the agent: its inbound authorizations, by client id.
    let mut admitted: Vec<_> = snapshot
        .inbound
        .get(id)
        .map(|by_client| by_client.iter().collect())
        .unwrap_or_default();
    admitted.sort();
    for (client_id, scopes) in admitted {
        let Some(client) = snapshot.clients.get(client_id) else {
            continue;
        };
        let used_by = agents_admitting_in(snapshot, &client.id).to_json();
        nodes.push(json!({"kind": "client", "id": &*client.id, "name": client.name, "enabled": client.enabled, "used_by": used_by}));
        let scopes: Vec<&str> = scopes.iter().map(|s| &**s).collect();
        edges.push(
            json!({"kind": "inbound", "from": &*client.id, "to": &*agent.id, "scopes": scopes}),
        );
    }
    Some(json!({"agent": id, "nodes": nodes, "edges": edges}))
}
