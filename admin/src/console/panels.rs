//! The configuration panels the diagram opens — one per node kind (`/console/agents/{id}/nodes/{kind}/{node}`)
//! and one per edge (`/console/agents/{id}/edges/{inbound|outbound}/{node}`) — and the console's other pages:
//! the directory, operators (`operators`, rendered as a panel without a diagram) and the audit log.
//!
//! A panel is data: [`Section`]s of [`Field`]s, each field with the reference's rule shown beside it, rendered by
//! one template (`console/panel.html`). Every form posts to `<panel>/<action>` and is carried out through the
//! admin API as the signed-in operator ([`Page::api`]). A refusal is shown beside the field the API's error names
//! (`fields[].path`, or a `field: why` message), on the panel re-rendered with what the user typed. A viewer's
//! panel has no controls, and the API refuses a forged write.
//!
//! Every form that changes an existing object carries the version the panel was rendered with (a hidden
//! `version` field, the object's `version`), sent as `If-Match`: when someone changed the object in between, the
//! API refuses (412) and the panel says so above the form, keeping what the user typed and that old version, so
//! that only a reload — which shows the other change — lets them save. Nothing is overwritten unseen.
//!
//! A delete that would withdraw something else first tries without the cascade; the API's 409 `in_use` answer
//! (and the topology's `used_by`) makes a confirmation page naming exactly what the cascade removes.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ConsoleError;
use super::pages::{Chrome, Page, Respond, api_error};
use super::signin::fields as parse_query;

mod delete;
mod directory;
mod edges;
mod nodes;
mod operators;

use delete::{cascade_lines, delete_with_confirmation};

pub(super) use directory::{audit, directory};
pub(super) use edges::{edge, edge_action};
pub(super) use nodes::{node, node_action};
pub(super) use operators::{operator_action, operators};

/// One input of a panel form, with the reference's rule for it.
pub(crate) struct Field {
    /// The form field's name (and what an API error path is matched against).
    pub(crate) name: &'static str,
    /// Its label.
    pub(crate) label: &'static str,
    /// `text`, `readonly`, `password`, `select`, `textarea`, `number`.
    pub(crate) kind: &'static str,
    /// The current value (or what the user typed, after a refusal).
    pub(crate) value: String,
    /// For a select: (value, label).
    pub(crate) options: Vec<(String, String)>,
    /// The rule, shown under the input.
    pub(crate) hint: String,
    /// The API's refusal for this field.
    pub(crate) error: Option<String>,
}

/// A row of a list in a section (a secret, a key, a permission), with its own delete button.
pub(crate) struct Row {
    /// The cells, as text.
    pub(crate) cells: Vec<String>,
    /// The action its button posts to, with `item` = [`Row::item`]; empty: no button.
    pub(crate) action: String,
    /// The item the action applies to.
    pub(crate) item: String,
    /// The button's label.
    pub(crate) button: &'static str,
    /// What the browser asks before posting (empty: nothing).
    pub(crate) confirm: String,
    /// A link the first cell opens (empty: none).
    pub(crate) href: String,
}

/// One form of a panel.
pub(crate) struct Section {
    /// The HTML id (tests find forms by it).
    pub(crate) id: &'static str,
    /// Heading.
    pub(crate) title: String,
    /// A line of explanation.
    pub(crate) intro: String,
    /// The action the form posts to (`save`, `secret`, …); empty: no form, only the list.
    pub(crate) action: &'static str,
    /// The inputs.
    pub(crate) fields: Vec<Field>,
    /// The submit button's label.
    pub(crate) submit: &'static str,
    /// Header cells of the list.
    pub(crate) head: Vec<&'static str>,
    /// The list (secrets, keys, permissions, …).
    pub(crate) rows: Vec<Row>,
    /// A refusal that names no field of this form.
    pub(crate) error: Option<String>,
    /// What the browser asks before posting (empty: nothing).
    pub(crate) confirm: String,
    /// Why the form is disabled (a quota is full), if it is.
    pub(crate) disabled: Option<String>,
    /// A search form: `GET <panel>` with its fields as the query, no CSRF token (it changes nothing).
    pub(crate) get: bool,
    /// The version of the object the form and its rows change, as rendered (empty: none, e.g. declared by the
    /// routing file); posted as `version` and sent as `If-Match`.
    pub(crate) version: String,
}

/// A value shown exactly once (a new client secret), with a copy button.
pub(crate) struct Once {
    /// What it is.
    pub(crate) label: String,
    /// The value.
    pub(crate) value: String,
}

