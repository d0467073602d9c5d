//! The operators page (`/console/operators`, owners only: the API refuses the list, and every write, to anyone
//! else): the operators filtered by role or text, and the owner's forms — create one bound to a directory user or
//! holding a token (shown once, with a copy button), change its role, rebind its user, delete it (asking first,
//! naming it). Every form goes through the admin API's operator routes as the signed-in owner; a refusal is shown
//! beside the field it names, with what was typed kept.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::super::ConsoleError;
use super::super::pages::{Page, PageForm, Respond, api_error};
use super::{
    Field, FieldErrors, Once, Outcome, PanelPage, Row, Section, after, body_of, judge, query, seg,
    text, when,
};

/// Where the page is, and where its forms post (`<BASE>/<action>`).
const BASE: &str = "/console/operators";

const ROLES: &[(&str, &str)] = &[
    ("viewer", "viewer — reads everything, changes nothing"),
    ("editor", "editor — changes the topology"),
    ("owner", "owner — also operators and the whole audit log"),
];

/// How a new operator signs in.
const SIGN_IN: &[(&str, &str)] = &[
    ("user", "as a directory user (console sign-in)"),
    ("token", "with a bearer token (shown once)"),
];

/// `GET /console/operators?q=&role=`: the operators, filtered, with the owner's forms.
pub(in crate::console) async fn operators(
    page: Page,
    raw: RawQuery,
) -> Result<Response, ConsoleError> {
    let filter = query(&raw)?;
    Ok(build(&page, &filter).await?.respond(StatusCode::OK))
}

/// `POST /console/operators/{action}`: `create`, `role`, `rebind` or `delete`.
pub(in crate::console) async fn operator_action(
    Path(action): Path<String>,
    form: PageForm,
) -> Result<Response, ConsoleError> {
    let (page, f) = (&form.page, &form.fields);
    let target = |f: &HashMap<String, String>| {
        let id = f.get("operator").or_else(|| f.get("item"));
        format!("/admin/v1/operators/{}", seg(id.map_or("", String::as_str)))
    };
    let outcome = match action.as_str() {
        "create" => create(page, f).await?,
        "role" => {
            let body = body_of(f, &["role"]);
            write(page, Method::PATCH, &target(f), Some(&body)).await?
        }
        "rebind" => match f.get("user") {
            Some(_) => {
                let body = body_of(f, &["user"]);
                write(page, Method::PATCH, &target(f), Some(&body)).await?
            }
            None => refused("user", "name the directory user to bind"),
        },
        "delete" => write(page, Method::DELETE, &target(f), None).await?,
        _ => return Err(ConsoleError::NotFound),
    };
    let panel = match &outcome {
        Outcome::Done => None,
        _ => Some(build(page, &HashMap::new()).await?),
    };
    Ok(after(outcome, || panel, BASE, &action, f))
}

/// Creates the operator; with `signin=token`, issues its first token and shows it once.
async fn create(page: &Page, f: &HashMap<String, String>) -> Result<Outcome, ConsoleError> {
    let with_token = f.get("signin").map(String::as_str) == Some("token");
    let mut body = body_of(f, &["id", "name", "role"]);
    match (with_token, f.get("user")) {
        (false, Some(user)) => body["user"] = json!(user),
        (false, None) => return Ok(refused("user", "name the directory user who signs in")),
        (true, Some(_)) => {
            return Ok(refused(
                "user",
                "leave empty for an operator with a token (or choose directory user)",
            ));
        }
        (true, None) => {}
    }
    let (status, created) = page
        .api(Method::POST, "/admin/v1/operators", Some(&body))
        .await;
    let outcome = judge(status, &created)?;
    if !with_token || !matches!(outcome, Outcome::Done) {
        return Ok(outcome);
    }
    let id = text(&created, "id");
    let path = format!("/admin/v1/operators/{}/tokens", seg(&id));
    let (status, token) = page
        .api(Method::POST, &path, Some(&json!({"name": "console"})))
        .await;
    Ok(match judge(status, &token)? {
        Outcome::Done => Outcome::Once(Once {
            label: format!(
                "Token {} of operator {id} — copy it now: it is not shown again",
                text(&token, "id")
            ),
            value: text(&token, "token"),
        }),
        other => other,
    })
}

