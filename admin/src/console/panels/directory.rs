//! The directory (users, groups, the organization tree) and the audit log, read through the admin API as the
//! signed-in operator (the audit log: owners see every record, others their own).

use askama::Template;
use axum::extract::RawQuery;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::super::ConsoleError;
use super::super::pages::{Chrome, Page, Respond, api_error};
use super::{query, strings, text, when};

/// One organization in the tree, indented by its depth.
pub(crate) struct OrgRow {
    /// Id.
    pub(crate) id: String,
    /// Display name.
    pub(crate) name: String,
    /// Depth in the tree (0: a root).
    pub(crate) depth: usize,
}

#[derive(Template)]
#[template(path = "console/directory.html")]
struct DirectoryPage {
    chrome: Chrome,
    q: String,
    users: Vec<Vec<String>>,
    groups: Vec<Vec<String>>,
    organizations: Vec<OrgRow>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    filters: Vec<(&'static str, &'static str, String)>,
    records: Vec<Vec<String>>,
    next: Option<String>,
    error: Option<String>,
}

/// Every item of a list (following `next_cursor`, at most `pages` pages of 1000).
async fn all(page: &Page, path: &str, pages: usize) -> Result<Vec<Value>, ConsoleError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..pages {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=1000&cursor={}", super::seg(c)),
            None => format!("{path}{sep}limit=1000"),
        };
        let (status, body) = page.api(Method::GET, &url, None).await;
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    Ok(items)
}

/// `GET /console/directory?q=`: users, groups and the organization tree, searched by id or name.
pub(in crate::console) async fn directory(
    page: Page,
    raw: RawQuery,
) -> Result<Response, ConsoleError> {
    let q = query(&raw)?.remove("q").unwrap_or_default();
    let filter = if q.is_empty() {
        String::new()
    } else {
        format!("?q={}", super::seg(&q))
    };
    let users = all(&page, &format!("/admin/v1/users{filter}"), 10)
        .await?
        .iter()
        .map(|u| {
            vec![
                text(u, "id"),
                text(u, "name"),
                text(u, "email"),
                text(u, "organization"),
                strings(&u["groups"]).join(", "),
            ]
        })
        .collect();
    let groups = all(&page, &format!("/admin/v1/groups{filter}"), 10)
        .await?
        .iter()
        .map(|g| vec![text(g, "id"), text(g, "name")])
        .collect();
    // The tree is drawn from every organization (a match deep in the tree keeps its parents).
    let orgs = all(&page, "/admin/v1/organizations", 10).await?;
    let organizations = tree(&orgs, &q);
    DirectoryPage {
        chrome: page.chrome(),
        q,
        users,
        groups,
        organizations,
    }
    .respond_ok()
}

