//! What agents and client applications share: client secrets and public keys, under
//! `/admin/v1/{agents|clients}/{id}/secrets` and `/keys`. A secret (256 random bits) is shown once, in the answer
//! that creates it; the store keeps a keyed hash. Several may exist at once, so secrets rotate without downtime. A
//! public key (JWK or PEM) fixes its algorithm: EC P-256 → ES256, RSA → RS256, Ed25519 → EdDSA.
//!
//! A secret is listed with a keyed fingerprint of its stored hash (the same in the answer that creates it, so an
//! operator can tell which listed secret they hold; secrets stored before fingerprints existed have one too) and
//! its last use, which the identity service records in the shared store and only `GET …/secrets` reads.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use idguard_config::raw::{RawAgent, RawClient, RawClientSecret, RawPublicKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::agents::Agents;
use super::clients::Clients;
use super::core::{
    Managed, Resource, Result, answer, change, find, if_match, invalid, now, parse, random_bytes,
    random_id,
};
use super::paging::PageQuery;
use crate::error::AdminError;

/// A resource whose objects authenticate to the identity service: agents and client applications.
pub(super) trait Principal: Resource {
    /// Its client secrets (keyed hashes).
    fn secrets(raw: &mut Self::Raw) -> &mut Vec<RawClientSecret>;
    /// Its public keys.
    fn keys(raw: &mut Self::Raw) -> &mut Vec<RawPublicKey>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    id: Option<String>,
    jwk: Option<Value>,
    pem: Option<String>,
}

// === impl Principal ===

impl Principal for Agents {
    fn secrets(raw: &mut RawAgent) -> &mut Vec<RawClientSecret> {
        &mut raw.secrets
    }
    fn keys(raw: &mut RawAgent) -> &mut Vec<RawPublicKey> {
        &mut raw.keys
    }
}

impl Principal for Clients {
    fn secrets(raw: &mut RawClient) -> &mut Vec<RawClientSecret> {
        &mut raw.secrets
    }
    fn keys(raw: &mut RawClient) -> &mut Vec<RawPublicKey> {
        &mut raw.keys
    }
}

/// The secret and key routes of principals of kind `P` under `collection` (`/admin/v1/agents`).
pub(super) fn routes<P: Principal>(collection: &str) -> Router<AdminApi> {
    Router::new()
        .route(
            &format!("{collection}/{{id}}/secrets"),
            get(list_secrets::<P>).post(create_secret::<P>),
        )
        .route(
            &format!("{collection}/{{id}}/secrets/{{secret}}"),
            delete(delete_secret::<P>),
        )
        .route(
            &format!("{collection}/{{id}}/keys"),
            get(list_keys::<P>).post(create_key::<P>),
        )
        .route(
            &format!("{collection}/{{id}}/keys/{{key}}"),
            delete(delete_key::<P>),
        )
}

/// `POST .../{id}/secrets`: a new client secret. The value is in this answer only.
async fn create_secret<P: Principal>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    if headers.contains_key("idempotency-key") {
        // Replaying would mean storing the answer, and the answer is the secret.
        return Err(AdminError::BadRequest(
            "Idempotency-Key is not accepted here: a secret is shown exactly once".into(),
        ));
    }
    let secret = format!(
        "idgsec_{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            random_bytes::<32>()?
        )
    );
    let secret_id = random_id("sec")?;
    let stored = RawClientSecret {
        id: secret_id.clone(),
        hash: api.secret_hash(&secret),
        created_at: now(),
    };
    let fingerprint = secret_fingerprint(&api, &stored);
    let created_at = stored.created_at;
    let (_, version, ()) =
        change::<P, _>(&api, id.clone(), if_match(&headers), move |_, _, raw, _| {
            P::secrets(raw).push(stored);
            Ok(())
        })
        .await?;
    let body = json!({"id": secret_id, "client_id": id, "secret": secret, "fingerprint": fingerprint,
                      "created_at": created_at, "last_used": null,
                      "note": "store this secret now: it is not shown again"});
    Ok(answer(StatusCode::CREATED, body, Managed::Api(version)))
}

/// `GET .../{id}/secrets`: each secret's id, fingerprint, creation time and last use (RFC 3339, or `null` when no
/// use was recorded), paged like every list. Never the hash.
async fn list_secrets<P: Principal>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let page = PageQuery::parse(query.as_deref())?;
    let (mut raw, _) = find::<P>(&api, &id).await?;
    let secrets = std::mem::take(P::secrets(&mut raw));
    let principal = id.clone();
    let last_used = api
        .blocking(move |api| {
            let keys: Vec<[u8; 32]> = secrets
                .iter()
                .map(|s| secret_use_key(api, &principal, s))
                .collect();
            let times = api
                .inner
                .store
                .secrets_last_used(&keys)
                .map_err(super::write::store_error)?;
            Ok((secrets, times))
        })
        .await;
    let (secrets, times) = last_used?;
    let out = secrets
        .iter()
        .zip(times)
        .map(|(s, used)| {
            let mut view = secret_view(&api, s);
            view["last_used"] = json!(used.map(idguard_config::clock::rfc3339));
            (s.id.clone(), view)
        })
        .collect();
    page.cut(&api, &format!("{}/{id}/secrets", P::KIND.as_str()), out)
}