async fn write(
    page: &Page,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Outcome, ConsoleError> {
    let (status, answer) = page.api(method, path, body).await;
    judge(status, &answer)
}

/// A refusal of the console's own, beside `field`, before asking the API.
fn refused(field: &str, why: &str) -> Outcome {
    Outcome::Refused(FieldErrors {
        fields: vec![(field.to_owned(), why.to_owned())],
        general: None,
    })
}

/// The page: the filter, the list, and (for an owner) the forms.
async fn build(page: &Page, filter: &HashMap<String, String>) -> Result<PanelPage, ConsoleError> {
    let (status, body) = page
        .api(Method::GET, "/admin/v1/operators?limit=1000", None)
        .await;
    if status != StatusCode::OK {
        return Err(api_error(status, &body));
    }
    let chrome = page.chrome();
    let owner = chrome.role == "owner";
    let mut panel = PanelPage::new(
        chrome,
        "",
        "operators",
        "",
        "Operators".to_owned(),
        BASE.to_owned(),
    );
    let q = filter.get("q").cloned().unwrap_or_default();
    let role = filter.get("role").cloned().unwrap_or_default();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let ids: Vec<(String, String)> = items
        .iter()
        .map(|o| (text(o, "id"), text(o, "id")))
        .collect();
    let shown: Vec<&Value> = items.iter().filter(|o| matches(o, &q, &role)).collect();
    let mut roles = vec![("", "any role")];
    roles.extend(ROLES.iter().map(|(v, _)| (*v, *v)));
    panel.sections.push(
        Section::form("filter", "Filter", "filter")
            .searching()
            .fields(vec![
                Field::text("q", "Text", q).hint("Part of an id, name or directory user."),
                Field::select("role", "Role", role, &roles),
            ])
            .submit("Filter"),
    );
    let mut list = Section::form("operators", "Operators", "")
        .intro("Who may use the admin API and this console, with which role. Tokens are listed by id only: a token is shown once, when it is issued.")
        .rows(
            vec!["Id", "Name", "Role", "Directory user", "Tokens"],
            shown.iter().map(|o| row(o, owner)).collect(),
        );
    if shown.is_empty() {
        list = list.intro("No operator matches the filter.");
    }
    panel.sections.push(list);
    if !owner {
        // The API refuses the list to anyone else; should that change, the page still offers no controls.
        return Ok(panel);
    }
    let options: Vec<(&str, &str)> = ids.iter().map(|(v, l)| (v.as_str(), l.as_str())).collect();
    panel.sections.push(
        Section::form("create", "Create an operator", "create")
            .fields(vec![
                Field::text("id", "Operator id", "").hint("Optional: generated when empty. Letters, digits, '-', '_', '.', '@'; not \"admin\". It names the operator in the audit log."),
                Field::text("name", "Name", "").hint("Optional display name."),
                Field::select("role", "Role", "viewer", ROLES),
                Field::select("signin", "Signs in", "user", SIGN_IN).hint("A directory user signs in to this console; a token is for the admin API, shown once on the next page."),
                Field::text("user", "Directory user", "").hint("The user's id, bound to no other operator. Empty for an operator with a token."),
            ])
            .submit("Create operator"),
    );
    if !options.is_empty() {
        panel.sections.push(
            Section::form("change-role", "Change a role", "role")
                .fields(vec![
                    Field::select("operator", "Operator", "", &options),
                    Field::select("role", "New role", "viewer", ROLES)
                        .hint("In force from the operator's next request."),
                ])
                .submit("Change role"),
        );
        panel.sections.push(
            Section::form("rebind", "Rebind a directory user", "rebind")
                .fields(vec![
                    Field::select("operator", "Operator", "", &options),
                    Field::text("user", "Directory user", "").hint("The user who signs in as this operator from now on; the previous user's sessions end."),
                ])
                .submit("Rebind"),
        );
    }
    Ok(panel)
}

/// Whether the operator `o` passes the filter: `role` exactly (empty: any), `q` within its id, name or user
/// (case-insensitive; empty: any).
fn matches(o: &Value, q: &str, role: &str) -> bool {
    let q = q.to_lowercase();
    (role.is_empty() || o["role"] == role)
        && (q.is_empty()
            || ["id", "name", "user"]
                .iter()
                .any(|k| text(o, k).to_lowercase().contains(&q)))
}

/// One operator's row; an owner's has a delete button that asks first, naming the operator.
fn row(o: &Value, owner: bool) -> Row {
    let id = text(o, "id");
    let tokens: Vec<String> = o["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let expires = t["expires_at"]
                .as_u64()
                .map_or("never expires".to_owned(), |e| {
                    format!("expires {}", when(e))
                });
            format!("{} {} ({expires})", text(t, "id"), text(t, "name"))
        })
        .collect();
    let row = Row::cells(vec![
        id.clone(),
        text(o, "name"),
        text(o, "role"),
        text(o, "user"),
        tokens.join("; "),
    ]);
    if !owner {
        return row;
    }
    let confirm = format!(
        "Delete the operator {id}? Its tokens stop working and its directory user can no longer sign in."
    );
    row.button("delete", &id, "Delete", confirm)
}