/// The organizations as a tree, depth first, each under its parent; with `q`, only matches and their parents.
pub(crate) fn tree(orgs: &[Value], q: &str) -> Vec<OrgRow> {
    let q = q.to_lowercase();
    let parent_of = |id: &str| {
        orgs.iter()
            .find(|o| o["id"] == id)
            .map(|o| text(o, "parent"))
            .unwrap_or_default()
    };
    let matches = |o: &Value| {
        q.is_empty()
            || text(o, "id").to_lowercase().contains(&q)
            || text(o, "name").to_lowercase().contains(&q)
    };
    // Keep the matches and every ancestor of one.
    let mut keep = std::collections::BTreeSet::new();
    for o in orgs.iter().filter(|o| matches(o)) {
        let mut id = text(o, "id");
        // Bounded by the number of organizations: a cycle cannot loop forever.
        for _ in 0..=orgs.len() {
            if id.is_empty() || !keep.insert(id.clone()) {
                break;
            }
            id = parent_of(&id);
        }
    }
    let is_root = |o: &Value| {
        let p = text(o, "parent");
        // A parent that is not in the list makes the organization a root.
        p.is_empty() || !orgs.iter().any(|x| x["id"] == p.as_str())
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    walk(orgs, &keep, None, 0, &is_root, &mut seen, &mut out);
    out
}

fn walk(
    orgs: &[Value],
    keep: &std::collections::BTreeSet<String>,
    parent: Option<&str>,
    depth: usize,
    is_root: &dyn Fn(&Value) -> bool,
    seen: &mut std::collections::BTreeSet<String>,
    out: &mut Vec<OrgRow>,
) {
    let mut children: Vec<&Value> = orgs
        .iter()
        .filter(|o| keep.contains(&text(o, "id")))
        .filter(|o| match parent {
            None => is_root(o),
            Some(p) => text(o, "parent") == p,
        })
        .collect();
    children.sort_by_key(|o| text(o, "id"));
    for c in children {
        let id = text(c, "id");
        // `seen` guards against a cycle.
        if seen.insert(id.clone()) {
            out.push(OrgRow {
                id: id.clone(),
                name: text(c, "name"),
                depth,
            });
            walk(orgs, keep, Some(&id), depth + 1, is_root, seen, out);
        }
    }
}

/// The audit filters: (query name, label, placeholder).
const FILTERS: &[(&str, &str)] = &[
    ("kind", "Kind"),
    ("id", "Object id"),
    ("action", "Action"),
    ("actor", "Actor"),
    ("since", "Since (Unix s)"),
    ("until", "Until (Unix s)"),
];

/// `GET /console/audit?kind=&id=&action=&actor=&since=&until=&cursor=`: the audit log, newest first, filtered
/// by the admin API itself (owners read every record, others their own).
pub(in crate::console) async fn audit(page: Page, raw: RawQuery) -> Result<Response, ConsoleError> {
    let q = query(&raw)?;
    let mut filters = Vec::new();
    let mut given = Vec::new();
    for (name, label) in FILTERS {
        let value = q.get(*name).cloned().unwrap_or_default();
        if !value.is_empty() {
            given.push((*name, value.clone()));
        }
        filters.push((*name, *label, value));
    }
    let path = {
        // A serializer is not `Send`: finished before the await.
        let mut api = form_urlencoded::Serializer::new(String::new());
        api.append_pair("limit", "50");
        for (name, value) in &given {
            api.append_pair(name, value);
        }
        if let Some(c) = q.get("cursor") {
            api.append_pair("cursor", c);
        }
        format!("/admin/v1/audit?{}", api.finish())
    };
    let (status, body) = page.api(Method::GET, &path, None).await;
    let (records, next, error) = match status.as_u16() {
        200 => {
            let records = body["records"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        when(r["at"].as_u64().unwrap_or(0)),
                        text(r, "actor"),
                        text(r, "auth"),
                        text(r, "action"),
                        text(r, "kind"),
                        text(r, "id"),
                        text(r, "request_id"),
                    ]
                })
                .collect();
            let next = body["next_cursor"].as_str().map(|c| {
                let mut link = form_urlencoded::Serializer::new(String::new());
                for (name, value) in &given {
                    link.append_pair(name, value);
                }
                link.append_pair("cursor", c);
                link.finish()
            });
            (records, next, None)
        }
        // A filter the API refuses is shown beside the filters, with what was typed kept.
        400 | 403 => (
            vec![],
            None,
            Some(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("the filter was refused")
                    .to_owned(),
            ),
        ),
        _ => return Err(api_error(status, &body)),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(AuditPage {
        chrome: page.chrome(),
        filters,
        records,
        next,
        error,
    }
    .respond(status))
}

trait RespondOk: Respond {
    fn respond_ok(&self) -> Result<Response, ConsoleError> {
        Ok(self.respond(StatusCode::OK))
    }
}

impl<T: Respond> RespondOk for T {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn organizations_form_a_tree_and_a_search_keeps_the_parents() {
        let orgs = vec![
            json!({"id": "acme"}),
            json!({"id": "sales", "parent": "acme"}),
            json!({"id": "emea", "parent": "sales"}),
            json!({"id": "beta"}),
            json!({"id": "lost", "parent": "gone"}),
        ];
        let rows: Vec<(String, usize)> = tree(&orgs, "")
            .into_iter()
            .map(|r| (r.id, r.depth))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("acme".into(), 0),
                ("sales".into(), 1),
                ("emea".into(), 2),
                ("beta".into(), 0),
                ("lost".into(), 0)
            ]
        );
        let rows: Vec<String> = tree(&orgs, "emea").into_iter().map(|r| r.id).collect();
        assert_eq!(rows, vec!["acme", "sales", "emea"]);
    }
}
