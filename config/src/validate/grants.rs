//! The grants between principals and what they call: `[[outbound]]` (an agent → an llm or external node, with
//! the scopes its token must carry, or → an enterprise service, with the permissions it is granted) and
//! `[[inbound]]` (a client → an agent, with the agent's permission scope).

use std::collections::HashMap;
use std::sync::Arc;

use super::rules::{Errors, SCOPE_RULE, is_scope_token};
use crate::raw::{RawConfig, RawEdge, RawInbound};
use crate::snapshot::{Agent, Client, Edge, Node, ScopeGrants, Service, ServiceGrants};

/// Edges by node, then by agent.
type Edges = HashMap<Arc<str>, HashMap<Arc<str>, Edge>>;

/// The grants of `[[outbound]]`: to services (by service, then agent) and to nodes. Each pair is declared once.
pub(super) fn outbound(
    raw: &RawConfig,
    agents: &HashMap<Arc<str>, Agent>,
    nodes: &HashMap<Arc<str>, Node>,
    services: &HashMap<Arc<str>, Service>,
    errors: &mut Errors,
) -> (ServiceGrants, Edges) {
    let mut service_grants = ServiceGrants::new();
    let mut edges = Edges::new();
    for (i, e) in raw.outbound.iter().enumerate() {
        let path = format!("outbound[{i}]");
        let Some((agent, _)) = find(agents, &e.agent, format!("{path}.agent"), "agent", errors)
        else {
            continue;
        };
        if let Some(service) = services.get(e.node.as_str()) {
            let granted = service_scopes(e, service, &path, errors);
            if service_grants
                .entry(service.id.clone())
                .or_default()
                .insert(agent.clone(), granted)
                .is_some()
            {
                errors.push(
                    path,
                    format!(
                        "agent {:?} → service {:?} is declared twice",
                        e.agent, e.node
                    ),
                );
            }
            continue;
        }
        let what = "llm, external or enterprise node";
        let Some((node, _)) = find(nodes, &e.node, format!("{path}.node"), what, errors) else {
            continue;
        };
        let edge = Edge {
            agent: agent.clone(),
            node: node.clone(),
            required_scopes: node_scopes(e, &path, errors),
        };
        if edges
            .entry(node.clone())
            .or_default()
            .insert(agent.clone(), edge)
            .is_some()
        {
            errors.push(
                path,
                format!(
                    "agent {:?} → node {:?} is declared twice; list every scope in one entry",
                    e.agent, e.node
                ),
            );
        }
    }
    (service_grants, edges)
}

/// The grants of `[[inbound]]`, by agent, then client. Each pair is declared once.
pub(super) fn inbound(
    raw: &RawConfig,
    clients: &HashMap<Arc<str>, Client>,
    agents: &HashMap<Arc<str>, Agent>,
    errors: &mut Errors,
) -> ScopeGrants {
    let mut inbound = ScopeGrants::new();
    for (i, e) in raw.inbound.iter().enumerate() {
        let path = format!("inbound[{i}]");
        let Some((client, _)) = find(
            clients,
            &e.client,
            format!("{path}.client"),
            "client",
            errors,
        ) else {
            continue;
        };
        let Some((agent_id, agent)) =
            find(agents, &e.agent, format!("{path}.agent"), "agent", errors)
        else {
            continue;
        };
        let granted = agent_scopes(e, agent, &path, errors);
        if inbound
            .entry(agent_id.clone())
            .or_default()
            .insert(client.clone(), granted)
            .is_some()
        {
            errors.push(
                path,
                format!(
                    "client {:?} → agent {:?} is declared twice",
                    e.client, e.agent
                ),
            );
        }
    }
    inbound
}

/// `id`'s entry in `map`; when there is none, an error at `path` saying no `what` has that id.
fn find<'a, V>(
    map: &'a HashMap<Arc<str>, V>,
    id: &str,
    path: String,
    what: &str,
    errors: &mut Errors,
) -> Option<(&'a Arc<str>, &'a V)> {
    let found = map.get_key_value(id);
    if found.is_none() {
        errors.push(path, format!("no {what} has id {id:?}"));
    }
    found
}

/// The scopes an outbound entry grants on a service: each a permission of the service, each once.
fn service_scopes(
    e: &RawEdge,
    service: &Service,
    path: &str,
    errors: &mut Errors,
) -> Vec<Arc<str>> {
    let mut granted: Vec<Arc<str>> = Vec::new();
    for (j, scope) in e.scopes.iter().enumerate() {
        match service
            .permissions
            .iter()
            .find(|(_, s)| s.as_ref() == scope)
        {
            Some((_, s)) if !granted.contains(s) => granted.push(s.clone()),
            Some(_) => {}
            None => errors.push(
                format!("{path}.scopes[{j}]"),
                format!(
                    "{scope:?} is not a permission of enterprise service {:?}",
                    e.node
                ),
            ),
        }
    }
    granted
}

/// The scopes an agent's token must carry on a node: scope tokens, each once.
fn node_scopes(e: &RawEdge, path: &str, errors: &mut Errors) -> Vec<Arc<str>> {
    let mut scopes = Vec::new();
    for (j, s) in e.scopes.iter().enumerate() {
        if !is_scope_token(s) {
            errors.push(format!("{path}.scopes[{j}]"), SCOPE_RULE);
        } else if !scopes.iter().any(|x: &Arc<str>| x.as_ref() == s) {
            scopes.push(Arc::from(s.as_str()));
        }
    }
    scopes
}

/// The scopes an inbound entry grants on an agent: only the agent's permission scope, once.
fn agent_scopes(e: &RawInbound, agent: &Agent, path: &str, errors: &mut Errors) -> Vec<Arc<str>> {
    let mut granted: Vec<Arc<str>> = Vec::new();
    for (j, scope) in e.scopes.iter().enumerate() {
        if *scope == *agent.permission.scope {
            if !granted.contains(&agent.permission.scope) {
                granted.push(agent.permission.scope.clone());
            }
        } else {
            errors.push(
                format!("{path}.scopes[{j}]"),
                format!(
                    "{scope:?} is not a permission of agent {:?} (its permission scope is {:?})",
                    e.agent, agent.permission.scope
                ),
            );
        }
    }
    granted
}
