//! The pages, and what every page handler starts from.
//!
//! A handler takes a [`Page`] (the signed-in operator as a [`Caller`], and the session's CSRF token) or, for a
//! POST, a [`PageForm`] (the same, plus the form's fields, its CSRF token already checked). It reads and writes
//! through [`Page::api`], which runs the admin API's own route in-process as that caller: the role table, the
//! handlers' checks and the audit record are the API's. A page offers edit controls only when
//! [`Chrome::can_edit`]; the API refuses a viewer's write whatever the page showed.
//!
//! To add a page: a template under `admin/templates/console/` extending `base.html` with a `chrome: Chrome`
//! field, a handler here taking `Page`, and a route in [`super::Console::router`].

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, RawQuery, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use idguard_config::secret::Secret;
use idguard_config::store::AuthMethod;
use serde_json::{Value, json};

use super::session::Principal;
use super::signin::{SESSION_COOKIE, fields};
use super::{Console, ConsoleError, csrf};
use crate::api::{Caller, Role};

/// Largest console form body.
const MAX_FORM: usize = 64 * 1024;
/// Agents per page of the list.
const PAGE_SIZE: usize = 20;

/// The signed-in operator of a console request.
pub struct Page {
    /// Who they are to the admin API.
    pub caller: Caller,
    /// A display name: the operator id, and the directory user when there is one.
    pub who: String,
    csrf: Secret,
    session_id: Secret,
    console: Console,
}

/// A console POST: the signed-in operator and the form's fields, the CSRF token already checked.
pub struct PageForm {
    /// Who posted it.
    pub page: Page,
    /// The form's fields (empty values dropped), `csrf` included.
    pub fields: HashMap<String, String>,
}

/// What the layout shows on every page: who is signed in, their role, the sign-out form's CSRF token.
pub struct Chrome {
    /// Display name.
    pub who: String,
    /// `viewer`, `editor` or `owner`.
    pub role: &'static str,
    /// The session's CSRF token, for every form on the page.
    pub csrf: String,
    /// Whether to show controls that change the topology (editor and owner).
    pub can_edit: bool,
    /// License and credential usage in the topology in force (what `GET /admin/v1/usage` answers).
    pub usage: Option<UsageBar>,
}

/// The header's license and credential usage (`GET /admin/v1/usage`).
pub struct UsageBar {
    /// M2M licenses in use (agents, clients, enterprise services).
    pub licenses_used: u64,
    /// M2M licenses in all.
    pub licenses_total: u64,
    /// Stored credentials.
    pub credentials_used: u64,
    /// Credentials allowed.
    pub credentials_total: u64,
}

impl UsageBar {
    /// From the usage API's answer.
    pub fn of(body: &Value) -> Self {
        let n = |a: &str, b: &str| body[a][b].as_u64().unwrap_or(0);
        Self {
            licenses_used: n("m2m_licenses", "used"),
            licenses_total: n("m2m_licenses", "total"),
            credentials_used: n("credentials", "used"),
            credentials_total: n("credentials", "total"),
        }
    }

    /// Why a create that takes an M2M license (an agent, a client, an enterprise service) is disabled, if it is.
    pub fn license_block(&self) -> Option<String> {
        (self.licenses_used >= self.licenses_total).then(|| {
            format!(
                "All {} M2M licenses are in use: delete an agent, client or enterprise service, or raise [store] m2m_licenses.",
                self.licenses_total
            )
        })
    }

    /// Why a create that stores a credential is disabled, if it is.
    pub fn credential_block(&self) -> Option<String> {
        (self.credentials_used >= self.credentials_total).then(|| {
            format!(
                "All {} credentials are in use: delete one, or raise [store] max_credentials.",
                self.credentials_total
            )
        })
    }
}

// === impl Page ===