/// A panel page.
#[derive(Template)]
#[template(path = "console/panel.html")]
pub(crate) struct PanelPage {
    chrome: Chrome,
    /// The agent whose diagram the panel was opened from.
    agent: String,
    /// `agent`, `client`, `llm`, `enterprise`, `external`, `inbound`, `outbound`.
    kind: &'static str,
    /// The node (or edge's other end).
    id: String,
    /// Heading.
    title: String,
    /// Where the forms post (`/console/agents/{id}/nodes/{kind}/{node}`).
    base: String,
    sections: Vec<Section>,
    once: Option<Once>,
    notice: Option<String>,
}

// === impl Field ===

impl Field {
    /// A text input.
    pub(crate) fn text(name: &'static str, label: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value: value.into(),
            options: vec![],
            hint: String::new(),
            error: None,
        }
    }

    /// A value shown but never sent (an id, an immutable audience).
    pub(crate) fn readonly(
        name: &'static str,
        label: &'static str,
        value: impl Into<String>,
    ) -> Self {
        Self {
            kind: "readonly",
            ..Self::text(name, label, value)
        }
    }

    /// A secret input: never pre-filled, never echoed back.
    pub(crate) fn password(name: &'static str, label: &'static str) -> Self {
        Self {
            kind: "password",
            ..Self::text(name, label, "")
        }
    }

    /// Several values, one a line.
    pub(crate) fn lines(name: &'static str, label: &'static str, values: &[String]) -> Self {
        Self {
            kind: "textarea",
            ..Self::text(name, label, values.join("\n"))
        }
    }

    /// A choice among `options` (value, label).
    pub(crate) fn select(
        name: &'static str,
        label: &'static str,
        value: impl Into<String>,
        options: &[(&str, &str)],
    ) -> Self {
        Self {
            kind: "select",
            options: options
                .iter()
                .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
                .collect(),
            ..Self::text(name, label, value)
        }
    }

    /// A number input.
    pub(crate) fn number(
        name: &'static str,
        label: &'static str,
        value: impl Into<String>,
    ) -> Self {
        Self {
            kind: "number",
            ..Self::text(name, label, value)
        }
    }

    /// With the rule shown beside it.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

// === impl Row ===

impl Row {
    /// A row of text cells, without a button.
    pub(crate) fn cells(cells: Vec<String>) -> Self {
        Row {
            cells,
            action: String::new(),
            item: String::new(),
            button: "",
            confirm: String::new(),
            href: String::new(),
        }
    }

    /// A label and a value.
    pub(crate) fn fact(label: &str, value: &str) -> Self {
        Self::cells(vec![label.to_owned(), value.to_owned()])
    }

    /// A link.
    pub(crate) fn link(label: &str, href: String) -> Self {
        Row {
            href,
            ..Self::cells(vec![label.to_owned()])
        }
    }

    /// With a button posting `action` for `item`, asking `confirm` first.
    pub(crate) fn button(
        mut self,
        action: &str,
        item: &str,
        button: &'static str,
        confirm: String,
    ) -> Self {
        self.action = action.to_owned();
        self.item = item.to_owned();
        self.button = button;
        self.confirm = confirm;
        self
    }
}

// === impl Section ===

impl Section {
    /// A form posting to `action`.
    pub(crate) fn form(id: &'static str, title: impl Into<String>, action: &'static str) -> Self {
        Self {
            id,
            title: title.into(),
            intro: String::new(),
            action,
            fields: vec![],
            submit: "Save",
            head: vec![],
            rows: vec![],
            error: None,
            confirm: String::new(),
            disabled: None,
            get: false,
            version: String::new(),
        }
    }

    /// A search form ([`Section::get`]).
    pub(crate) fn searching(mut self) -> Self {
        self.get = true;
        self
    }

    /// Changing the object `object` (an admin API answer) at the version it shows.
    pub(crate) fn at(mut self, object: &Value) -> Self {
        self.version = object["version"]
            .as_u64()
            .map(|v| v.to_string())
            .unwrap_or_default();
        self
    }

    /// With a line of explanation.
    pub(crate) fn intro(mut self, intro: impl Into<String>) -> Self {
        self.intro = intro.into();
        self
    }

    /// With these inputs.
    pub(crate) fn fields(mut self, fields: Vec<Field>) -> Self {
        self.fields = fields;
        self
    }

