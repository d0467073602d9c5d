//! Deleting from a panel: a delete that would withdraw something else first tries without the cascade; the API's
//! 409 `in_use` answer (and the topology's `used_by`) makes a confirmation page naming exactly what the cascade
//! removes. The version the panel showed travels through the confirmation page to `If-Match`.

use askama::Template;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::super::ConsoleError;
use super::super::pages::{Chrome, PageForm, Respond, api_error};
use super::{STALE, see_other, version_of};

/// What a delete would remove, for the confirmation page.
#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    title: String,
    message: String,
    removes: Vec<String>,
    action: String,
    back: String,
    hidden: Vec<(&'static str, String)>,
}

/// Deletes `api_path` as the operator, at the version the form was rendered with. Without `confirmed`, a delete
/// the API refuses as in use (409 `in_use`) becomes a confirmation page naming `removes` (what the cascade would
/// withdraw) and the API's own message; confirmed, it deletes with `?cascade=true`. `always_confirm` asks even when nothing else goes (the agent,
/// whose own authorizations always go with it). Answers a 303 to `gone` once deleted.
#[allow(clippy::too_many_arguments)]
pub(super) async fn delete_with_confirmation(
    form: &PageForm,
    api_path: &str,
    title: String,
    removes: Vec<String>,
    always_confirm: bool,
    action: String,
    back: &str,
    gone: &str,
) -> Result<Response, ConsoleError> {
    let confirmed = form.fields.get("confirm").map(String::as_str) == Some("yes");
    if always_confirm && !confirmed {
        return Ok(confirmation(form, title, String::new(), removes, action, back).await);
    }
    let path = if confirmed {
        format!("{api_path}?cascade=true")
    } else {
        api_path.to_owned()
    };
    let version = version_of(&form.fields)?;
    let (status, body) = form.page.api_at(Method::DELETE, &path, None, version).await;
    if status.is_success() {
        return Ok(see_other(gone));
    }
    if status == StatusCode::PRECONDITION_FAILED {
        return Err(ConsoleError::Invalid(STALE.to_owned()));
    }
    if status == StatusCode::CONFLICT && body["error"]["code"] == "in_use" && !confirmed {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Ok(confirmation(form, title, message, removes, action, back).await);
    }
    Err(api_error(status, &body))
}

async fn confirmation(
    form: &PageForm,
    title: String,
    message: String,
    removes: Vec<String>,
    action: String,
    back: &str,
) -> Response {
    ConfirmPage {
        chrome: form.page.chrome(),
        title,
        message,
        removes,
        action,
        back: back.to_owned(),
        hidden: [("confirm", "yes".to_owned())]
            .into_iter()
            .chain(form.fields.get("version").map(|v| ("version", v.clone())))
            .collect(),
    }
    .respond(StatusCode::CONFLICT)
}

/// What deleting node `id` with the cascade withdraws: one line per agent using it (its `used_by`).
pub(super) fn cascade_lines(topology: &Value, id: &str, edge: &str) -> Vec<String> {
    let node = topology["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == id && n["kind"] != "credential" && n["kind"] != "agent");
    node.map(|n| {
        n["used_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| u["kind"] == "agent")
            .map(|u| {
                let agent = u["id"].as_str().unwrap_or_default();
                if edge == "inbound" {
                    format!("the inbound authorization {id} → {agent}")
                } else {
                    format!("the outbound authorization {agent} → {id}")
                }
            })
            .collect()
    })
    .unwrap_or_default()
}