impl FromRequestParts<Console> for Page {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, ConsoleError> {
        let id = csrf::cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::SignedOut)?;
        let now = console.inner.api.clock().now();
        let session = console
            .inner
            .sessions
            .get(id, now)
            .ok_or(ConsoleError::SignedOut)?;
        let request_id = super::session::random_secret()?
            .expose()
            .chars()
            .take(16)
            .collect::<String>();
        let (caller, who) = match &session.principal {
            Principal::Admin => (
                Caller {
                    actor: "admin".into(),
                    auth: AuthMethod::ConsoleAdminToken,
                    role: Role::Owner,
                    request_id,
                },
                "admin token".to_owned(),
            ),
            Principal::User(user) => {
                let bound = console
                    .inner
                    .api
                    .operator_of_user(user)
                    .await
                    .map_err(|_| ConsoleError::Unavailable)?;
                let Some((operator, role)) = bound else {
                    // The binding is gone (operator deleted or re-bound): so are the user's sessions.
                    console.inner.sessions.close_all(&session.principal);
                    return Err(ConsoleError::SignedOut);
                };
                let who = if operator == *user {
                    operator.clone()
                } else {
                    format!("{operator} ({user})")
                };
                (
                    Caller {
                        actor: operator,
                        auth: AuthMethod::ConsoleSession,
                        role,
                        request_id,
                    },
                    who,
                )
            }
        };
        Ok(Page {
            caller,
            who,
            csrf: session.csrf,
            session_id: Secret::new(id.to_owned()),
            console: console.clone(),
        })
    }
}

impl Page {
    /// Runs `method path_and_query` of the admin API (`/admin/v1/…`) in-process as this operator; answers its
    /// status and JSON body.
    pub async fn api(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.api_at(method, path_and_query, body, None).await
    }

    /// [`Page::api`] for a change of the object at `version` (what the page showed, sent as `If-Match`): the API
    /// refuses it with 412 when the object has changed since. `None` (an object the routing file declares has no
    /// version) sends no `If-Match`.
    pub async fn api_at(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        version: Option<u64>,
    ) -> (StatusCode, Value) {
        self.console
            .inner
            .api
            .call_as(&self.caller, method, path_and_query, body, version)
            .await
    }

    /// What the layout needs.
    pub fn chrome(&self) -> Chrome {
        Chrome {
            who: self.who.clone(),
            role: self.caller.role.as_str(),
            csrf: self.csrf.expose().to_owned(),
            can_edit: self.caller.role >= Role::Editor,
            usage: Some(UsageBar::of(
                &crate::usage::Usage::of(&self.console.inner.api.snapshot()).to_json(),
            )),
        }
    }

    /// The session's id (sign-out deletes it).
    pub(super) fn session_id(&self) -> &Secret {
        &self.session_id
    }
}

// === impl PageForm ===

impl FromRequest<Console> for PageForm {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, console: &Console) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        let page = Page::from_request_parts(&mut parts, console).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| ConsoleError::Invalid("the form is too large".into()))?;
        let fields = fields(&bytes)?;
        csrf::check(
            &parts.headers,
            console.base_url(),
            fields.get("csrf").map(String::as_str),
            page.csrf.expose(),
        )?;
        Ok(PageForm { page, fields })
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn a_full_quota_disables_its_creates_with_the_reason() {
        let bar = UsageBar::of(&json!({"m2m_licenses": {"used": 10, "total": 10},
                                        "credentials": {"used": 3, "total": 100}}));
        assert!(
            bar.license_block()
                .is_some_and(|why| why.contains("All 10 M2M licenses"))
        );
        assert!(bar.credential_block().is_none());
        let bar = UsageBar::of(&json!({"m2m_licenses": {"used": 9, "total": 10},
                                        "credentials": {"used": 100, "total": 100}}));
        assert!(bar.license_block().is_none());
        assert!(bar.credential_block().is_some());
    }
}

/// The admin API's refusal as a console error: its role refusal, its field message, or unavailable.
pub fn api_error(status: StatusCode, body: &Value) -> ConsoleError {
    let error = &body["error"];
    let mut message = error["message"]
        .as_str()
        .unwrap_or("the request was refused")
        .to_owned();
    // A validation refusal names each field and why.
    for f in error["fields"].as_array().into_iter().flatten() {
        if let (Some(path), Some(why)) = (f["path"].as_str(), f["message"].as_str()) {
            message.push_str(&format!("; {path}: {why}"));
        }
    }
    match status.as_u16() {
        403 => ConsoleError::Forbidden(if message.contains("owner") {
            "owner"
        } else {
            "editor"
        }),
        404 => ConsoleError::NotFound,
        400 | 409 | 412 | 413 | 422 => ConsoleError::Invalid(message),
        401 => ConsoleError::SignedOut,
        _ => ConsoleError::Unavailable,
    }
}

/// Whether `path` is a console path a link may land on.
pub(super) fn is_console_path(path: &str) -> bool {
    path.starts_with("/console/") && !path.contains("//") && !path.contains('\\')
}