    /// With this submit label.
    pub(crate) fn submit(mut self, submit: &'static str) -> Self {
        self.submit = submit;
        self
    }

    /// With a list.
    pub(crate) fn rows(mut self, head: Vec<&'static str>, rows: Vec<Row>) -> Self {
        self.head = head;
        self.rows = rows;
        self
    }

    /// Asking `confirm` before it posts.
    pub(crate) fn confirm(mut self, confirm: impl Into<String>) -> Self {
        self.confirm = confirm.into();
        self
    }

    /// Puts back what the user typed (never a password) when this form posted (`own`; not one of its rows), the
    /// version the form was rendered with, and the API's refusal beside the field it names; a refusal naming no
    /// field of this form goes above it.
    fn refused(&mut self, typed: &HashMap<String, String>, errors: &FieldErrors, own: bool) {
        if own {
            for f in &mut self.fields {
                if f.kind != "password" && f.kind != "readonly" {
                    f.value = typed.get(f.name).cloned().unwrap_or_default();
                }
            }
        }
        // The page's own version, not the one just read: after a 412 the next save must follow a reload.
        self.version = typed.get("version").cloned().unwrap_or_default();
        let mut rest = Vec::new();
        for (field, message) in &errors.fields {
            match self.fields.iter_mut().find(|f| f.name == field) {
                Some(f) => f.error = Some(message.clone()),
                None => rest.push(format!("{field}: {message}")),
            }
        }
        if let Some(general) = &errors.general {
            rest.insert(0, general.clone());
        }
        if !rest.is_empty() {
            self.error = Some(rest.join("; "));
        }
    }
}

// === impl PanelPage ===

impl PanelPage {
    /// A panel of `kind` for `id`, opened from `agent`'s diagram, posting under `base`.
    fn new(
        chrome: Chrome,
        agent: &str,
        kind: &'static str,
        id: &str,
        title: String,
        base: String,
    ) -> Self {
        Self {
            chrome,
            agent: agent.to_owned(),
            kind,
            id: id.to_owned(),
            title,
            base,
            sections: vec![],
            once: None,
            notice: None,
        }
    }

    /// The panel re-rendered after the API refused `action`: the section that posted it shows what the user
    /// typed and each refusal beside its field. 422 for the page.
    fn refused(
        mut self,
        action: &str,
        typed: &HashMap<String, String>,
        errors: &FieldErrors,
    ) -> Response {
        let posted = self
            .sections
            .iter_mut()
            .find(|s| s.action == action || s.rows.iter().any(|r| r.action == action));
        match posted {
            Some(s) => {
                let own = s.action == action;
                s.refused(typed, errors, own);
            }
            None => self.notice = Some(errors.summary()),
        }
        self.respond(StatusCode::UNPROCESSABLE_ENTITY)
    }
}

/// The API's refusal, field by field.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors {
    /// (form field, why), the field being the last name in the API's path (`agents[1].permission.users[0]` →
    /// `users`).
    pub(crate) fields: Vec<(String, String)>,
    /// The message when it names no field.
    pub(crate) general: Option<String>,
}

impl FieldErrors {
    /// Reads an admin API error body. A validation refusal lists `fields[{path, message}]`; a 400 says
    /// `field: why` in its message.
    pub(crate) fn of(body: &Value) -> Self {
        let error = &body["error"];
        let message = error["message"]
            .as_str()
            .unwrap_or("the request was refused");
        let mut out = FieldErrors::default();
        for f in error["fields"].as_array().into_iter().flatten() {
            if let (Some(path), Some(why)) = (f["path"].as_str(), f["message"].as_str()) {
                out.fields.push((field_of_path(path), why.to_owned()));
            }
        }
        if out.fields.is_empty() {
            match message.split_once(": ") {
                Some((field, why))
                    if !field.is_empty()
                        && field
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
                {
                    out.fields.push((field_of_path(field), why.to_owned()))
                }
                _ => out.general = Some(message.to_owned()),
            }
        }
        out
    }

    /// Everything, on one line.
    fn summary(&self) -> String {
        let mut parts: Vec<String> = self.general.iter().cloned().collect();
        parts.extend(self.fields.iter().map(|(f, m)| format!("{f}: {m}")));
        parts.join("; ")
    }
}

/// The form field an API error path names: its last name, indices dropped.
pub(crate) fn field_of_path(path: &str) -> String {
    path.rsplit('.')
        .map(|seg| seg.split('[').next().unwrap_or_default())
        .find(|seg| !seg.is_empty())
        .unwrap_or(path)
        .to_owned()
}

