//! The edge panels: an outbound authorization (agent → LLM, enterprise or external node) and an inbound one
//! (client application → agent), each a list of scopes granted, changed or withdrawn.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::super::ConsoleError;
use super::super::pages::{Page, PageForm, Respond, api_error};
use super::{
    ActionPath, Field, Outcome, PanelPage, PanelPath, Row, Section, after, judge, see_other, seg,
    split_list, strings, text, topology, version_of,
};

/// `GET /console/agents/{id}/edges/{inbound|outbound}/{node}`: the edge's scopes.
pub(in crate::console) async fn edge(
    page: Page,
    path: PanelPath,
) -> Result<Response, ConsoleError> {
    let (agent, dir, node) = path.0;
    Ok(build(&page, &agent, &dir, &node)
        .await?
        .respond(StatusCode::OK))
}

/// `POST /console/agents/{id}/edges/{inbound|outbound}/{node}/{save|delete}`.
pub(in crate::console) async fn edge_action(
    path: ActionPath,
    form: PageForm,
) -> Result<Response, ConsoleError> {
    let (agent, dir, node, action) = path.0;
    let api = api_path(&agent, &dir, &node)?;
    let base = base(&agent, &dir, &node);
    let page = &form.page;
    // The authorization as the panel showed it (none yet: no `version`, and saving creates it).
    let at = version_of(&form.fields)?;
    let outcome = match action.as_str() {
        "save" => {
            let body = json!({ "scopes": split_list(form.fields.get("scopes")) });
            let (status, answer) = page.api_at(Method::PUT, &api, Some(&body), at).await;
            judge(status, &answer)?
        }
        "delete" => {
            let (status, answer) = page.api_at(Method::DELETE, &api, None, at).await;
            match judge(status, &answer)? {
                Outcome::Done => return Ok(see_other(&format!("/console/agents/{}", seg(&agent)))),
                other => other,
            }
        }
        _ => return Err(ConsoleError::NotFound),
    };
    let panel = match &outcome {
        Outcome::Done => None,
        _ => Some(build(page, &agent, &dir, &node).await?),
    };
    Ok(after(outcome, || panel, &base, &action, &form.fields))
}

fn base(agent: &str, dir: &str, node: &str) -> String {
    format!("/console/agents/{}/edges/{dir}/{}", seg(agent), seg(node))
}

fn api_path(agent: &str, dir: &str, node: &str) -> Result<String, ConsoleError> {
    match dir {
        "inbound" | "outbound" => Ok(format!(
            "/admin/v1/agents/{}/{dir}/{}",
            seg(agent),
            seg(node)
        )),
        _ => Err(ConsoleError::NotFound),
    }
}

async fn build(page: &Page, agent: &str, dir: &str, node: &str) -> Result<PanelPage, ConsoleError> {
    let api = api_path(agent, dir, node)?;
    let (status, grant) = page.api(Method::GET, &api, None).await;
    let granted = match status.as_u16() {
        200 => Some(grant),
        404 => None,
        _ => return Err(api_error(status, &grant)),
    };
    let topo = topology(page, agent).await?;
    let other = topo["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == node && n["kind"] != "agent" && n["kind"] != "credential")
        .cloned()
        .unwrap_or(Value::Null);
    let other_kind = match text(&other, "kind") {
        k if k.is_empty() && dir == "inbound" => "client".to_owned(),
        k => k,
    };
    // The scopes one may grant: the agent's permission (inbound), the service's permissions (enterprise).
    let available: Vec<String> = if dir == "inbound" {
        let (status, a) = page
            .api(
                Method::GET,
                &format!("/admin/v1/agents/{}", seg(agent)),
                None,
            )
            .await;
        if status != StatusCode::OK {
            return Err(api_error(status, &a));
        }
        vec![match text(&a["permission"], "scope") {
            s if s.is_empty() => "agent.access".to_owned(),
            s => s,
        }]
    } else if other_kind == "enterprise" {
        let (status, s) = page
            .api(
                Method::GET,
                &format!("/admin/v1/enterprise/{}", seg(node)),
                None,
            )
            .await;
        if status != StatusCode::OK {
            return Err(api_error(status, &s));
        }
        s["permissions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| text(p, "scope"))
            .collect()
    } else {
        vec![]
    };
    let title = if dir == "inbound" {
        format!("Inbound authorization: {node} → {agent}")
    } else {
        format!("Outbound authorization: {agent} → {node}")
    };
    let mut panel = PanelPage::new(
        page.chrome(),
        agent,
        if dir == "inbound" {
            "inbound"
        } else {
            "outbound"
        },
        node,
        title,
        base(agent, dir, node),
    );
    let scopes = granted
        .as_ref()
        .map(|g| strings(&g["scopes"]).join(" "))
        .unwrap_or_default();
    let hint = if available.is_empty() {
        "Space-separated scopes the agent's token must hold to call this node; empty: any token of the agent."
            .to_owned()
    } else {
        format!(
            "Space-separated; each one of: {}. {}",
            available.join(", "),
            if dir == "inbound" {
                "These are the agent's permission (its Permission section)."
            } else {
                "These are the service's permissions (its panel)."
            }
        )
    };
    let mut section = Section::form("scopes", "Scopes granted", "save")
        .at(granted.as_ref().unwrap_or(&Value::Null))
        .intro(match &granted {
            Some(_) => "In force now.".to_owned(),
            None => "Not authorized yet: saving grants these scopes.".to_owned(),
        })
        .fields(vec![Field::text("scopes", "Scopes", scopes).hint(hint)])
        .submit(if granted.is_some() {
            "Save"
        } else {
            "Authorize"
        });
    if dir == "outbound" && other.is_object() {
        let kind = text(&other, "kind");
        section = section.rows(
            vec![],
            vec![Row::link(
                &format!("Open the {kind} node's panel"),
                format!("/console/agents/{}/nodes/{kind}/{}", seg(agent), seg(node)),
            )],
        );
    }
    panel.sections.push(section);
    if let Some(g) = &granted {
        panel.sections.push(
            Section::form("delete", "Withdraw this authorization", "delete")
                .at(g)
                .intro("Nothing else is removed.")
                .submit("Withdraw")
                .confirm("Withdraw this authorization?"),
        );
    }
    if !panel.chrome.can_edit {
        for s in &mut panel.sections {
            s.disabled = Some("Your role (viewer) does not allow changes.".to_owned());
        }
    }
    Ok(panel)
}
