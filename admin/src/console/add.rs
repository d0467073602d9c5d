//! Adding to an agent's diagram: `GET /console/agents/{agent}/add?side=left|right&kind=…` (the diagram's "+"
//! controls and its *Add node* toolbar) and `POST` of the same path. The page first offers the kinds the side
//! allows (left: client; right: LLM, enterprise, external; the toolbar: all of them and another agent), then,
//! for a kind, two forms: use an existing node, or create one. Either way the answer is the authorization edge
//! with its scopes (`PUT /admin/v1/agents/{agent}/inbound/{client}` or `…/outbound/{node}`), then the diagram.
//!
//! Everything goes through the admin API in-process as the operator (role table, validation, quotas, audit). A
//! new node is created before its edge; the form's own checks (the kind, the fields, client scopes within the
//! agent's permission, enterprise scopes within the new service's) run first so that a refused form creates
//! nothing. Adding is all or nothing: when the node (or its edge) is refused after its credential (or the node)
//! was created, those are deleted again, at the version just created, before the page answers. A refusal is shown
//! beside the field it names, on the add page re-rendered with what the user typed (never a key value).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ConsoleError;
use super::diagram::{Quota, kind_label, quota, seg};
use super::pages::{Chrome, Page, PageForm, Respond, api_error};
use super::panels::{FieldErrors, Outcome, judge};
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
    /// The *Use an existing* form: its values, and a refusal of it.
    existing_form: Typed,
    /// The *Create a new* form: its values, and a refusal of it.
    new_form: Typed,
    quota: Quota,
    blocked: Option<String>,
}

/// What a form of the add page shows: its values (the defaults, or what the user typed) and the refusal beside
/// each field it names.
#[derive(Default)]
pub(super) struct Typed {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// A refusal that names no field the form shows.
    pub general: Option<String>,
}

/// The fields of the *Create a new* form (`value`, the key, is never shown again).
const NEW_FIELDS: &[&str] = &[
    "id",
    "name",
    "audience",
    "permissions",
    "upstream",
    "credential",
    "scopes",
];
/// The fields of the *Use an existing* form.
const EXISTING_FIELDS: &[&str] = &["node", "scopes"];

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
    let add = render(&page, &agent, side, q.get("kind").map(String::as_str), None).await?;
    Ok(add.respond(StatusCode::OK))
}

