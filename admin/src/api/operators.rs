//! Operators: `/admin/v1/operators`, owner only. An operator `{id, name?, role}` is a named principal of the admin
//! API with a role (`viewer`, `editor`, `owner`) and bearer tokens of its own. A token (`idgop_<token id>_<256
//! random bits>`) is shown once, in the answer that creates it; the store keeps its keyed hash, its creation time
//! and its optional expiry. Deleting a token revokes it; deleting the operator revokes all of its tokens.
//!
//! Operators are stored objects (`Kind::Operator`) written through the same pipeline as the topology — audited,
//! shared by every replica of a Redis store — but they are not topology: the proxy never sees them.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use idguard_config::raw::RawConfig;
use idguard_config::store::Kind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AdminApi;
use super::access::{ADMIN_ACTOR, Role, TOKEN_DOMAIN, TOKEN_PREFIX};
use super::core::{
    Idempotency, Managed, Resource, Result, answer, change, create, delete_of, get_of, if_match,
    invalid, list_of, parse, random_bytes, random_id,
};
use crate::error::AdminError;

/// Longest operator id and name.
const MAX_LEN: usize = 128;

/// Longest token lifetime a request may ask for (ten years), in seconds.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// The operators collection.
pub(super) struct Operators;

/// An operator as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OperatorRecord {
    /// Id (the `actor` of its audit records).
    pub(super) id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    /// Role.
    pub(super) role: Role,
    /// The directory user who signs in to the console as this operator (at most one operator per user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<String>,
    /// Its tokens.
    #[serde(default)]
    pub(super) tokens: Vec<TokenRecord>,
}

/// An operator token as stored: never the token, only its keyed hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRecord {
    /// Token id (also inside the token, so a presented token is found without a scan).
    pub(super) id: String,
    /// What the operator called it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    /// HMAC-SHA256 of the token under the fingerprint key, 64 hex digits.
    pub(super) hash: String,
    /// Unix seconds.
    pub(super) created_at: u64,
    /// Unix seconds after which it is refused; none: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOperator {
    id: Option<String>,
    name: Option<String>,
    role: Role,
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeOperator {
    name: Option<String>,
    role: Option<Role>,
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: Option<String>,
    /// Seconds from now.
    expires_in: Option<u64>,
}

// === impl Operators ===

impl Resource for Operators {
    const KIND: Kind = Kind::Operator;
    type Raw = OperatorRecord;

    // Operators exist only in the store.
    fn file(_: &RawConfig) -> &[OperatorRecord] {
        &[]
    }

    fn id(raw: &OperatorRecord) -> Cow<'_, str> {
        Cow::Borrowed(&raw.id)
    }

    fn view(_: &AdminApi, raw: &OperatorRecord) -> Value {
        let tokens: Vec<Value> = raw
            .tokens
            .iter()
            .map(|t| json!({"id": t.id, "name": t.name, "created_at": t.created_at, "expires_at": t.expires_at}))
            .collect();
        json!({"id": raw.id, "name": raw.name, "role": raw.role, "user": raw.user, "tokens": tokens})
    }
}

/// The operator routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/admin/v1/operators", get(list).post(create_operator))
        .route(
            "/admin/v1/operators/{id}",
            get(get_one).patch(change_operator).delete(delete_operator),
        )
        .route(
            "/admin/v1/operators/{id}/tokens",
            axum::routing::post(create_token),
        )
        .route(
            "/admin/v1/operators/{id}/tokens/{token_id}",
            delete(revoke_token),
        )
}

async fn list(State(api): State<AdminApi>, RawQuery(query): RawQuery) -> Result<Response> {
    list_of::<Operators>(&api, query).await
}

async fn get_one(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    get_of::<Operators>(&api, &id).await
}

/// `POST /admin/v1/operators`: `{id?, name?, role, user?}`; the id is generated (`operator-…`) when absent. With
/// `user` (a directory user's id, bound to no other operator) that user signs in to the console as this operator.
async fn create_operator(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: CreateOperator = parse(&body)?;
    let id = match req.id {
        Some(id) => checked_id(id)?,
        None => random_id("operator")?,
    };
    let name = checked_name("operators.name", req.name)?;
    let idempotency =
        match Idempotency::begin(&api, &headers, "POST /admin/v1/operators", &body).await? {
            Ok(fresh) => fresh,
            Err(replayed) => return Ok(replayed),
        };
    let user = req.user;
    let record = OperatorRecord {
        id: id.clone(),
        name,
        role: req.role,
        user: user.clone(),
        tokens: Vec::new(),
    };
    create::<Operators>(&api, idempotency, id, move |api| {
        if let Some(user) = &user {
            checked_user(api, user, &record.id)?;
        }
        Ok(record)
    })
    .await
}

