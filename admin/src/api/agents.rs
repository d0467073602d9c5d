//! Agents: `/admin/v1/agents`. The Agent ID is generated; the audience is derived from it unless given; both are
//! immutable. Deleting an agent withdraws its outbound and inbound authorizations.
//!
//! An agent's authentication method (`auth`: `client_secret` or `private_key_jwt`) can be changed, as the console
//! allows, but only while the agent holds no credentials of the method it leaves: switching to `private_key_jwt`
//! is refused (422 `agents.auth`) while it has client secrets, and back to `client_secret` while it has public keys.
//! Nothing is cleared implicitly: the operator deletes the old secrets or keys first, and sees what goes.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawAgent, RawConfig};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::authorizations::{Inbound, Outbound, withdraw};
use super::core::{
    Current, Idempotency, Resource, Result, answer_stored, change, check_upstream, create,
    delete as delete_one, get as get_one, if_match, invalid, list, parse, random_id, unchanged,
};
use super::principals::{key_ids, secret_views};
use super::write::Plan;
use idguard_config::defaults;

/// Agents.
pub(super) struct Agents;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: Option<String>,
    audience: Option<String>,
    enabled: Option<bool>,
    auth: Option<String>,
    endpoint: Option<String>,
    token_ttl_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchAgent {
    id: Option<String>,
    name: Option<String>,
    audience: Option<String>,
    enabled: Option<bool>,
    auth: Option<String>,
    endpoint: Option<String>,
    token_ttl_seconds: Option<u64>,
}

// === impl Agents ===

impl Resource for Agents {
    const KIND: Kind = Kind::Agent;
    type Raw = RawAgent;

    fn file(file: &RawConfig) -> &[RawAgent] {
        &file.agents
    }

    fn id(raw: &RawAgent) -> Cow<'_, str> {
        Cow::Borrowed(&raw.id)
    }

    fn view(api: &AdminApi, a: &RawAgent) -> Value {
        json!({
            "id": a.id,
            "name": defaults::display_name(a.name.as_deref(), &a.id),
            "audience": a.audience.clone().unwrap_or_else(|| defaults::agent_audience(&a.id)),
            "enabled": a.enabled.unwrap_or(defaults::ENABLED),
            "permission": a.permission.clone().unwrap_or_default(),
            "auth": a.auth.clone().unwrap_or_else(|| defaults::CLIENT_AUTH.into()),
            "secrets": secret_views(api, &a.secrets),
            "keys": key_ids(&a.keys),
            "endpoint": a.endpoint,
            "token_ttl_seconds": a.token_ttl_seconds,
        })
    }

    fn cascade(cur: Current<'_>, id: &str, plan: &mut Plan) {
        withdraw::<Outbound>(cur, plan, |e| e.agent == id);
        withdraw::<Inbound>(cur, plan, |e| e.agent == id);
    }
}

/// The agent routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/admin/v1/agents", get(list::<Agents>).post(create_agent))
        .route(
            "/admin/v1/agents/{id}",
            get(get_one::<Agents>)
                .patch(patch_agent)
                .delete(delete_one::<Agents>),
        )
}

/// `POST /admin/v1/agents`: the Agent ID is generated; the audience is generated unless given, and immutable.
async fn create_agent(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: CreateAgent = parse(&body)?;
    check_token_ttl(req.token_ttl_seconds)?;
    check_upstream(&api, req.endpoint.as_ref(), "agents.endpoint").await?;
    let idempotency =
        match Idempotency::begin(&api, &headers, "POST /admin/v1/agents", &body).await? {
            Ok(fresh) => fresh,
            Err(replayed) => return Ok(replayed),
        };
    let id = random_id("agent")?;
    let raw = RawAgent {
        audience: Some(
            req.audience
                .unwrap_or_else(|| defaults::agent_audience(&id)),
        ),
        id: id.clone(),
        name: req.name,
        enabled: req.enabled,
        permission: None,
        auth: req.auth,
        secrets: vec![],
        keys: vec![],
        endpoint: req.endpoint,
        token_ttl_seconds: req.token_ttl_seconds,
    };
    create::<Agents>(&api, idempotency, id, move |_| Ok(raw)).await
}

/// `PATCH /admin/v1/agents/{id}`: rename, enable/disable, move the endpoint, set the token lifetime, change the
/// authentication method (refused while the agent holds secrets or keys of the method it leaves). `id` and
/// `audience` are immutable (409).
async fn patch_agent(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PatchAgent = parse(&body)?;
    check_token_ttl(req.token_ttl_seconds)?;
    check_upstream(&api, req.endpoint.as_ref(), "agents.endpoint").await?;
    let path_id = id.clone();
    let (raw, version, ()) =
        change::<Agents, _>(&api, id, if_match(&headers), move |_, _, raw, _| {
            unchanged("id", req.id.as_ref(), Some(&path_id))?;
            unchanged("audience", req.audience.as_ref(), raw.audience.as_ref())?;
            if let Some(name) = req.name {
                raw.name = Some(name);
            }
            if let Some(enabled) = req.enabled {
                raw.enabled = Some(enabled);
            }
            if let Some(endpoint) = req.endpoint {
                raw.endpoint = Some(endpoint);
            }
            if let Some(ttl) = req.token_ttl_seconds {
                raw.token_ttl_seconds = Some(ttl);
            }
            if let Some(auth) = req.auth {
                check_auth_switch(&auth, raw)?;
                raw.auth = Some(auth);
            }
            Ok(())
        })
        .await?;
    Ok(answer_stored::<Agents>(&api, StatusCode::OK, &raw, version))
}

/// Refuses a `token_ttl_seconds` outside [`defaults::AGENT_TOKEN_TTL_SECONDS`] before anything is written.
fn check_token_ttl(ttl: Option<u64>) -> Result<()> {
    match ttl {
        Some(t) if !defaults::AGENT_TOKEN_TTL_SECONDS.contains(&t) => Err(invalid(
            "agents.token_ttl_seconds",
            defaults::agent_token_ttl_rule(t),
        )),
        _ => Ok(()),
    }
}

/// Refuses switching `agent` to the authentication method `auth` while it holds credentials of the other method;
/// an unknown method is left to validation, which names it.
fn check_auth_switch(auth: &str, agent: &RawAgent) -> Result<()> {
    let held = match auth {
        "private_key_jwt" if !agent.secrets.is_empty() => "client secrets",
        "client_secret" if !agent.keys.is_empty() => "public keys",
        _ => return Ok(()),
    };
    Err(invalid(
        "agents.auth",
        format!(
            "agent {:?} still has {held}; delete them before switching to {auth}",
            agent.id
        ),
    ))
}