/// The add page for `side` and `kind`; with `refused`, the form that posted (`existing` or `new`) shows what the
/// user typed and the refusal beside its fields.
async fn render(
    page: &Page,
    agent: &str,
    side: &str,
    kind: Option<&str>,
    refused: Option<(&str, &HashMap<String, String>, FieldErrors)>,
) -> Result<AddPage, ConsoleError> {
    let agent_json = agent_view(page, agent).await?;
    let quota = quota(page).await?;
    let base = format!("/console/agents/{}", seg(agent));
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
    let kind = match kind {
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
        existing = list(page, collection(k).unwrap_or_default(), None).await?;
        if matches!(k, "llm" | "external") {
            credentials = list(page, "credentials", Some(k)).await?;
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
    let (mut existing_form, mut new_form) = (Typed::default(), Typed::default());
    for form in [&mut existing_form, &mut new_form] {
        form.values.insert("scopes".into(), default_scopes.clone());
    }
    match refused {
        Some(("existing", typed, errors)) => {
            existing_form = Typed::refused(EXISTING_FIELDS, typed, errors);
        }
        Some((_, typed, errors)) => new_form = Typed::refused(NEW_FIELDS, typed, errors),
        None => {}
    }
    Ok(AddPage {
        chrome: page.chrome(),
        agent: agent_json["name"].as_str().unwrap_or(agent).to_owned(),
        agent_href: base.clone(),
        action: format!("{base}/add"),
        kinds,
        kind,
        kind_label: kind.and_then(kind_label).unwrap_or_default(),
        existing,
        credentials,
        existing_form,
        new_form,
        quota,
        blocked,
    })
}

// === impl Typed ===

impl Typed {
    /// A form of `fields` refused: what the user typed in them, each refusal beside the field it names, the rest
    /// above the form.
    fn refused(fields: &[&str], typed: &HashMap<String, String>, errors: FieldErrors) -> Self {
        let values = fields
            .iter()
            .filter_map(|f| typed.get(*f).map(|v| ((*f).to_owned(), v.clone())))
            .collect();
        let mut out = Typed {
            values,
            errors: HashMap::new(),
            general: errors.general,
        };
        let mut rest = Vec::new();
        for (field, why) in errors.fields {
            if fields.contains(&field.as_str()) && !out.errors.contains_key(&field) {
                out.errors.insert(field, why);
            } else {
                rest.push(format!("{field}: {why}"));
            }
        }
        if !rest.is_empty() {
            let mut all: Vec<String> = out.general.take().into_iter().collect();
            all.extend(rest);
            out.general = Some(all.join("; "));
        }
        out
    }

    /// The value to show in `field`.
    pub(super) fn value(&self, field: &str) -> &str {
        self.values.get(field).map_or("", String::as_str)
    }

    /// The refusal beside `field`, if any.
    pub(super) fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
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
/// and `scopes`; answers 303 to the diagram, or (422) the add page with the refusal beside its field and what the
/// user typed — and then nothing was created.
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
    let mode = match f.get("mode").map(String::as_str) {
        Some("existing") => "existing",
        Some("new") => "new",
        _ => {
            return Err(ConsoleError::Invalid(
                "mode: must be existing or new".into(),
            ));
        }
    };
    let agent_json = agent_view(page, &agent).await?;
    let Some(refusal) = connect(page, &agent, kind, mode, f, &agent_json).await? else {
        let mut resp = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("/console/agents/{}", seg(&agent))) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    };
    let add = render(page, &agent, "", Some(kind), Some((mode, f, refusal))).await?;
    Ok(add.respond(StatusCode::UNPROCESSABLE_ENTITY))
}

/// Connects node `f["node"]` (mode `existing`) or a new one (mode `new`) to `agent` with the form's scopes.
/// Answers the refusal to show beside the form's fields, or `None` when done; refused, nothing it created stays.
async fn connect(
    page: &Page,
    agent: &str,
    kind: &'static str,
    mode: &str,
    f: &HashMap<String, String>,
    agent_json: &Value,
) -> Result<Option<FieldErrors>, ConsoleError> {
    let scopes = scopes(f.get("scopes"));
    let (node, created) = if mode == "existing" {
        let Some(node) = f.get("node").cloned() else {
            return Ok(Some(refusal("node", "choose one")));
        };
        (node, Created::default())
    } else {
        if let Err(refused) = precheck(kind, f, &scopes, agent_json) {
            return Ok(Some(refused));
        }
        match create(page, kind, f).await? {
            Ok(created) => (created.node.clone().unwrap_or_default(), created),
            Err(refused) => return Ok(Some(refused)),
        }
    };
    let direction = if kind == "client" {
        "inbound"
    } else {
        "outbound"
    };
    let path = format!("/admin/v1/agents/{}/{direction}/{}", seg(agent), seg(&node));
    let (status, body) = page
        .api(Method::PUT, &path, Some(&json!({"scopes": scopes})))
        .await;
    let outcome = judge(status, &body);
    match outcome {
        Ok(Outcome::Done | Outcome::Once(_)) => Ok(None),
        Ok(Outcome::Refused(mut refused)) => {
            created.undo(page, kind, &mut refused).await;
            Ok(Some(refused))
        }
        Err(e) => {
            // Signed out, forbidden or unavailable mid-way: still leave nothing behind.
            created.undo(page, kind, &mut FieldErrors::default()).await;
            Err(e)
        }
    }
}

/// A refusal of `field`.
fn refusal(field: &str, why: &str) -> FieldErrors {
    FieldErrors {
        fields: vec![(field.to_owned(), why.to_owned())],
        general: None,
    }
}

/// What [`create`] stored, at the version it stored, to delete again when a later step is refused.
#[derive(Default)]
struct Created {
    /// The new node's id and version.
    node: Option<String>,
    node_version: Option<u64>,
    /// The new credential's id and version, when the form gave a key value.
    credential: Option<(String, Option<u64>)>,
}

// === impl Created ===

impl Created {
    /// Deletes what was created, the node before the credential it uses, each at the version created (so that a
    /// change someone made since is not thrown away: then it stays, and `refused` says so).
    async fn undo(&self, page: &Page, kind: &str, refused: &mut FieldErrors) {
        let mut left = Vec::new();
        if let Some(node) = &self.node {
            let path = format!(
                "/admin/v1/{}/{}",
                collection(kind).unwrap_or_default(),
                seg(node)
            );
            let (status, _) = page
                .api_at(Method::DELETE, &path, None, self.node_version)
                .await;
            if !status.is_success() {
                tracing::warn!(kind, node = %node, status = status.as_u16(), "console: a node created for a refused edge could not be deleted again");
                left.push(format!("the {kind} node {node}"));
            }
        }
        if let Some((cred, version)) = &self.credential {
            let path = format!("/admin/v1/credentials/{}", seg(cred));
            let (status, _) = page.api_at(Method::DELETE, &path, None, *version).await;
            if !status.is_success() {
                tracing::warn!(credential = %cred, status = status.as_u16(), "console: a credential created for a refused node could not be deleted again");
                left.push(format!("the credential {cred}"));
            }
        }
        if !left.is_empty() {
            let note = format!(
                "{} could not be removed again: delete it from the diagram",
                left.join(" and ")
            );
            refused.general = Some(match refused.general.take() {
                Some(g) => format!("{g}; {note}"),
                None => note,
            });
        }
    }
}

/// The form's own checks for a new node, before anything is created.
fn precheck(
    kind: &str,
    f: &HashMap<String, String>,
    scopes: &[String],
    agent: &Value,
) -> Result<(), FieldErrors> {
    let need = |field: &str| {
        f.get(field)
            .map(|_| ())
            .ok_or_else(|| refusal(field, &format!("required for a new {kind} node")))
    };
    need("id")?;
    match kind {
        "client" => {
            let scope = agent["permission"]["scope"]
                .as_str()
                .unwrap_or(defaults::AGENT_PERMISSION_SCOPE);
            // The caller's own text is never echoed: the message names the field and what it may hold.
            if scopes.iter().any(|s| s != scope) {
                return Err(refusal(
                    "scopes",
                    &format!("a client may be granted only the agent's permission, {scope}"),
                ));
            }
        }
        "enterprise" => {
            need("audience")?;
            let offered = self::scopes(f.get("permissions"));
            if offered.is_empty() {
                return Err(refusal(
                    "permissions",
                    "at least one scope the service offers",
                ));
            }
            if scopes.iter().any(|s| !offered.contains(s)) {
                return Err(refusal(
                    "scopes",
                    "each must be one of the permissions the new service offers",
                ));
            }
        }
        _ => {
            need("upstream")?;
            if f.get("credential").is_none() && f.get("value").is_none() {
                return Err(refusal(
                    "credential",
                    "choose a stored credential or give a new API key value",
                ));
            }
        }
    }
    Ok(())
}

/// Creates the new node (and, for an LLM or external node given a key value, its credential first). Answers
/// what it created, or the API's refusal — and then nothing stays created.
async fn create(
    page: &Page,
    kind: &str,
    f: &HashMap<String, String>,
) -> Result<Result<Created, FieldErrors>, ConsoleError> {
    let id = f.get("id").cloned().unwrap_or_default();
    let mut created = Created::default();
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
                    let Some(host) = upstream
                        .parse::<axum::http::Uri>()
                        .ok()
                        .and_then(|u| u.host().map(str::to_owned))
                    else {
                        return Ok(Err(refusal("upstream", "not a URL with a host")));
                    };
                    let cred_id = format!("{id}-key");
                    let cred =
                        json!({"id": cred_id, "kind": kind, "value": value, "hosts": [host]});
                    let (status, answer) = page
                        .api(Method::POST, "/admin/v1/credentials", Some(&cred))
                        .await;
                    match judge(status, &answer)? {
                        Outcome::Done | Outcome::Once(_) => {}
                        Outcome::Refused(refused) => return Ok(Err(refused)),
                    }
                    created.credential = Some((cred_id.clone(), answer["version"].as_u64()));
                    cred_id
                }
                (None, None) => return Ok(Err(refusal("credential", "required"))),
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
    let outcome = match judge(status, &answer) {
        Ok(outcome) => outcome,
        Err(e) => {
            created.undo(page, kind, &mut FieldErrors::default()).await;
            return Err(e);
        }
    };
    if let Outcome::Refused(mut refused) = outcome {
        created.undo(page, kind, &mut refused).await;
        return Ok(Err(refused));
    }
    created.node = Some(answer["id"].as_str().unwrap_or(&id).to_owned());
    created.node_version = answer["version"].as_u64();
    Ok(Ok(created))
}