/// `PATCH /admin/v1/operators/{id}`: `{name?, role?, user?}`, honouring `If-Match`. A new `user` replaces the
/// binding (the old user's console sessions end at their next request).
async fn change_operator(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: ChangeOperator = parse(&body)?;
    let name = checked_name("operators.name", req.name)?;
    let (raw, version, ()) =
        change::<Operators, _>(&api, id, if_match(&headers), move |api, _, raw, _| {
            if let Some(user) = req.user {
                checked_user(api, &user, &raw.id)?;
                raw.user = Some(user);
            }
            if name.is_some() {
                raw.name = name;
            }
            if let Some(role) = req.role {
                raw.role = role;
            }
            Ok(())
        })
        .await?;
    let managed = Managed::Api(version);
    Ok(answer(
        StatusCode::OK,
        super::core::view_of::<Operators>(&api, &raw, managed),
        managed,
    ))
}

/// `DELETE /admin/v1/operators/{id}`: the operator and every token of theirs.
async fn delete_operator(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    // Nothing refers to an operator: there is never anything to cascade to.
    delete_of::<Operators>(&api, id, if_match(&headers), false).await
}

/// `POST /admin/v1/operators/{id}/tokens`: `{name?, expires_in?}` → 201 with the token, shown this once.
async fn create_token(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if headers.contains_key("idempotency-key") {
        // Replaying would mean storing the answer, and the answer is the token.
        return Err(AdminError::BadRequest(
            "Idempotency-Key is not accepted here: a token is shown exactly once".into(),
        ));
    }
    let req: CreateToken = if body.is_empty() {
        CreateToken {
            name: None,
            expires_in: None,
        }
    } else {
        parse(&body)?
    };
    let name = checked_name("tokens.name", req.name)?;
    let created_at = api.inner.clock.now();
    let expires_at = match req.expires_in {
        None => None,
        Some(s @ 1..=MAX_EXPIRES_IN) => Some(created_at + s),
        Some(_) => {
            return Err(invalid(
                "expires_in",
                format!("must be between 1 and {MAX_EXPIRES_IN} seconds"),
            ));
        }
    };
    let token_id = hex(&random_bytes::<8>()?);
    let token = format!(
        "{TOKEN_PREFIX}{token_id}_{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            random_bytes::<32>()?
        )
    );
    let stored = TokenRecord {
        id: token_id.clone(),
        name: name.clone(),
        hash: hex(&api.inner.hasher.digest(TOKEN_DOMAIN, &token)),
        created_at,
        expires_at,
    };
    change::<Operators, _>(&api, id.clone(), if_match(&headers), move |_, _, raw, _| {
        raw.tokens.push(stored);
        Ok(())
    })
    .await?;
    let body = json!({"id": token_id, "operator": id, "name": name, "token": token, "created_at": created_at,
                      "expires_at": expires_at, "note": "store this token now: it is not shown again"});
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `DELETE /admin/v1/operators/{id}/tokens/{token_id}`: revokes the token on every replica.
async fn revoke_token(
    State(api): State<AdminApi>,
    Path((id, token_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    change::<Operators, _>(&api, id, if_match(&headers), move |_, _, raw, _| {
        let before = raw.tokens.len();
        raw.tokens.retain(|t| t.id != token_id);
        if raw.tokens.len() == before {
            return Err(AdminError::NotFound {
                kind: "operator token",
                id: token_id,
            });
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An operator id: 1 to [`MAX_LEN`] letters, digits, `-`, `_`, `.`, `@`; not `admin`, the admin token's actor.
fn checked_id(id: String) -> Result<String> {
    let plain = !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !plain {
        return Err(invalid(
            "operators.id",
            format!("must be 1 to {MAX_LEN} letters, digits, '-', '_', '.' or '@'"),
        ));
    }
    if id == ADMIN_ACTOR {
        return Err(invalid(
            "operators.id",
            "\"admin\" names the admin token in the audit log",
        ));
    }
    Ok(id)
}

/// `operators.user`: a directory user of the topology in force, not bound to an operator other than `operator`.
fn checked_user(api: &AdminApi, user: &str, operator: &str) -> Result<()> {
    if !api.snapshot().directory.users.contains_key(user) {
        return Err(invalid(
            "operators.user",
            format!("no directory user {user:?}"),
        ));
    }
    let taken = api
        .stored()?
        .into_iter()
        .filter(|o| o.kind == Kind::Operator)
        .filter_map(|o| serde_json::from_value::<OperatorRecord>(o.body).ok())
        .find(|op| op.user.as_deref() == Some(user) && op.id != operator);
    if let Some(op) = taken {
        return Err(invalid(
            "operators.user",
            format!("{user:?} is already bound to operator {:?}", op.id),
        ));
    }
    Ok(())
}

/// A name (of an operator, or of a token: `field` says which): 1 to [`MAX_LEN`] characters, not all blank.
fn checked_name(field: &str, name: Option<String>) -> Result<Option<String>> {
    match name {
        Some(n) if n.trim().is_empty() || n.chars().count() > MAX_LEN => {
            Err(invalid(field, format!("must be 1 to {MAX_LEN} characters")))
        }
        other => Ok(other),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
