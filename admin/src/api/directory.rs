//! The directory: `/admin/v1/{users|groups|organizations}`. A user `{id, name?, email?, organization?, groups?,
//! password?}`, a group `{id, name?}`, or an organizational unit `{id, name?, parent?}`; a `PUT` replaces one
//! (its `id` is immutable). Deleting one that something refers to is refused (422) by validation.
//!
//! A password comes in clear over the admin listener and is stored only as an argon2id hash; a hash is never
//! accepted from outside, never shown (users show `has_password`), and a replacement without a password keeps the
//! current one.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get as get_route;
use idguard_config::raw::{RawConfig, RawGroup, RawOrganization, RawUser};
use idguard_config::store::Kind;
use serde_json::{Value, json};

use super::AdminApi;
use super::core::{
    Idempotency, Resource, Result, answer_stored, change, create, delete_of, get_of, if_match,
    invalid, list_of, parse,
};
use super::usage_graph::cascade_param;
use crate::error::{AdminError, Internal};

/// Directory users.
pub(super) struct Users;

/// Directory groups.
pub(super) struct Groups;

/// Organizational units.
pub(super) struct Organizations;

/// A directory collection: how a request body becomes an entry.
trait Entry: Resource {
    /// The entry a request body describes, with the clear password it carries, if any.
    fn parse_entry(body: &[u8]) -> Result<(Self::Raw, Option<String>)> {
        Ok((parse(body)?, None))
    }

    /// Sets the stored hash of the entry's password.
    fn set_password_hash(_raw: &mut Self::Raw, _hash: String) {}

    /// What a replacement keeps of the entry it replaces.
    fn keep_on_replace(_new: &mut Self::Raw, _old: Self::Raw) {}
}

/// Runs `$body` with `$r` the resource of the collection named by `$segment`; an unknown collection is 404.
macro_rules! in_collection {
    ($segment:expr, $r:ident => $body:expr) => {
        match $segment {
            "users" => {
                type $r = Users;
                $body
            }
            "groups" => {
                type $r = Groups;
                $body
            }
            "organizations" => {
                type $r = Organizations;
                $body
            }
            other => Err(AdminError::NotFound {
                kind: "collection",
                id: other.into(),
            }),
        }
    };
}

/// The three collections differ in their kind and their list in the routing file.
macro_rules! entry_resource {
    ($name:ident, $kind:expr, $raw:ty, $list:ident) => {
        impl Resource for $name {
            const KIND: Kind = $kind;
            type Raw = $raw;

            fn file(file: &RawConfig) -> &[$raw] {
                &file.$list
            }

            fn id(raw: &$raw) -> Cow<'_, str> {
                Cow::Borrowed(&raw.id)
            }

            fn view(_: &AdminApi, raw: &$raw) -> Value {
                entry_view(serde_json::to_value(raw).unwrap_or(Value::Null))
            }
        }
    };
}

entry_resource!(Users, Kind::User, RawUser, users);
entry_resource!(Groups, Kind::Group, RawGroup, groups);
entry_resource!(
    Organizations,
    Kind::Organization,
    RawOrganization,
    organizations
);

// === impl Entry ===

impl Entry for Users {
    fn parse_entry(body: &[u8]) -> Result<(RawUser, Option<String>)> {
        let mut map: serde_json::Map<String, Value> = parse(body)?;
        if map.contains_key("password_hash") {
            return Err(invalid(
                "users.password_hash",
                "is set by idguard; send `password` instead",
            ));
        }
        let password = map.remove("password");
        let user: RawUser = parse(&serde_json::to_vec(&map).unwrap_or_default())?;
        match password {
            None => Ok((user, None)),
            Some(Value::String(pw)) if (8..=1024).contains(&pw.chars().count()) => {
                Ok((user, Some(pw)))
            }
            Some(_) => Err(invalid(
                "users.password",
                "must be a string of 8 to 1024 characters",
            )),
        }
    }

    fn set_password_hash(raw: &mut RawUser, hash: String) {
        raw.password_hash = Some(hash);
    }

    fn keep_on_replace(new: &mut RawUser, old: RawUser) {
        if new.password_hash.is_none() {
            new.password_hash = old.password_hash;
        }
    }
}

impl Entry for Groups {}

impl Entry for Organizations {}

/// The directory routes: one pair for the three collections, told apart by the first segment.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/admin/v1/{directory}", get_route(list).post(post))
        .route(
            "/admin/v1/{directory}/{id}",
            get_route(get).put(put).delete(delete),
        )
}

/// `GET /admin/v1/{users|groups|organizations}`
async fn list(
    State(api): State<AdminApi>,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    in_collection!(segment.as_str(), R => list_of::<R>(&api, query).await)
}

/// `GET /admin/v1/{users|groups|organizations}/{id}`
async fn get(
    State(api): State<AdminApi>,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Response> {
    in_collection!(segment.as_str(), R => get_of::<R>(&api, &id).await)
}

/// `POST /admin/v1/{users|groups|organizations}`
async fn post(
    State(api): State<AdminApi>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    in_collection!(segment.as_str(), R => create_entry::<R>(&api, &segment, &headers, &body).await)
}

/// `PUT /admin/v1/{users|groups|organizations}/{id}`: replace the entry (its `id` is immutable).
async fn put(
    State(api): State<AdminApi>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    in_collection!(segment.as_str(), R => replace_entry::<R>(&api, id, &headers, &body).await)
}

/// `DELETE /admin/v1/{users|groups|organizations}/{id}`: refused (422) while something refers to it.
async fn delete(
    State(api): State<AdminApi>,
    Path((segment, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let cascade = cascade_param(query.as_deref())?;
    in_collection!(segment.as_str(), R => delete_of::<R>(&api, id, if_match(&headers), cascade).await)
}

async fn create_entry<R: Entry>(
    api: &AdminApi,
    segment: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let raw = read_entry::<R>(body).await?;
    let route = format!("POST /admin/v1/{segment}");
    let idempotency = match Idempotency::begin(api, headers, &route, body).await? {
        Ok(fresh) => fresh,
        Err(replayed) => return Ok(replayed),
    };
    let id = R::id(&raw).into_owned();
    create::<R>(api, idempotency, id, move |_| Ok(raw)).await
}

async fn replace_entry<R: Entry>(
    api: &AdminApi,
    id: String,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let new = read_entry::<R>(body).await?;
    if R::id(&new) != id {
        return Err(AdminError::Immutable("id"));
    }
    let (raw, version, ()) = change::<R, _>(api, id, if_match(headers), move |_, _, raw, _| {
        let old = std::mem::replace(raw, new);
        R::keep_on_replace(raw, old);
        Ok(())
    })
    .await?;
    Ok(answer_stored::<R>(api, StatusCode::OK, &raw, version))
}

/// Parses an entry; a password is hashed here, before the write lock.
async fn read_entry<R: Entry>(body: &[u8]) -> Result<R::Raw> {
    let (mut raw, password) = R::parse_entry(body)?;
    if let Some(pw) = password {
        // argon2id takes tens of milliseconds: off the runtime thread.
        let hash = tokio::task::spawn_blocking(move || idguard_config::hashes::hash_password(&pw))
            .await
            .map_err(|e| Internal::Task(e.to_string()))?
            .map_err(|e| Internal::Hashing(e.to_string()))?;
        R::set_password_hash(&mut raw, hash);
    }
    Ok(raw)
}

/// An entry as shown: never the password hash, only whether there is one.
fn entry_view(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut()
        && let Some(hash) = map.remove("password_hash")
    {
        map.insert("has_password".into(), json!(!hash.is_null()));
    }
    v
}