// === the pages ===

/// `GET /console/`.
pub(super) async fn home() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/console/agents")],
    )
        .into_response()
}

/// Any other `/console/…` path.
pub(super) async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}

/// One agent in the list.
pub struct AgentRow {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Audience identifier.
    pub audience: String,
}

#[derive(Template)]
#[template(path = "console/agents.html")]
struct AgentsPage {
    chrome: Chrome,
    agents: Vec<AgentRow>,
    q: String,
    next: Option<String>,
    quota: super::diagram::Quota,
}

/// `GET /console/agents?q=&cursor=`: the agents of the snapshot in force, by id, searched (a case-insensitive
/// substring of the id or the name) and paged like the admin API's own list (`GET /admin/v1/agents`) — read from
/// memory rather than through that route, which reads and parses the routing file on every call. The cursor is
/// the last id shown; any operator may read every agent, so a cursor edited by hand only moves the page.
pub(super) async fn agents(
    page: Page,
    axum::extract::State(console): axum::extract::State<Console>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let q = fields(query.as_deref().unwrap_or_default().as_bytes())?;
    let search = q.get("q").cloned().unwrap_or_default();
    let needle = search.to_lowercase();
    let cursor = q.get("cursor").map(String::as_str).unwrap_or_default();
    let snapshot = console.inner.api.snapshot();
    let mut matching: Vec<&idguard_config::snapshot::Agent> = snapshot
        .agents
        .values()
        .filter(|a| &*a.id > cursor)
        .filter(|a| {
            needle.is_empty()
                || a.id.to_lowercase().contains(&needle)
                || a.name.to_lowercase().contains(&needle)
        })
        .collect();
    matching.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let more = matching.len() > PAGE_SIZE;
    matching.truncate(PAGE_SIZE);
    let agents: Vec<AgentRow> = matching
        .iter()
        .map(|a| AgentRow {
            id: a.id.to_string(),
            name: if a.name.is_empty() {
                a.id.to_string()
            } else {
                a.name.clone()
            },
            audience: a.audience.clone(),
        })
        .collect();
    let next = match agents.last() {
        Some(last) if more => {
            let mut link = form_urlencoded::Serializer::new(String::new());
            if !search.is_empty() {
                link.append_pair("q", &search);
            }
            link.append_pair("cursor", &last.id);
            Some(link.finish())
        }
        _ => None,
    };
    let quota = super::diagram::quota(&page).await?;
    Ok(AgentsPage {
        chrome: page.chrome(),
        agents,
        q: search,
        next,
        quota,
    }
    .respond(StatusCode::OK))
}

/// `POST /console/agents`: registers an agent (`name`, and `audience` when not the default; the admin API
/// generates its id) as the operator, and lands on its diagram.
pub(super) async fn register_agent(form: PageForm) -> Result<Response, ConsoleError> {
    let mut body = json!({});
    for field in ["name", "audience"] {
        if let Some(v) = form.fields.get(field) {
            body[field] = json!(v);
        }
    }
    let (status, answer) = form
        .page
        .api(Method::POST, "/admin/v1/agents", Some(&body))
        .await;
    if status != StatusCode::CREATED {
        return Err(api_error(status, &answer));
    }
    let id = answer["id"].as_str().unwrap_or_default();
    let location = format!(
        "/console/agents/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

// === pages without a session ===

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/signin.html")]
pub(super) struct SignInPage {
    /// The admin-token form's double-submit token.
    pub(super) csrf: String,
    /// Whether directory sign-in is offered (the identity service is configured).
    pub(super) directory: bool,
}

/// A message: an error, or "signed in" on the way onward.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    title: &'static str,
    message: String,
    refresh: Option<&'static str>,
}

impl MessagePage {
    /// A page saying `message` under `title`.
    pub fn new(title: &'static str, message: String) -> Self {
        Self {
            title,
            message,
            refresh: None,
        }
    }

    /// Moves on to `path` at once (a `<meta http-equiv="refresh">`, not script).
    pub fn refresh(mut self, path: &'static str) -> Self {
        self.refresh = Some(path);
        self
    }
}

/// Renders a template with `status`; a template that fails to render is a 500 with a fixed text.
pub trait Respond: Template {
    /// The page as a response.
    fn respond(&self, status: StatusCode) -> Response {
        match self.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!("a console template failed to render: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }
}

impl<T: Template> Respond for T {}
