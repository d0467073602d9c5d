//! Adding to an agent's diagram: `GET /console/agents/{agent}/add?side=left|right&kind=…` (the diagram's "+"
//! controls and its *Add node* toolbar) and `POST` of the same path. The page first offers the kinds the side
//! allows (left: client; right: LLM, enterprise, external; the toolbar: all of them and another agent), then,
//! for a kind, two forms: use an existing node, or create one. Either way the answer is the authorization edge
//! with its scopes (`PUT /admin/v1/agents/{agent}/inbound/{client}` or `…/outbound/{node}`), then the diagram.
//!
//! Everything goes through the admin API in-process as the operator (role table, validation, quotas, audit). A
//! new node is created before its edge; the form's own checks (the kind, the fields, client scopes within the
//! agent's permission, enterprise scopes within the new service's) run first so that a refused form creates
//! nothing.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ConsoleError;
use super::diagram::{Quota, kind_label, quota, seg};
use super::pages::{Chrome, Page, PageForm, Respond, api_error};
use super::signin::fields;
use idguard_config::defaults;

/// The most existing nodes a form lists.
const LIST_LIMIT: usize = 1000;

/// A kind the page offers.
pub(super) struct KindChoice {
    /// `client`, `llm`, …
    pub kind: &'static str,
    /// What it is called.
    pub label: &'static str,
    /// Where choosing it goes.
    pub href: String,
    /// Why it cannot be added now, if it cannot.
    pub disabled: Option<String>,
}

/// An existing node a form may choose.
pub(super) struct Choice {
    /// Id.
    pub id: String,
    /// Name, or the id.
    pub name: String,
}

#[derive(Template)]
#[template(path = "console/add.html")]
struct AddPage {
    chrome: Chrome,
    agent: String,
    agent_href: String,
    action: String,
    kinds: Vec<KindChoice>,
    kind: Option<&'static str>,
    kind_label: &'static str,
    existing: Vec<Choice>,
    credentials: Vec<Choice>,
    default_scopes: String,
    quota: Quota,
    blocked: Option<String>,
}

/// Whether adding `kind` takes an M2M license (agents, clients and enterprise services do).
fn licensed(kind: &str) -> bool {
    matches!(kind, "agent" | "client" | "enterprise")
}

/// The admin API collection of a node kind.
fn collection(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "client" => "clients",
        "llm" => "llm",
        "enterprise" => "enterprise",
        "external" => "external",
        _ => return None,
    })
}

/// The kinds `side` offers.
fn kinds_of(side: &str) -> &'static [&'static str] {
    match side {
        "left" => &["client"],
        "right" => &["llm", "enterprise", "external"],
        _ => &["agent", "client", "llm", "enterprise", "external"],
    }
}

fn static_kind(kind: &str) -> Option<&'static str> {
    kinds_of("").iter().copied().find(|k| *k == kind)
}

