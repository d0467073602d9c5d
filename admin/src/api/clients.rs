//! Client applications: `/admin/v1/clients`. A client's `client_id` is generated unless given and may not be the
//! id of an agent or an enterprise service; each client uses an M2M application license. A client that agents
//! admit is not deleted unless the request asks for the cascade (`?cascade=true`), which withdraws those inbound
//! authorizations in the same commit.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawClient, RawConfig};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::agents::Agents;
use super::authorizations::{Inbound, withdraw};
use super::core::{
    Current, Idempotency, Resource, Result, answer_stored, change, create, delete as delete_one,
    exists, file_managed, get as get_one, if_match, list, parse, random_id, unchanged,
};
use super::enterprise::Enterprise;
use super::principals::{key_ids, secret_views};
use super::usage_graph::{UsedBy, agents_admitting};
use super::write::Plan;
use idguard_config::defaults;

/// Client applications.
pub(super) struct Clients;

/// The fields a create or a `PATCH` may set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFields {
    id: Option<String>,
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    auth: Option<String>,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    organizations: Option<Vec<String>>,
    enabled: Option<bool>,
}

// === impl Clients ===

impl Resource for Clients {
    const KIND: Kind = Kind::Client;
    type Raw = RawClient;

    fn file(file: &RawConfig) -> &[RawClient] {
        &file.clients
    }

    fn id(raw: &RawClient) -> Cow<'_, str> {
        Cow::Borrowed(&raw.id)
    }

    fn view(api: &AdminApi, c: &RawClient) -> Value {
        json!({
            "id": c.id,
            "name": defaults::display_name(c.name.as_deref(), &c.id),
            "redirect_uris": c.redirect_uris,
            "auth": c.auth.clone().unwrap_or_else(|| defaults::CLIENT_AUTH.into()),
            "secrets": secret_views(api, &c.secrets),
            "keys": key_ids(&c.keys),
            "users": c.users,
            "groups": c.groups,
            "organizations": c.organizations,
            "enabled": c.enabled.unwrap_or(defaults::ENABLED),
        })
    }

    /// A `client_id` is refused when the file declares that client (`file_managed`), or when any agent, service or
    /// client already has it (`exists`).
    fn check_free(cur: Current<'_>, id: &str) -> Result<()> {
        if cur.declares::<Self>(id) {
            return Err(file_managed(Kind::Client, id));
        }
        let stored = [Kind::Client, Kind::Agent, Kind::Enterprise]
            .iter()
            .any(|k| cur.stored(*k, id).is_some());
        if stored || cur.declares::<Agents>(id) || cur.declares::<Enterprise>(id) {
            return Err(exists(Kind::Client, id));
        }
        Ok(())
    }

    fn used_by(cur: Current<'_>, id: &str) -> Option<UsedBy> {
        Some(agents_admitting(cur, id))
    }

    fn withdraw_uses(cur: Current<'_>, id: &str, plan: &mut Plan) -> bool {
        withdraw::<Inbound>(cur, plan, |e| e.client == id);
        true
    }
}

// === impl ClientFields ===

impl ClientFields {
    fn apply(self, c: &mut RawClient) {
        if let Some(v) = self.name {
            c.name = Some(v);
        }
        if let Some(v) = self.redirect_uris {
            c.redirect_uris = v;
        }
        if let Some(v) = self.auth {
            c.auth = Some(v);
        }
        if let Some(v) = self.users {
            c.users = v;
        }
        if let Some(v) = self.groups {
            c.groups = v;
        }
        if let Some(v) = self.organizations {
            c.organizations = v;
        }
        if let Some(v) = self.enabled {
            c.enabled = Some(v);
        }
    }
}

/// The client application routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route(
            "/admin/v1/clients",
            get(list::<Clients>).post(create_client),
        )
        .route(
            "/admin/v1/clients/{id}",
            get(get_one::<Clients>)
                .patch(patch_client)
                .delete(delete_one::<Clients>),
        )
}

/// `POST /admin/v1/clients`: a client application; its `client_id` is generated unless given, and must not be
/// the id of an agent or service.
async fn create_client(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: ClientFields = parse(&body)?;
    let idempotency =
        match Idempotency::begin(&api, &headers, "POST /admin/v1/clients", &body).await? {
            Ok(fresh) => fresh,
            Err(replayed) => return Ok(replayed),
        };
    let id = match &req.id {
        Some(id) => id.clone(),
        None => random_id("client")?,
    };
    let mut raw = RawClient {
        id: id.clone(),
        name: None,
        redirect_uris: vec![],
        auth: None,
        secrets: vec![],
        keys: vec![],
        users: vec![],
        groups: vec![],
        organizations: vec![],
        enabled: None,
    };
    req.apply(&mut raw);
    create::<Clients>(&api, idempotency, id, move |_| Ok(raw)).await
}

/// `PATCH /admin/v1/clients/{id}`: name, redirect URIs, credential type, authorized principals, enabled.
async fn patch_client(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: ClientFields = parse(&body)?;
    unchanged("id", req.id.as_ref(), Some(&id))?;
    let (raw, version, ()) =
        change::<Clients, _>(&api, id, if_match(&headers), move |_, _, raw, _| {
            req.apply(raw);
            Ok(())
        })
        .await?;
    Ok(answer_stored::<Clients>(
        &api,
        StatusCode::OK,
        &raw,
        version,
    ))
}
