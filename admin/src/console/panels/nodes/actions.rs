//! The node panels' forms: each `POST` of a node panel, carried out through the admin API as the operator.

use std::collections::HashMap;

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::super::super::ConsoleError;
use super::super::super::pages::{Page, PageForm};
use super::super::{
    ActionPath, Once, Outcome, after, body_of, cascade_lines, delete_with_confirmation, judge, seg,
    split_list, text, topology, version_of,
};
use super::{PRESETS, api_path, base, build, get};

/// `POST /console/agents/{id}/nodes/{kind}/{node}/{action}`: one of the panel's forms.
pub(in crate::console) async fn node_action(
    path: ActionPath,
    form: PageForm,
) -> Result<Response, ConsoleError> {
    let (agent, kind, id, action) = path.0;
    let (page, f) = (&form.page, &form.fields);
    let item = f.get("item").map(String::as_str).unwrap_or_default();
    // Every change is of the object at the version its panel showed (the form's `version`), or refused.
    let at = version_of(f)?;
    let outcome = match (kind.as_str(), action.as_str()) {
        (_, "save") => match save_body(&kind, f) {
            Some(body) => write(page, at, Method::PATCH, &api_path(&kind, &id), &body).await?,
            None => return Err(ConsoleError::NotFound),
        },
        ("agent" | "client", "secret" | "delete-secret" | "key" | "delete-key") => {
            principal_action(page, at, &api_path(&kind, &id), &action, item, f).await?
        }
        ("agent", "permission") => {
            let mut body = body_of(f, &["name", "scope", "mode"]);
            for list in ["users", "groups", "organizations"] {
                let values = split_list(f.get(list));
                if !values.is_empty() {
                    body[list] = json!(values);
                }
            }
            let path = format!("/admin/v1/agents/{}/permission", seg(&id));
            write(page, at, Method::PUT, &path, &body).await?
        }
        ("llm" | "external", "rotate" | "rollback") => {
            let node = get(page, &api_path(&kind, &id)).await?;
            let value = format!(
                "/admin/v1/credentials/{}/value",
                seg(&text(&node, "credential"))
            );
            if action == "rollback" {
                write(
                    page,
                    at,
                    Method::POST,
                    &format!("{value}/rollback"),
                    &Value::Null,
                )
                .await?
            } else {
                write(page, at, Method::PUT, &value, &rotation(f)).await?
            }
        }
        ("enterprise", "add-permission" | "remove-permission") => {
            let service = get(page, &api_path(&kind, &id)).await?;
            let body = json!({ "permissions": permissions(&service, &action, item, f) });
            write(page, at, Method::PATCH, &api_path(&kind, &id), &body).await?
        }
        (_, "delete") => return delete(&form, &agent, &kind, &id).await,
        _ => return Err(ConsoleError::NotFound),
    };
    let panel = match &outcome {
        Outcome::Done => None,
        _ => Some(build(page, &agent, &kind, &id, None).await?),
    };
    Ok(after(
        outcome,
        || panel,
        &base(&agent, &kind, &id),
        &action,
        f,
    ))
}

/// The `PATCH` body of a node's *General* form; `None` for an unknown kind.
fn save_body(kind: &str, f: &HashMap<String, String>) -> Option<Value> {
    let enabled = |body: &mut Value| {
        if let Some(e) = f.get("enabled") {
            body["enabled"] = json!(e == "yes");
        }
    };
    let body = match kind {
        "agent" => {
            let mut body = body_of(f, &["name", "auth", "endpoint"]);
            enabled(&mut body);
            body
        }
        "client" => {
            let mut body = body_of(f, &["name", "auth"]);
            for list in ["redirect_uris", "users", "groups", "organizations"] {
                body[list] = json!(split_list(f.get(list)));
            }
            enabled(&mut body);
            body
        }
        "llm" | "external" => {
            let mut body = body_of(
                f,
                &["name", "upstream", "style", "header", "prefix", "query"],
            );
            // A preset fills what was left empty (the script fills it as soon as one is picked).
            let preset = PRESETS
                .iter()
                .find(|p| kind == "llm" && Some(p.0) == f.get("preset").map(String::as_str));
            if let Some((_, _, url, style)) = preset {
                if body.get("upstream").is_none() && !url.is_empty() {
                    body["upstream"] = json!(url);
                }
                if body.get("style").is_none() && !style.is_empty() {
                    body["style"] = json!(style);
                }
            }
            if kind == "external" && (f.contains_key("token_url") || f.contains_key("client_id")) {
                body["oauth"] = json!({
                    "token_url": f.get("token_url").cloned().unwrap_or_default(),
                    "client_id": f.get("client_id").cloned().unwrap_or_default(),
                    "scopes": split_list(f.get("scopes")),
                });
            }
            body
        }
        "enterprise" => body_of(f, &["name", "upstream"]),
        _ => return None,
    };
    Some(body)
}