/// `value` percent-encoded for one path segment.
pub(super) fn seg(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Splits a list typed one a line (or separated by commas or spaces).
pub(super) fn split_list(text: Option<&String>) -> Vec<String> {
    text.map(|t| {
        t.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// A string array of a JSON value.
pub(super) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON string field as text.
pub(super) fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`; `—` for 0 (not recorded).
pub(super) fn when(secs: u64) -> String {
    if secs == 0 {
        return "—".to_owned();
    }
    idguard_config::clock::rfc3339(secs)
        .replacen('T', " ", 1)
        .replace('Z', " UTC")
}

/// A 303 to `location`.
pub(super) fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The outcome of a form's API call: done (go back to the panel), or refused (re-render with errors).
pub(super) enum Outcome {
    /// Done: show the panel again (a 303 to it).
    Done,
    /// Done, and the panel shows this value once.
    Once(Once),
    /// Refused by the API, field by field.
    Refused(FieldErrors),
}

/// What a form says when the object changed after its page was rendered (the API's 412).
pub(crate) const STALE: &str = "Changed since you opened it: reload the page to see the change, then make yours again. Nothing was saved.";

/// Judges an API answer to a write: 2xx is done; 400, 409, 412, 413, 422 are refusals shown beside their
/// fields (412: [`STALE`], above the form); anything else is the console error it maps to.
pub(super) fn judge(status: StatusCode, body: &Value) -> Result<Outcome, ConsoleError> {
    if status.is_success() {
        return Ok(Outcome::Done);
    }
    match status.as_u16() {
        412 => Ok(Outcome::Refused(FieldErrors {
            fields: vec![],
            general: Some(STALE.to_owned()),
        })),
        400 | 409 | 413 | 422 => Ok(Outcome::Refused(FieldErrors::of(body))),
        _ => Err(api_error(status, body)),
    }
}

/// What a panel handler answers after a POST: back to the panel, the panel with a value shown once, or the
/// panel with the refusal beside its fields.
pub(super) fn after(
    outcome: Outcome,
    panel: impl FnOnce() -> Option<PanelPage>,
    base: &str,
    action: &str,
    typed: &HashMap<String, String>,
) -> Response {
    match outcome {
        Outcome::Done => see_other(base),
        Outcome::Once(once) => match panel() {
            Some(mut p) => {
                p.once = Some(once);
                p.respond(StatusCode::OK)
            }
            None => see_other(base),
        },
        Outcome::Refused(errors) => match panel() {
            Some(p) => p.refused(action, typed, &errors),
            None => ConsoleError::Invalid(errors.summary()).into_response(),
        },
    }
}

/// The version a form was rendered with (its `version` field), for `If-Match`; `None` when it carries none.
///
/// # Errors
/// [`ConsoleError::Invalid`] naming `version` when it is not a number.
pub(super) fn version_of(fields: &HashMap<String, String>) -> Result<Option<u64>, ConsoleError> {
    fields
        .get("version")
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|_| {
            ConsoleError::Invalid("version: the version the page was opened at, a number".into())
        })
}

/// The agent's topology (`GET /admin/v1/agents/{id}/topology`), for `used_by` lists and edges.
pub(super) async fn topology(page: &Page, agent: &str) -> Result<Value, ConsoleError> {
    let (status, body) = page
        .api(
            Method::GET,
            &format!("/admin/v1/agents/{}/topology", seg(agent)),
            None,
        )
        .await;
    if status != StatusCode::OK {
        return Err(api_error(status, &body));
    }
    Ok(body)
}

/// The query string's fields.
pub(super) fn query(raw: &RawQuery) -> Result<HashMap<String, String>, ConsoleError> {
    parse_query(raw.0.as_deref().unwrap_or_default().as_bytes())
}

/// The path parameters of a panel: the agent, the kind, the node.
pub(super) type PanelPath = Path<(String, String, String)>;

/// The path parameters of a panel's action: the agent, the kind, the node, the action.
pub(super) type ActionPath = Path<(String, String, String, String)>;

/// A JSON object of the form's `names` that were filled in.
pub(super) fn body_of(fields: &HashMap<String, String>, names: &[&str]) -> Value {
    let mut body = json!({});
    for name in names {
        if let Some(v) = fields.get(*name) {
            body[*name] = json!(v);
        }
    }
    body
}

#[cfg(test)]
mod tests;
