//! `GET /console/agents/{id}`: an agent's diagram. The agent in the centre, the client applications that may call
//! it on the left, the LLM, enterprise and external nodes it may call on the right; each edge labelled with its
//! scopes and its traffic over the last five minutes ([`super::traffic`]); an edge with denials is drawn dashed,
//! marked and classed `denied` (never colour alone). Drawn by the server as SVG — nodes and edges are plain links
//! to their panels (`/console/agents/{agent}/nodes/{kind}/{id}`, `/console/agents/{agent}/edges/{inbound|outbound}/{id}`)
//! — followed by the same edges as a table, the diagram's text alternative. The page needs no script.
//!
//! What it draws is what the admin API's `GET /admin/v1/agents/{id}/topology` answers, taken from the snapshot in
//! force ([`crate::api::AdminApi::topology_in_force`]) so a page costs no file parse or validation.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::pages::{Chrome, Page, Respond, api_error};
use super::traffic::{Counts, EdgeCount};
use super::{Console, ConsoleError};

pub mod layout;

use layout::{Rect, edge_path};

/// Longest name drawn in a box; the whole name is in the box's tooltip and in the table.
const SHORT: usize = 22;

/// One box of the diagram.
pub struct NodeView {
    /// `agent`, `client`, `llm`, `enterprise` or `external`.
    pub kind: &'static str,
    /// What the kind is called on the page.
    pub kind_label: &'static str,
    /// Id.
    pub id: String,
    /// Display name (the id when it has none).
    pub name: String,
    /// The name, shortened to fit the box.
    pub short: String,
    /// Its panel.
    pub href: String,
    /// Where it is.
    pub rect: Rect,
}

/// One edge of the diagram, and one row of its text alternative.
pub struct EdgeView {
    /// `inbound` (client → agent) or `outbound` (agent → node).
    pub direction: &'static str,
    /// The node at the far end (the client, or the node called).
    pub peer: String,
    /// Its kind label.
    pub peer_kind: &'static str,
    /// The far end's name.
    pub peer_name: String,
    /// Its scopes, space-separated (`—` for none).
    pub scopes: String,
    /// The scopes, shortened to fit the label.
    pub scopes_short: String,
    /// Traffic over the window.
    pub traffic: EdgeCount,
    /// Its panel.
    pub href: String,
    /// Its SVG path.
    pub path: String,
    /// Where its label starts (or ends, on the right).
    pub label_x: u32,
    /// The label's first baseline.
    pub label_y: u32,
    /// `start` on the left, `end` on the right.
    pub anchor: &'static str,
}

/// What the license quota allows adding, from `GET /admin/v1/usage`.
pub struct Quota {
    /// Licenses used.
    pub used: u64,
    /// Licenses in all.
    pub total: u64,
    /// Why agents, clients and enterprise services cannot be added now, if they cannot.
    pub full: Option<String>,
}

#[derive(Template)]
#[template(path = "console/diagram.html")]
struct DiagramPage {
    chrome: Chrome,
    agent: NodeView,
    audience: String,
    enabled: bool,
    left: Vec<NodeView>,
    right: Vec<NodeView>,
    edges: Vec<EdgeView>,
    width: u32,
    height: u32,
    plus: [Rect; 2],
    quota: Quota,
    add_left: String,
    add_right: String,
    add_any: String,
}

/// `GET /console/agents/{id}`: the agent's diagram.
pub(super) async fn page(
    page: Page,
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    // The snapshot in force, not the route (which reads, parses and validates the whole routing file and store).
    let topology = console
        .inner
        .api
        .topology_in_force(&id)
        .ok_or(ConsoleError::NotFound)?;
    let quota = quota(&page).await?;
    let traffic = console.inner.traffic.window();
    let view = build(page.chrome(), &id, &topology, &traffic, quota)?;
    Ok(view.respond(StatusCode::OK))
}

/// The license quota as the operator may read it.
pub(super) async fn quota(page: &Page) -> Result<Quota, ConsoleError> {
    let (status, usage) = page.api(Method::GET, "/admin/v1/usage", None).await;
    if status != StatusCode::OK {
        return Err(api_error(status, &usage));
    }
    let licenses = &usage["m2m_licenses"];
    let used = licenses["used"].as_u64().unwrap_or_default();
    let total = licenses["total"].as_u64().unwrap_or_default();
    let full = (used >= total).then(|| {
        format!(
            "All {total} M2M application licenses are in use: agents, client applications and enterprise \
             services cannot be added until one is freed or the limit is raised."
        )
    });
    Ok(Quota { used, total, full })
}

/// A path segment, percent-encoded.
pub(super) fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What a kind is called on the page.
pub(super) fn kind_label(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "agent" => "Agent",
        "client" => "Client",
        "llm" => "LLM",
        "enterprise" => "Enterprise service",
        "external" => "External service",
        _ => return None,
    })
}

fn kind_static(kind: &str) -> Option<&'static str> {
    ["agent", "client", "llm", "enterprise", "external"]
        .into_iter()
        .find(|k| *k == kind)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// The page for `agent`'s `topology` (the admin API's view) with `traffic` over the window.
