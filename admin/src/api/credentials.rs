//! Stored credentials: `/admin/v1/credentials`. A value is sealed at once and never returned, masked or not:
//! responses show metadata and a keyed fingerprint. Deleting one a node uses is refused (409 `in_use`, naming the nodes), even with
//! `?cascade=true`: nodes are repointed or deleted first.
//!
//! A stored credential's value can be replaced in place (`PUT …/value`): every node and authorization that uses it
//! stays as it is, and the proxy injects the new value from the reload that commit triggers (each request uses one
//! snapshot, so one request never carries a mix). With `grace_seconds` > 0 the old value stays stored, sealed, and
//! `POST …/value/rollback` switches back to it until the grace period ends; with 0 (the default) it is dropped at
//! once. The old value is never injected while the new one is in force: "trying" the new value means serving it,
//! with the old one a rollback away. Name, identifier (`api_key_id`) and description can be changed (`PATCH`).
//!
//! A credential is created with the `hosts` it may be sent to (corpus J04), and they cannot be changed: whoever
//! holds the admin token could otherwise point a node at any host and bind any stored key to it. New hosts mean a
//! new credential, created by someone who knows the value.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawConfig, RawCredential, RawPreviousValue};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::core::{
    Current, Idempotency, Resource, Result, answer_stored, change, create, delete as delete_one,
    get as get_one, if_match, invalid, list, now, parse, random_id, unchanged,
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
    description: Option<String>,
    kind: String,
    value: String,
    hosts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchCredential {
    id: Option<String>,
    name: Option<String>,
    api_key_id: Option<String>,
    description: Option<String>,
    kind: Option<String>,
    hosts: Option<Vec<String>>,
}

/// `PUT /admin/v1/credentials/{id}/value`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceValue {
    value: String,
    // Read as any JSON value so that a wrong one is refused naming the field, not with serde's type message.
    grace_seconds: Option<Value>,
}

/// The longest grace period a replaced value is kept for (7 days).
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

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
            "description": c.description,
            "kind": c.kind,
            "hosts": c.hosts,
            "source": if c.sealed.is_some() { "sealed" } else { "env" },
            "fingerprint": c.fingerprint,
            // The value a rollback would restore, shown like the current one, while it can be switched back to.
            "previous": c.previous.as_ref().filter(|p| p.until > now()).map(|p| json!({
                "fingerprint": p.fingerprint,
                "until": p.until,
            })),
        })
    }

    fn used_by(cur: Current<'_>, id: &str) -> Option<UsedBy> {
        Some(nodes_using(cur, id))
    }
}

/// The credential routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route(
            "/admin/v1/credentials",
            get(list::<Credentials>).post(create_credential),
        )
        .route(
            "/admin/v1/credentials/{id}",
            get(get_one::<Credentials>)
                .patch(patch_credential)
                .delete(delete_one::<Credentials>),
        )
        .route(
            "/admin/v1/credentials/{id}/value",
            axum::routing::put(replace_value),
        )
        .route(
            "/admin/v1/credentials/{id}/value/rollback",
            axum::routing::post(rollback_value),
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
            description: req.description,
            kind: req.kind,
            hosts: Some(req.hosts),
            env: None,
            previous: None,
        })
    })
    .await
}

/// `PATCH /admin/v1/credentials/{id}`: name, identifier (`api_key_id`) and description. `id`, `kind` and `hosts`
/// are immutable (409); the value is replaced with `PUT …/value`.
async fn patch_credential(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PatchCredential = parse(&body)?;
    let path_id = id.clone();
    let (raw, version, ()) =
        change::<Credentials, _>(&api, id, if_match(&headers), move |_, _, raw, _| {
            unchanged("id", req.id.as_ref(), Some(&path_id))?;
            unchanged("kind", req.kind.as_ref(), Some(&raw.kind))?;
            unchanged("hosts", req.hosts.as_ref(), raw.hosts.as_ref())?;
            if let Some(name) = req.name {
                raw.name = Some(name);
            }
            if let Some(api_key_id) = req.api_key_id {
                raw.api_key_id = Some(api_key_id);
            }
            if let Some(description) = req.description {
                raw.description = Some(description);
            }
            Ok(())
        })
        .await?;
    Ok(answer_stored::<Credentials>(
        &api,
        StatusCode::OK,
        &raw,
        version,
    ))
}

/// `PUT /admin/v1/credentials/{id}/value`: seals the new value and puts it in force at once, keeping every node and
/// authorization. With `grace_seconds` > 0 the replaced value stays sealed beside it until then, for
/// `POST …/value/rollback`; any value kept from an earlier replacement is dropped.
async fn replace_value(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: ReplaceValue = parse(&body)?;
    if req.value.is_empty() {
        return Err(AdminError::BadRequest("value must not be empty".into()));
    }
    let grace_seconds = match &req.grace_seconds {
        None => 0,
        Some(v) => v
            .as_u64()
            .filter(|g| *g <= MAX_GRACE_SECONDS)
            .ok_or_else(|| {
                AdminError::BadRequest(format!(
                    "grace_seconds must be a whole number of seconds from 0 to {MAX_GRACE_SECONDS}"
                ))
            })?,
    };
    let (raw, version, ()) = change::<Credentials, _>(
        &api,
        id.clone(),
        if_match(&headers),
        move |api, _, raw, _| {
            let replaced = raw.sealed.take();
            if replaced.is_none() {
                // An `env` credential's value lives outside idguard; there is nothing to seal in its place.
                return Err(invalid(
                    "credential.value",
                    format!("credential {id:?} takes its value from the environment"),
                ));
            }
            raw.previous = replaced
                .filter(|_| grace_seconds > 0)
                .map(|sealed| RawPreviousValue {
                    sealed,
                    fingerprint: raw.fingerprint.take(),
                    until: now() + grace_seconds,
                });
            raw.sealed = Some(api.seal(&id, &req.value)?);
            raw.fingerprint = Some(api.fingerprint(&req.value));
            Ok(())
        },
    )
    .await?;
    Ok(answer_stored::<Credentials>(
        &api,
        StatusCode::OK,
        &raw,
        version,
    ))
}

/// `POST /admin/v1/credentials/{id}/value/rollback`: puts the replaced value back in force while its grace period
/// lasts; the value it replaces is dropped (no rollback of a rollback).
async fn rollback_value(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let (raw, version, ()) =
        change::<Credentials, _>(&api, id.clone(), if_match(&headers), move |_, _, raw, _| {
            let previous = raw
                .previous
                .take()
                .filter(|p| p.until > now())
                .ok_or_else(|| {
                    invalid(
                        "credential.previous",
                        format!("credential {id:?} has no replaced value within its grace period"),
                    )
                })?;
            raw.sealed = Some(previous.sealed);
            raw.fingerprint = previous.fingerprint;
            Ok(())
        })
        .await?;
    Ok(answer_stored::<Credentials>(
        &api,
        StatusCode::OK,
        &raw,
        version,
    ))
}