/// The scopes a form field lists (spaces or commas between them).
fn scopes(field: Option<&String>) -> Vec<String> {
    field
        .map(|s| {
            s.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /console/agents/{agent}/add?side=&kind=`.
pub(super) async fn page(
    page: Page,
    Path(agent): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let q = fields(query.as_deref().unwrap_or_default().as_bytes())?;
    let side = q.get("side").map(String::as_str).unwrap_or_default();
    if !matches!(side, "" | "left" | "right") {
        return Err(ConsoleError::Invalid("side: must be left or right".into()));
    }
    let agent_json = agent_view(&page, &agent).await?;
    let quota = quota(&page).await?;
    let base = format!("/console/agents/{}", seg(&agent));
    let kinds = kinds_of(side)
        .iter()
        .map(|k| KindChoice {
            kind: k,
            label: kind_label(k).unwrap_or_default(),
            href: if *k == "agent" {
                "/console/agents#register-agent".to_owned()
            } else {
                format!("{base}/add?side={side}&kind={k}")
            },
            disabled: quota.full.clone().filter(|_| licensed(k)),
        })
        .collect();
    let kind = match q.get("kind") {
        None => None,
        Some(k) => match static_kind(k) {
            Some(k) if k != "agent" && kinds_of(side).contains(&k) => Some(k),
            // The caller's own text is never echoed: the message says what the field may hold.
            _ => {
                return Err(ConsoleError::Invalid(
                    "kind: the left side adds a client; the right side an llm, enterprise or external node"
                        .into(),
                ));
            }
        },
    };
    let (mut existing, mut credentials) = (Vec::new(), Vec::new());
    if let Some(k) = kind {
        existing = list(&page, collection(k).unwrap_or_default(), None).await?;
        if matches!(k, "llm" | "external") {
            credentials = list(&page, "credentials", Some(k)).await?;
        }
    }
    let default_scopes = match kind {
        Some("client") => agent_json["permission"]["scope"]
            .as_str()
            .unwrap_or(defaults::AGENT_PERMISSION_SCOPE)
            .to_owned(),
        _ => String::new(),
    };
    let blocked = kind.and_then(|k| quota.full.clone().filter(|_| licensed(k)));
    Ok(AddPage {
        chrome: page.chrome(),
        agent: agent_json["name"].as_str().unwrap_or(&agent).to_owned(),
        agent_href: base.clone(),
        action: format!("{base}/add"),
        kinds,
        kind,
        kind_label: kind.and_then(kind_label).unwrap_or_default(),
        existing,
        credentials,
        default_scopes,
        quota,
        blocked,
    }
    .respond(StatusCode::OK))
}

/// The agent as the admin API shows it (404 when there is none).
async fn agent_view(page: &Page, agent: &str) -> Result<Value, ConsoleError> {
    let (status, body) = page
        .api(
            Method::GET,
            &format!("/admin/v1/agents/{}", seg(agent)),
            None,
        )
        .await;
    if status != StatusCode::OK {
        return Err(api_error(status, &body));
    }
    Ok(body)
}

/// The first [`LIST_LIMIT`] objects of `collection` (credentials of `kind` only, when given).
async fn list(
    page: &Page,
    collection: &str,
    kind: Option<&str>,
) -> Result<Vec<Choice>, ConsoleError> {
    let (status, body) = page
        .api(
            Method::GET,
            &format!("/admin/v1/{collection}?limit={LIST_LIMIT}"),
            None,
        )
        .await;
    if status != StatusCode::OK {
        return Err(api_error(status, &body));
    }
    Ok(body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| kind.is_none_or(|k| v["kind"] == k))
        .map(|v| {
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            let name = v["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(&id)
                .to_owned();
            Choice { id, name }
        })
        .collect())
}

/// `POST /console/agents/{agent}/add`: `kind`, `mode` (`existing` with `node`, or `new` with the kind's fields)
/// and `scopes`; answers 303 to the diagram.
pub(super) async fn submit(
    Path(agent): Path<String>,
    form: PageForm,
) -> Result<Response, ConsoleError> {
    let f = &form.fields;
    let page = &form.page;
    let kind = f
        .get("kind")
        .and_then(|k| static_kind(k))
        .filter(|k| *k != "agent")
        .ok_or_else(|| {
            ConsoleError::Invalid("kind: must be client, llm, enterprise or external".into())
        })?;
    let scopes = scopes(f.get("scopes"));
    let agent_json = agent_view(page, &agent).await?;
    let node = match f.get("mode").map(String::as_str) {
        Some("existing") => f
            .get("node")
            .cloned()
            .ok_or_else(|| ConsoleError::Invalid("node: choose one".into()))?,
        Some("new") => {
            precheck(kind, f, &scopes, &agent_json)?;
            create(page, kind, f).await?
        }
        _ => {
            return Err(ConsoleError::Invalid(
                "mode: must be existing or new".into(),
            ));
        }
    };
    let direction = if kind == "client" {
        "inbound"
    } else {
        "outbound"
    };
    let path = format!(
        "/admin/v1/agents/{}/{direction}/{}",
        seg(&agent),
        seg(&node)
    );
    let (status, body) = page
        .api(Method::PUT, &path, Some(&json!({"scopes": scopes})))
        .await;
    if !(status == StatusCode::OK || status == StatusCode::CREATED) {
        return Err(api_error(status, &body));
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/console/agents/{}", seg(&agent))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The form's own checks for a new node, before anything is created.
fn precheck(
    kind: &str,
    f: &HashMap<String, String>,
    scopes: &[String],
    agent: &Value,
) -> Result<(), ConsoleError> {
    let need = |field: &str| {
        f.get(field).map(|_| ()).ok_or_else(|| {
            ConsoleError::Invalid(format!("{field}: required for a new {kind} node"))
        })
    };
    need("id")?;
    match kind {
        "client" => {
            let scope = agent["permission"]["scope"]
                .as_str()
                .unwrap_or(defaults::AGENT_PERMISSION_SCOPE);
            // The caller's own text is never echoed: the message names the field and what it may hold.
            if scopes.iter().any(|s| s != scope) {
                return Err(ConsoleError::Invalid(format!(
                    "scopes: a client may be granted only the agent's permission, {scope}"
                )));
            }
        }
        "enterprise" => {
            need("audience")?;
            let offered = self::scopes(f.get("permissions"));
            if offered.is_empty() {
                return Err(ConsoleError::Invalid(
                    "permissions: at least one scope the service offers".into(),
                ));
            }
            if scopes.iter().any(|s| !offered.contains(s)) {
                return Err(ConsoleError::Invalid(
                    "scopes: each must be one of the permissions the new service offers".into(),
                ));
            }
        }
        _ => {
            need("upstream")?;
            if f.get("credential").is_none() && f.get("value").is_none() {
                return Err(ConsoleError::Invalid(
                    "credential: choose a stored credential or give a new API key value".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Creates the new node (and, for an LLM or external node given a key value, its credential first); answers its id.
async fn create(
    page: &Page,
    kind: &str,
    f: &HashMap<String, String>,
) -> Result<String, ConsoleError> {
    let id = f.get("id").cloned().unwrap_or_default();
    let mut body = json!({"id": id});
    if let Some(name) = f.get("name") {
        body["name"] = json!(name);
    }
    match kind {
        "client" => {}
        "enterprise" => {
            body["audience"] = json!(f.get("audience"));
            let permissions: Vec<Value> = scopes(f.get("permissions"))
                .into_iter()
                .map(|scope| json!({"scope": scope}))
                .collect();
            body["permissions"] = json!(permissions);
        }
        _ => {
            let upstream = f.get("upstream").cloned().unwrap_or_default();
            body["upstream"] = json!(upstream);
            body["style"] = json!("bearer");
            let credential = match (f.get("credential"), f.get("value")) {
                (Some(c), _) => c.clone(),
                (None, Some(value)) => {
                    let host = upstream
                        .parse::<axum::http::Uri>()
                        .ok()
                        .and_then(|u| u.host().map(str::to_owned))
                        .ok_or_else(|| {
                            ConsoleError::Invalid("upstream: not a URL with a host".into())
                        })?;
                    let cred_id = format!("{id}-key");
                    let cred =
                        json!({"id": cred_id, "kind": kind, "value": value, "hosts": [host]});
                    let (status, answer) = page
                        .api(Method::POST, "/admin/v1/credentials", Some(&cred))
                        .await;
                    if status != StatusCode::CREATED {
                        return Err(api_error(status, &answer));
                    }
                    cred_id
                }
                (None, None) => {
                    return Err(ConsoleError::Invalid("credential: required".into()));
                }
            };
            body["credential"] = json!(credential);
        }
    }
    let collection = collection(kind).unwrap_or_default();
    let (status, answer) = page
        .api(
            Method::POST,
            &format!("/admin/v1/{collection}"),
            Some(&body),
        )
        .await;
    if status != StatusCode::CREATED {
        return Err(api_error(status, &answer));
    }
    Ok(answer["id"].as_str().unwrap_or(&id).to_owned())
}