fn build(
    chrome: Chrome,
    agent: &str,
    topology: &Value,
    traffic: &Counts,
    quota: Quota,
) -> Result<DiagramPage, ConsoleError> {
    let nodes = topology["nodes"]
        .as_array()
        .ok_or(ConsoleError::Unavailable)?;
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let base = format!("/console/agents/{}", seg(agent));
    let node = |v: &Value, kind: &'static str| {
        let id = text(v, "id");
        let name = match v["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => id.clone(),
        };
        NodeView {
            kind,
            kind_label: kind_label(kind).unwrap_or_default(),
            href: format!("{base}/nodes/{kind}/{}", seg(&id)),
            short: shorten(&name, SHORT),
            id,
            name,
            rect: Rect {
                x: 0,
                y: 0,
                w: 0,
                h: 0,
            },
        }
    };
    let mut centre = None;
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for v in nodes {
        match kind_static(v["kind"].as_str().unwrap_or_default()) {
            Some("agent") => centre = Some(node(v, "agent")),
            Some("client") => left.push(node(v, "client")),
            Some(kind) => right.push(node(v, kind)),
            // Credentials are shown on their nodes' panels, not as boxes.
            None => {}
        }
    }
    let mut centre = centre.ok_or(ConsoleError::NotFound)?;
    // The right column grouped by kind (LLM, enterprise, external), each by id.
    let order = |k: &str| match k {
        "llm" => 0,
        "enterprise" => 1,
        _ => 2,
    };
    right.sort_by(|a, b| (order(a.kind), &a.id).cmp(&(order(b.kind), &b.id)));
    left.sort_by(|a, b| a.id.cmp(&b.id));
    let l = layout::layout(left.len(), right.len());
    centre.rect = l.agent;
    for (n, r) in left.iter_mut().zip(&l.left) {
        n.rect = *r;
    }
    for (n, r) in right.iter_mut().zip(&l.right) {
        n.rect = *r;
    }
    let scopes_of = |from: &str, to: &str, kind: &str| -> Vec<String> {
        topology["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["kind"] == kind && e["from"] == from && e["to"] == to)
            .and_then(|e| e["scopes"].as_array())
            .map(|s| {
                s.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut edges = Vec::new();
    for (n, label) in left.iter().zip(&l.left_labels) {
        let scopes = scopes_of(&n.id, &centre.id, "inbound");
        let count = traffic
            .get(&(centre.id.clone(), n.id.clone()))
            .copied()
            .unwrap_or_default();
        edges.push(edge(
            &base,
            "inbound",
            n,
            scopes,
            count,
            n.rect.right_mid(),
            centre.rect.left_mid(),
            label.x + 4,
            "start",
            label.y,
        ));
    }
    for (n, label) in right.iter().zip(&l.right_labels) {
        let scopes = scopes_of(&centre.id, &n.id, "outbound");
        let count = traffic
            .get(&(n.id.clone(), centre.id.clone()))
            .copied()
            .unwrap_or_default();
        edges.push(edge(
            &base,
            "outbound",
            n,
            scopes,
            count,
            n.rect.left_mid(),
            centre.rect.right_mid(),
            label.x + label.w - 4,
            "end",
            label.y,
        ));
    }
    let enabled = nodes
        .iter()
        .find(|v| v["kind"] == "agent")
        .and_then(|v| v["enabled"].as_bool())
        .unwrap_or(true);
    let agent_v = nodes.iter().find(|v| v["kind"] == "agent");
    Ok(DiagramPage {
        chrome,
        audience: agent_v.map(|v| text(v, "audience")).unwrap_or_default(),
        enabled,
        add_left: format!("{base}/add?side=left"),
        add_right: format!("{base}/add?side=right"),
        add_any: format!("{base}/add"),
        agent: centre,
        left,
        right,
        edges,
        width: layout::WIDTH,
        height: l.height,
        plus: l.plus,
        quota,
    })
}

/// One edge's view. `peer` is the node at the far end; the label sits at `(label_x, label_top)` anchored
/// `anchor`.
// Each argument is one fact of the edge; a struct for them would be this function's signature again.
#[allow(clippy::too_many_arguments)]
fn edge(
    base: &str,
    direction: &'static str,
    peer: &NodeView,
    scopes: Vec<String>,
    traffic: EdgeCount,
    node_side: (u32, u32),
    agent_side: (u32, u32),
    label_x: u32,
    anchor: &'static str,
    label_top: u32,
) -> EdgeView {
    let scopes = if scopes.is_empty() {
        "—".to_owned()
    } else {
        scopes.join(" ")
    };
    EdgeView {
        direction,
        peer: peer.id.clone(),
        peer_kind: peer.kind_label,
        peer_name: peer.name.clone(),
        scopes_short: shorten(&scopes, 30),
        scopes,
        traffic,
        href: format!("{base}/edges/{direction}/{}", seg(&peer.id)),
        path: edge_path(node_side, agent_side),
        label_x,
        label_y: label_top + 12,
        anchor,
    }
}

#[cfg(test)]
mod tests;