/// The body of a key rotation: the value, and the overlap as a number when it is one (otherwise as typed, for
/// the API to refuse naming `grace_seconds`).
fn rotation(f: &HashMap<String, String>) -> Value {
    let mut body = body_of(f, &["value"]);
    if let Some(grace) = f.get("grace_seconds") {
        body["grace_seconds"] = match grace.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(grace),
        };
    }
    body
}

/// An enterprise service's permissions with one added (`add-permission`) or the scope `item` removed.
fn permissions(
    service: &Value,
    action: &str,
    item: &str,
    f: &HashMap<String, String>,
) -> Vec<Value> {
    let mut list: Vec<Value> = service["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| action != "remove-permission" || p["scope"] != item)
        .cloned()
        .collect();
    if action == "add-permission" {
        let mut p = body_of(f, &["name"]);
        p["scope"] = json!(f.get("scope").cloned().unwrap_or_default());
        list.push(p);
    }
    list
}

/// A client secret or public key of an agent or client (`principal` is its API path) made or deleted.
async fn principal_action(
    page: &Page,
    at: Option<u64>,
    principal: &str,
    action: &str,
    item: &str,
    f: &HashMap<String, String>,
) -> Result<Outcome, ConsoleError> {
    match action {
        "secret" => {
            let (status, body) = page
                .api_at(Method::POST, &format!("{principal}/secrets"), None, at)
                .await;
            Ok(match judge(status, &body)? {
                Outcome::Done => Outcome::Once(Once {
                    label: format!(
                        "Client secret {} (fingerprint {}) — copy it now: it is not shown again",
                        text(&body, "id"),
                        text(&body, "fingerprint")
                    ),
                    value: text(&body, "secret"),
                }),
                other => other,
            })
        }
        "key" => {
            let mut body = body_of(f, &["id"]);
            if let Some(key) = f.get("key") {
                match serde_json::from_str::<Value>(key) {
                    Ok(jwk @ Value::Object(_)) => body["jwk"] = jwk,
                    _ => body["pem"] = json!(key),
                }
            }
            write(page, at, Method::POST, &format!("{principal}/keys"), &body).await
        }
        "delete-secret" => {
            let path = format!("{principal}/secrets/{}", seg(item));
            write(page, at, Method::DELETE, &path, &Value::Null).await
        }
        _ => {
            let path = format!("{principal}/keys/{}", seg(item));
            write(page, at, Method::DELETE, &path, &Value::Null).await
        }
    }
}

/// `method path` with `body` (none when null), of the object at version `at`.
async fn write(
    page: &Page,
    at: Option<u64>,
    method: Method,
    path: &str,
    body: &Value,
) -> Result<Outcome, ConsoleError> {
    let body = (!body.is_null()).then_some(body);
    let (status, answer) = page.api_at(method, path, body, at).await;
    judge(status, &answer)
}

/// Deletes the node, asking first when the delete cascades.
async fn delete(
    form: &PageForm,
    agent: &str,
    kind: &str,
    id: &str,
) -> Result<Response, ConsoleError> {
    let page = &form.page;
    let back = base(agent, kind, id);
    let action = format!("{back}/delete");
    let diagram = format!("/console/agents/{}", seg(agent));
    if kind == "agent" {
        // The agent's own authorizations, secrets and keys always go with it: say which, and ask.
        let topo = topology(page, id).await?;
        let me = get(page, &api_path(kind, id)).await?;
        let mut removes: Vec<String> = topo["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| match e["kind"].as_str() {
                Some("outbound") => Some(format!(
                    "the outbound authorization {id} → {}",
                    text(e, "to")
                )),
                Some("inbound") => Some(format!(
                    "the inbound authorization {} → {id}",
                    text(e, "from")
                )),
                _ => None,
            })
            .collect();
        for s in me["secrets"].as_array().into_iter().flatten() {
            removes.push(format!("the client secret {}", text(s, "id")));
        }
        for k in me["keys"].as_array().into_iter().flatten() {
            removes.push(format!("the public key {}", text(k, "id")));
        }
        return delete_with_confirmation(
            form,
            &api_path(kind, id),
            format!("Delete agent {id}?"),
            removes,
            true,
            action,
            &back,
            "/console/agents",
        )
        .await;
    }
    let topo = topology(page, agent).await?;
    let edge = if kind == "client" {
        "inbound"
    } else {
        "outbound"
    };
    let removes = cascade_lines(&topo, id, edge);
    delete_with_confirmation(
        form,
        &api_path(kind, id),
        format!("Delete {kind} {id}?"),
        removes,
        false,
        action,
        &back,
        &diagram,
    )
    .await
}

#[cfg(test)]
mod tests;