/// `DELETE .../{id}/secrets/{secret}`: revoke one secret.
async fn delete_secret<P: Principal>(
    State(api): State<AdminApi>,
    Path((id, secret)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    change::<P, _>(&api, id, if_match(&headers), move |_, _, raw, _| {
        remove(P::secrets(raw), |s| s.id == secret, "secret", &secret)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST .../{id}/keys`: register a public key (JWK or PEM) for `private_key_jwt`; the answer names its algorithm.
async fn create_key<P: Principal>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: CreateKey = parse(&body)?;
    let (_, version, (key_id, alg)) =
        change::<P, _>(&api, id.clone(), if_match(&headers), move |_, _, raw, _| {
            let key_id = match req.id {
                Some(key_id) => key_id,
                None => random_id("key")?,
            };
            let key = RawPublicKey {
                id: key_id.clone(),
                jwk: req.jwk,
                pem: req.pem,
            };
            let alg = idguard_config::validate::public_key(&key)
                .map_err(|message| invalid("key", message))?
                .alg;
            P::keys(raw).push(key);
            Ok((key_id, alg))
        })
        .await?;
    let body = json!({"id": key_id, "client_id": id, "alg": alg});
    Ok(answer(StatusCode::CREATED, body, Managed::Api(version)))
}

/// `GET .../{id}/keys`, paged like every list.
async fn list_keys<P: Principal>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let page = PageQuery::parse(query.as_deref())?;
    let (mut raw, _) = find::<P>(&api, &id).await?;
    let out = P::keys(&mut raw)
        .iter()
        .map(|k| {
            (
                k.id.clone(),
                json!({"id": k.id, "jwk": k.jwk, "pem": k.pem}),
            )
        })
        .collect();
    page.cut(&api, &format!("{}/{id}/keys", P::KIND.as_str()), out)
}

/// `DELETE .../{id}/keys/{key}`
async fn delete_key<P: Principal>(
    State(api): State<AdminApi>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    change::<P, _>(&api, id, if_match(&headers), move |_, _, raw, _| {
        remove(P::keys(raw), |k| k.id == key, "key", &key)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Secrets as an agent's or client's view lists them: ids, fingerprints and creation times, never the hash (the
/// last use is read from the store by `GET …/secrets` only, so views stay free of store reads).
pub(super) fn secret_views(api: &AdminApi, secrets: &[RawClientSecret]) -> Vec<Value> {
    secrets.iter().map(|s| secret_view(api, s)).collect()
}

fn secret_view(api: &AdminApi, s: &RawClientSecret) -> Value {
    json!({"id": s.id, "fingerprint": secret_fingerprint(api, s), "created_at": s.created_at})
}

/// A secret's display fingerprint ([`idguard_config::hashes::KeyedHasher::client_secret_fingerprint`]); `None`
/// for a hash that is not 64 hex digits (validation refuses those, so none is stored).
fn secret_fingerprint(api: &AdminApi, s: &RawClientSecret) -> Option<String> {
    idguard_config::hashes::decode_client_secret_hash(&s.hash)
        .map(|hash| api.inner.hasher.client_secret_fingerprint(&hash))
}

/// Where the identity service records the secret's use ([`idguard_config::hashes::KeyedHasher::client_secret_use_key`]).
fn secret_use_key(api: &AdminApi, principal: &str, s: &RawClientSecret) -> [u8; 32] {
    let hash = idguard_config::hashes::decode_client_secret_hash(&s.hash).unwrap_or_default();
    api.inner
        .hasher
        .client_secret_use_key(principal, &s.id, &hash)
}

/// Keys as a principal's view lists them: by id.
pub(super) fn key_ids(keys: &[RawPublicKey]) -> Vec<Value> {
    keys.iter().map(|k| json!({"id": k.id})).collect()
}

/// Removes the entries `matching` from `list`; 404 (`what` `id`) when there is none.
fn remove<T>(
    list: &mut Vec<T>,
    matching: impl Fn(&T) -> bool,
    what: &'static str,
    id: &str,
) -> Result<()> {
    let before = list.len();
    list.retain(|x| !matching(x));
    if list.len() == before {
        return Err(AdminError::NotFound {
            kind: what,
            id: id.into(),
        });
    }
    Ok(())
}
