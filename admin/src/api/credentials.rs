//! Stored credentials: `/admin/v1/credentials`. A value is sealed at once and never returned, masked or not:
//! responses show metadata and a keyed fingerprint. Deleting one a node uses is refused (409 `in_use`, naming the nodes), even with
//! `?cascade=true`: nodes are repointed or deleted first.
//!
//! A credential is created with the `hosts` it may be sent to (corpus J04), and they cannot be changed: whoever
//! holds the admin token could otherwise point a node at any host and bind any stored key to it. New hosts mean a
//! new credential, created by someone who knows the value.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawConfig, RawCredential};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::core::{
    Current, Idempotency, Resource, Result, create, delete as delete_one, get as get_one, list,
    parse, random_id,
};
use super::usage_graph::{UsedBy, nodes_using};
use crate::error::AdminError;
use idguard_config::defaults;

/// Stored credentials.
pub(super) struct Credentials;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCredential {
    id: Option<String>,
    name: Option<String>,
    api_key_id: Option<String>,
    kind: String,
    value: String,
    hosts: Vec<String>,
}

// === impl Credentials ===

impl Resource for Credentials {
    const KIND: Kind = Kind::Credential;
    type Raw = RawCredential;

    fn file(file: &RawConfig) -> &[RawCredential] {
        &file.credentials
    }

    fn id(raw: &RawCredential) -> Cow<'_, str> {
        Cow::Borrowed(&raw.id)
    }

    fn view(_: &AdminApi, c: &RawCredential) -> Value {
        // The fingerprint was computed when the value was sealed: showing it never opens the value.
        json!({
            "id": c.id,
            "name": defaults::display_name(c.name.as_deref(), &c.id),
            "api_key_id": c.api_key_id,
            "kind": c.kind,
            "hosts": c.hosts,
            "source": if c.sealed.is_some() { "sealed" } else { "env" },
            "fingerprint": c.fingerprint,
        })
    }

    fn used_by(cur: Current<'_>, id: &str) -> Option<UsedBy> {
        Some(nodes_using(cur, id))
    }
}

/// The credential routes (there is no change: a new value is a new credential).
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route(
            "/admin/v1/credentials",
            get(list::<Credentials>).post(create_credential),
        )
        .route(
            "/admin/v1/credentials/{id}",
            get(get_one::<Credentials>).delete(delete_one::<Credentials>),
        )
}

/// `POST /admin/v1/credentials`: the value is sealed at once and never returned, masked or not.
async fn create_credential(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: CreateCredential = parse(&body)?;
    let idempotency =
        match Idempotency::begin(&api, &headers, "POST /admin/v1/credentials", &body).await? {
            Ok(fresh) => fresh,
            Err(replayed) => return Ok(replayed),
        };
    if req.value.is_empty() {
        return Err(AdminError::BadRequest("value must not be empty".into()));
    }
    let id = match req.id {
        Some(id) => id,
        None => random_id("cred")?,
    };
    let sealed_for = id.clone();
    create::<Credentials>(&api, idempotency, id, move |api| {
        Ok(RawCredential {
            sealed: Some(api.seal(&sealed_for, &req.value)?),
            fingerprint: Some(api.fingerprint(&req.value)),
            id: sealed_for,
            name: req.name,
            api_key_id: req.api_key_id,
            kind: req.kind,
            hosts: Some(req.hosts),
            env: None,
        })
    })
    .await
}
