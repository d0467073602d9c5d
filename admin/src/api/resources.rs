//! The `/admin/v1` handlers. Reads merge the routing file's objects (`managed_by: "file"`) with the store's
//! (`managed_by: "api"`, with a `version` and an `ETag`). Writes build a [`Plan`] and hand it to
//! [`AdminApi::apply`]. No response ever carries a credential value, sealed or not: credentials show a keyed
//! fingerprint.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use idguard_config::raw::{
    RawAgent, RawAgentPermission, RawClient, RawClientSecret, RawCredential, RawEdge, RawGroup,
    RawInbound, RawNode, RawOrganization, RawPermission, RawPublicKey, RawService, RawUser,
};
use idguard_config::store::{AuditRecord, Expect, IdempotentAnswer, Kind, StoredObject, Write};
use rand::RngCore;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{AdminApi, Plan, if_match};
use crate::error::AdminError;

type Result<T> = std::result::Result<T, AdminError>;

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| AdminError::BadRequest(format!("invalid request body: {e}")))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{prefix}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| AdminError::BadRequest(e.to_string()))
}

/// Audit bodies never hold a credential value, not even sealed.
fn redact(kind: Kind, mut body: Value) -> Value {
    if kind == Kind::User
        && let Some(map) = body.as_object_mut()
        && map.contains_key("password_hash")
    {
        map.insert("password_hash".into(), json!("[redacted]"));
    }
    if kind == Kind::Credential
        && let Some(map) = body.as_object_mut()
    {
        if map.contains_key("sealed") {
            map.insert("sealed".into(), json!("[redacted]"));
        }
        if map.contains_key("value") {
            map.insert("value".into(), json!("[redacted]"));
        }
    }
    body
}

fn audit(
    action: &str,
    kind: Kind,
    id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> AuditRecord {
    AuditRecord {
        at: now(),
        actor: "admin".into(),
        action: action.into(),
        kind,
        id: id.into(),
        before: before.map(|b| redact(kind, b.clone())),
        after: after.map(|a| redact(kind, a.clone())),
    }
}

fn with_etag(status: StatusCode, body: Value, version: Option<u64>) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Some(v) = version
        && let Ok(h) = HeaderValue::from_str(&format!("\"{v}\""))
    {
        resp.headers_mut().insert(axum::http::header::ETAG, h);
    }
    resp
}

fn find<'a>(stored: &'a [StoredObject], kind: Kind, id: &str) -> Option<&'a StoredObject> {
    stored.iter().find(|o| o.kind == kind && o.id == id)
}

fn expect_for(headers: &HeaderMap, current: &StoredObject) -> Result<Expect> {
    Ok(Expect::Version(
        if_match(headers)?.unwrap_or(current.version),
    ))
}

/// `Idempotency-Key` handling: the key, the request's keyed hash, and a replayed answer if there is one.
fn idempotency(
    api: &AdminApi,
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
) -> Result<(Option<String>, String, Option<Response>)> {
    let hash = api.fingerprint(&format!("{route}\n{}", String::from_utf8_lossy(body)));
    let Some(key) = headers.get("idempotency-key") else {
        return Ok((None, hash, None));
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or_else(|| {
            AdminError::BadRequest("Idempotency-Key must be 1-128 visible characters".into())
        })?;
    let store_key = format!("{route}\n{key}");
    let replayed = api.replay(&store_key, &hash)?.map(|a| {
        let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
        let body: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
        let version = body.get("version").and_then(Value::as_u64);
        with_etag(status, body, version)
    });
    Ok((Some(store_key), hash, replayed))
}

fn remember(
    key: Option<String>,
    hash: String,
    status: StatusCode,
    body: &Value,
) -> Option<(String, IdempotentAnswer)> {
    key.map(|k| {
        (
            k,
            IdempotentAnswer {
                request_hash: hash,
                status: status.as_u16(),
                body: body.to_string(),
            },
        )
    })
}

// === agents ===

fn agent_view(a: &RawAgent, managed_by: &str, version: Option<u64>) -> Value {
    json!({
        "id": a.id,
        "name": a.name.clone().unwrap_or_else(|| a.id.clone()),
        "audience": a.audience.clone().unwrap_or_else(|| format!("urn:idguard:agent:{}", a.id)),
        "enabled": a.enabled.unwrap_or(true),
        "permission": a.permission.clone().unwrap_or_default(),
        "auth": a.auth.clone().unwrap_or_else(|| "client_secret".into()),
        "secrets": a.secrets.iter().map(|s| json!({"id": s.id, "created_at": s.created_at})).collect::<Vec<_>>(),
        "keys": a.keys.iter().map(|k| json!({"id": k.id})).collect::<Vec<_>>(),
        "endpoint": a.endpoint,
        "managed_by": managed_by,
        "version": version,
    })
}

fn stored_as<T: DeserializeOwned>(o: &StoredObject) -> Result<T> {
    serde_json::from_value(o.body.clone()).map_err(|_| AdminError::StoreUnavailable)
}

fn file_raw(api: &AdminApi) -> Result<idguard_config::raw::RawConfig> {
    api.inner
        .loader
        .file_raw()
        .map_err(|_| AdminError::StoreUnavailable)
}

/// `GET /admin/v1/agents`
pub async fn list_agents(State(api): State<AdminApi>) -> Result<Response> {
    let mut out: Vec<Value> = file_raw(&api)?
        .agents
        .iter()
        .map(|a| agent_view(a, "file", None))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == Kind::Agent) {
        out.push(agent_view(&stored_as(o)?, "api", Some(o.version)));
    }
    Ok(Json(json!({ "items": out })).into_response())
}

/// `GET /admin/v1/agents/{id}`
pub async fn get_agent(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    if let Some(a) = file_raw(&api)?.agents.iter().find(|a| a.id == id) {
        return Ok(with_etag(StatusCode::OK, agent_view(a, "file", None), None));
    }
    let stored = api.stored()?;
    let o = find(&stored, Kind::Agent, &id).ok_or(AdminError::NotFound {
        kind: "agent",
        id: id.clone(),
    })?;
    Ok(with_etag(
        StatusCode::OK,
        agent_view(&stored_as(o)?, "api", Some(o.version)),
        Some(o.version),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: Option<String>,
    audience: Option<String>,
    enabled: Option<bool>,
    auth: Option<String>,
    endpoint: Option<String>,
}

/// `POST /admin/v1/agents`: the Agent ID is generated; the audience is generated unless given, and immutable.
pub async fn create_agent(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: CreateAgent = parse(&body)?;
    check_agent_endpoint(&api, req.endpoint.as_ref())?;
    let (key, hash, replayed) = idempotency(&api, &headers, "POST /admin/v1/agents", &body)?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    let id = random_id("agent");
    let raw = RawAgent {
        audience: Some(
            req.audience
                .unwrap_or_else(|| format!("urn:idguard:agent:{id}")),
        ),
        id: id.clone(),
        name: req.name,
        enabled: req.enabled,
        permission: None,
        auth: req.auth,
        secrets: vec![],
        keys: vec![],
        endpoint: req.endpoint,
    };
    let value = to_value(&raw)?;
    let view = agent_view(&raw, "api", Some(1));
    let plan = Plan {
        writes: vec![Write {
            kind: Kind::Agent,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(value.clone()),
        }],
        audit: vec![audit("create", Kind::Agent, &id, None, Some(&value))],
        idempotency: remember(key, hash, StatusCode::CREATED, &view),
    };
    api.apply(plan).await?;
    Ok(with_etag(StatusCode::CREATED, view, Some(1)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchAgent {
    id: Option<String>,
    name: Option<String>,
    audience: Option<String>,
    enabled: Option<bool>,
    endpoint: Option<String>,
}

fn check_agent_endpoint(api: &AdminApi, endpoint: Option<&String>) -> Result<()> {
    check_upstream_field(api, endpoint, "agents.endpoint")
}

/// The admin API's SSRF rules for an upstream URL given in `field`.
fn check_upstream_field(api: &AdminApi, url: Option<&String>, field: &str) -> Result<()> {
    let Some(url) = url else { return Ok(()) };
    crate::ssrf::check_upstream(url, &api.snapshot().settings.upstream_allow_hosts).map_err(
        |message| {
            AdminError::Invalid(vec![idguard_config::ValidationError {
                path: field.into(),
                line: None,
                message,
            }])
        },
    )
}

/// `PATCH /admin/v1/agents/{id}`: rename, enable/disable. `id` and `audience` are immutable (409).
pub async fn patch_agent(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PatchAgent = parse(&body)?;
    if api.file_managed(Kind::Agent, &id)? {
        return Err(AdminError::FileManaged { kind: "agent", id });
    }
    let stored = api.stored()?;
    let current = find(&stored, Kind::Agent, &id).ok_or(AdminError::NotFound {
        kind: "agent",
        id: id.clone(),
    })?;
    let mut raw: RawAgent = stored_as(current)?;
    if req.id.as_ref().is_some_and(|new| *new != id) {
        return Err(AdminError::Immutable("id"));
    }
    if req.audience.is_some() && req.audience != raw.audience {
        return Err(AdminError::Immutable("audience"));
    }
    if let Some(name) = req.name {
        raw.name = Some(name);
    }
    if let Some(enabled) = req.enabled {
        raw.enabled = Some(enabled);
    }
    if let Some(endpoint) = req.endpoint {
        check_agent_endpoint(&api, Some(&endpoint))?;
        raw.endpoint = Some(endpoint);
    }
    let value = to_value(&raw)?;
    let expect = expect_for(&headers, current)?;
    let plan = Plan {
        writes: vec![Write {
            kind: Kind::Agent,
            id: id.clone(),
            expect,
            body: Some(value.clone()),
        }],
        audit: vec![audit(
            "update",
            Kind::Agent,
            &id,
            Some(&current.body),
            Some(&value),
        )],
        idempotency: None,
    };
    api.apply(plan).await?;
    let version = current.version + 1;
    Ok(with_etag(
        StatusCode::OK,
        agent_view(&raw, "api", Some(version)),
        Some(version),
    ))
}

/// `DELETE /admin/v1/agents/{id}`: its outbound and inbound authorizations go with it.
pub async fn delete_agent(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_simple(&api, Kind::Agent, "agent", &id, &headers).await
}

/// Adds to `plan` the deletion of every stored `kind` object (an authorization of type `T`) that `matches`.
fn cascade<T: DeserializeOwned>(
    stored: &[StoredObject],
    plan: &mut Plan,
    kind: Kind,
    matches: impl Fn(&T) -> bool,
) {
    for o in stored.iter().filter(|o| o.kind == kind) {
        if let Ok(edge) = serde_json::from_value::<T>(o.body.clone())
            && matches(&edge)
        {
            plan.writes.push(Write {
                kind,
                id: o.id.clone(),
                expect: Expect::Present,
                body: None,
            });
            plan.audit
                .push(audit("delete", kind, &o.id, Some(&o.body), None));
        }
    }
}

// === outbound authorizations ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutOutbound {
    #[serde(default)]
    scopes: Vec<String>,
}

/// `PUT /admin/v1/agents/{id}/outbound/{node}`: grant (or change the scopes of) an outbound authorization.
pub async fn put_outbound(
    State(api): State<AdminApi>,
    Path((agent, node)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PutOutbound = parse(&body)?;
    let raw = RawEdge {
        agent,
        node,
        scopes: req.scopes,
    };
    let id = format!("{}/{}", raw.agent, raw.node);
    let (status, version) = put_edge(&api, Kind::Outbound, &id, to_value(&raw)?, &headers).await?;
    let view = json!({"agent": raw.agent, "node": raw.node, "scopes": raw.scopes, "managed_by": "api", "version": version});
    Ok(with_etag(status, view, Some(version)))
}

/// Creates (201) or replaces (200, honouring `If-Match`) an API-managed authorization edge; the file's edges are
/// refused. Returns the status and the new version.
async fn put_edge(
    api: &AdminApi,
    kind: Kind,
    id: &str,
    value: Value,
    headers: &HeaderMap,
) -> Result<(StatusCode, u64)> {
    if api.file_managed(kind, id)? {
        return Err(AdminError::FileManaged {
            kind: kind.as_str(),
            id: id.into(),
        });
    }
    let stored = api.stored()?;
    let current = find(&stored, kind, id);
    let (expect, status, version) = match current {
        Some(c) => (expect_for(headers, c)?, StatusCode::OK, c.version + 1),
        None => (Expect::Absent, StatusCode::CREATED, 1),
    };
    let action = if current.is_some() {
        "update"
    } else {
        "create"
    };
    let plan = Plan {
        audit: vec![audit(
            action,
            kind,
            id,
            current.map(|c| &c.body),
            Some(&value),
        )],
        writes: vec![Write {
            kind,
            id: id.into(),
            expect,
            body: Some(value),
        }],
        idempotency: None,
    };
    api.apply(plan).await?;
    Ok((status, version))
}

/// `DELETE /admin/v1/agents/{id}/outbound/{node}`: withdraw the outbound authorization.
pub async fn delete_outbound(
    State(api): State<AdminApi>,
    Path((agent, node)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = format!("{agent}/{node}");
    if api.file_managed(Kind::Outbound, &id)? {
        return Err(AdminError::FileManaged {
            kind: "outbound",
            id,
        });
    }
    let stored = api.stored()?;
    let current = find(&stored, Kind::Outbound, &id).ok_or(AdminError::NotFound {
        kind: "outbound",
        id: id.clone(),
    })?;
    let plan = Plan {
        writes: vec![Write {
            kind: Kind::Outbound,
            id: id.clone(),
            expect: expect_for(&headers, current)?,
            body: None,
        }],
        audit: vec![audit(
            "delete",
            Kind::Outbound,
            &id,
            Some(&current.body),
            None,
        )],
        idempotency: None,
    };
    api.apply(plan).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === credentials ===

fn credential_view(
    api: &AdminApi,
    c: &RawCredential,
    managed_by: &str,
    version: Option<u64>,
) -> Value {
    // The fingerprint needs the value: open it here, hash it with the fingerprint key, drop it.
    let fingerprint = c.sealed.as_ref().and_then(|sealed| {
        let keys = api.inner.loader.master_keys()?;
        keys.open(&c.id, sealed)
            .ok()
            .map(|secret| api.fingerprint(secret.expose()))
    });
    json!({
        "id": c.id,
        "name": c.name.clone().unwrap_or_else(|| c.id.clone()),
        "api_key_id": c.api_key_id,
        "kind": c.kind,
        "source": if c.sealed.is_some() { "sealed" } else { "env" },
        "fingerprint": fingerprint,
        "managed_by": managed_by,
        "version": version,
    })
}

/// `GET /admin/v1/credentials`: metadata only.
pub async fn list_credentials(State(api): State<AdminApi>) -> Result<Response> {
    let mut out: Vec<Value> = file_raw(&api)?
        .credentials
        .iter()
        .map(|c| credential_view(&api, c, "file", None))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == Kind::Credential) {
        out.push(credential_view(
            &api,
            &stored_as(o)?,
            "api",
            Some(o.version),
        ));
    }
    Ok(Json(json!({ "items": out })).into_response())
}

/// `GET /admin/v1/credentials/{id}`: metadata only.
pub async fn get_credential(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Result<Response> {
    if let Some(c) = file_raw(&api)?.credentials.iter().find(|c| c.id == id) {
        return Ok(with_etag(
            StatusCode::OK,
            credential_view(&api, c, "file", None),
            None,
        ));
    }
    let stored = api.stored()?;
    let o = find(&stored, Kind::Credential, &id).ok_or(AdminError::NotFound {
        kind: "credential",
        id: id.clone(),
    })?;
    Ok(with_etag(
        StatusCode::OK,
        credential_view(&api, &stored_as(o)?, "api", Some(o.version)),
        Some(o.version),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCredential {
    id: Option<String>,
    name: Option<String>,
    api_key_id: Option<String>,
    kind: String,
    value: String,
}

/// `POST /admin/v1/credentials`: the value is sealed at once and never returned, masked or not.
pub async fn create_credential(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: CreateCredential = parse(&body)?;
    let (key, hash, replayed) = idempotency(&api, &headers, "POST /admin/v1/credentials", &body)?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    if req.value.is_empty() {
        return Err(AdminError::BadRequest("value must not be empty".into()));
    }
    let id = req.id.unwrap_or_else(|| random_id("cred"));
    if api.file_managed(Kind::Credential, &id)? {
        return Err(AdminError::FileManaged {
            kind: "credential",
            id,
        });
    }
    if find(&api.stored()?, Kind::Credential, &id).is_some() {
        return Err(AdminError::Exists {
            kind: "credential",
            id,
        });
    }
    let raw = RawCredential {
        sealed: Some(api.seal(&id, &req.value)?),
        id: id.clone(),
        name: req.name,
        api_key_id: req.api_key_id,
        kind: req.kind,
        env: None,
    };
    let value = to_value(&raw)?;
    let mut view = credential_view(&api, &raw, "api", Some(1));
    view["fingerprint"] = json!(api.fingerprint(&req.value));
    let plan = Plan {
        writes: vec![Write {
            kind: Kind::Credential,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(value.clone()),
        }],
        audit: vec![audit("create", Kind::Credential, &id, None, Some(&value))],
        idempotency: remember(key, hash, StatusCode::CREATED, &view),
    };
    api.apply(plan).await?;
    Ok(with_etag(StatusCode::CREATED, view, Some(1)))
}

/// `DELETE /admin/v1/credentials/{id}`: refused (422) while a node uses it.
pub async fn delete_credential(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_simple(&api, Kind::Credential, "credential", &id, &headers).await
}

/// Deletes one API-managed object, and every authorization that refers to it, in one audited commit.
async fn delete_simple(
    api: &AdminApi,
    kind: Kind,
    name: &'static str,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    if api.file_managed(kind, id)? {
        return Err(AdminError::FileManaged {
            kind: name,
            id: id.into(),
        });
    }
    let stored = api.stored()?;
    let current = find(&stored, kind, id).ok_or(AdminError::NotFound {
        kind: name,
        id: id.into(),
    })?;
    let mut plan = Plan {
        writes: vec![Write {
            kind,
            id: id.into(),
            expect: expect_for(headers, current)?,
            body: None,
        }],
        audit: vec![audit("delete", kind, id, Some(&current.body), None)],
        idempotency: None,
    };
    // What refers to the object goes with it.
    match kind {
        Kind::Llm | Kind::External | Kind::Enterprise => {
            cascade(&stored, &mut plan, Kind::Outbound, |e: &RawEdge| {
                e.node == id
            });
        }
        Kind::Agent => {
            cascade(&stored, &mut plan, Kind::Outbound, |e: &RawEdge| {
                e.agent == id
            });
            cascade(&stored, &mut plan, Kind::Inbound, |e: &RawInbound| {
                e.agent == id
            });
        }
        Kind::Client => {
            cascade(&stored, &mut plan, Kind::Inbound, |e: &RawInbound| {
                e.client == id
            });
        }
        Kind::Credential
        | Kind::User
        | Kind::Group
        | Kind::Organization
        | Kind::Inbound
        | Kind::Outbound => {}
    }
    api.apply(plan).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === nodes ===

fn node_view(n: &RawNode, kind: Kind, managed_by: &str, version: Option<u64>) -> Value {
    let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
    v["kind"] = json!(kind.as_str());
    v["managed_by"] = json!(managed_by);
    v["version"] = json!(version);
    v
}

fn file_nodes(api: &AdminApi, kind: Kind) -> Result<Vec<RawNode>> {
    let raw = file_raw(api)?;
    Ok(if kind == Kind::Llm {
        raw.llm
    } else {
        raw.external
    })
}

async fn list_nodes(api: &AdminApi, kind: Kind) -> Result<Response> {
    let mut out: Vec<Value> = file_nodes(api, kind)?
        .iter()
        .map(|n| node_view(n, kind, "file", None))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == kind) {
        out.push(node_view(&stored_as(o)?, kind, "api", Some(o.version)));
    }
    Ok(Json(json!({ "items": out })).into_response())
}

async fn get_node(api: &AdminApi, kind: Kind, id: &str) -> Result<Response> {
    if let Some(n) = file_nodes(api, kind)?.iter().find(|n| n.id == id) {
        return Ok(with_etag(
            StatusCode::OK,
            node_view(n, kind, "file", None),
            None,
        ));
    }
    let stored = api.stored()?;
    let o = find(&stored, kind, id).ok_or(AdminError::NotFound {
        kind: kind.as_str(),
        id: id.into(),
    })?;
    Ok(with_etag(
        StatusCode::OK,
        node_view(&stored_as(o)?, kind, "api", Some(o.version)),
        Some(o.version),
    ))
}

async fn create_node(
    api: &AdminApi,
    kind: Kind,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let raw: RawNode = parse(body)?;
    let route = format!("POST /admin/v1/{}", kind.as_str());
    let (key, hash, replayed) = idempotency(api, headers, &route, body)?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    check_upstream_field(
        api,
        Some(&raw.upstream),
        &format!("{}.upstream", kind.as_str()),
    )?;
    // An OAuth token endpoint is an upstream too: the client secret goes there.
    check_upstream_field(
        api,
        raw.oauth.as_ref().map(|o| &o.token_url),
        &format!("{}.oauth.token_url", kind.as_str()),
    )?;
    let id = raw.id.clone();
    if api.file_managed(Kind::Llm, &id)? || api.file_managed(Kind::External, &id)? {
        return Err(AdminError::FileManaged {
            kind: kind.as_str(),
            id,
        });
    }
    let stored = api.stored()?;
    if [Kind::Llm, Kind::External, Kind::Enterprise]
        .iter()
        .any(|k| find(&stored, *k, &id).is_some())
    {
        return Err(AdminError::Exists {
            kind: kind.as_str(),
            id,
        });
    }
    let value = to_value(&raw)?;
    let view = node_view(&raw, kind, "api", Some(1));
    let plan = Plan {
        writes: vec![Write {
            kind,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(value.clone()),
        }],
        audit: vec![audit("create", kind, &id, None, Some(&value))],
        idempotency: remember(key, hash, StatusCode::CREATED, &view),
    };
    api.apply(plan).await?;
    Ok(with_etag(StatusCode::CREATED, view, Some(1)))
}

/// `GET /admin/v1/llm`
pub async fn list_llm(State(api): State<AdminApi>) -> Result<Response> {
    list_nodes(&api, Kind::Llm).await
}
/// `GET /admin/v1/llm/{id}`
pub async fn get_llm(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    get_node(&api, Kind::Llm, &id).await
}
/// `POST /admin/v1/llm`: the body is an `[[llm]]` entry as JSON.
pub async fn create_llm(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    create_node(&api, Kind::Llm, &headers, &body).await
}
/// `DELETE /admin/v1/llm/{id}`: its outbound authorizations go with it.
pub async fn delete_llm(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_simple(&api, Kind::Llm, "llm", &id, &headers).await
}
/// `GET /admin/v1/external`
pub async fn list_external(State(api): State<AdminApi>) -> Result<Response> {
    list_nodes(&api, Kind::External).await
}
/// `GET /admin/v1/external/{id}`
pub async fn get_external(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    get_node(&api, Kind::External, &id).await
}
/// `POST /admin/v1/external`: the body is an `[[external]]` entry as JSON.
pub async fn create_external(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    create_node(&api, Kind::External, &headers, &body).await
}
/// `DELETE /admin/v1/external/{id}`: its outbound authorizations go with it.
pub async fn delete_external(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_simple(&api, Kind::External, "external", &id, &headers).await
}

// === enterprise services ===

fn service_view(svc: &RawService, managed_by: &str, version: Option<u64>) -> Value {
    let mut v = serde_json::to_value(svc).unwrap_or(Value::Null);
    v["managed_by"] = json!(managed_by);
    v["version"] = json!(version);
    v
}

/// `GET /admin/v1/enterprise`
pub async fn list_enterprise(State(api): State<AdminApi>) -> Result<Response> {
    let mut out: Vec<Value> = file_raw(&api)?
        .enterprise
        .iter()
        .map(|s| service_view(s, "file", None))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == Kind::Enterprise) {
        out.push(service_view(&stored_as(o)?, "api", Some(o.version)));
    }
    Ok(Json(json!({ "items": out })).into_response())
}

/// `GET /admin/v1/enterprise/{id}`
pub async fn get_enterprise(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Result<Response> {
    if let Some(svc) = file_raw(&api)?.enterprise.iter().find(|s| s.id == id) {
        return Ok(with_etag(
            StatusCode::OK,
            service_view(svc, "file", None),
            None,
        ));
    }
    let stored = api.stored()?;
    let o = find(&stored, Kind::Enterprise, &id).ok_or(AdminError::NotFound {
        kind: "enterprise",
        id: id.clone(),
    })?;
    Ok(with_etag(
        StatusCode::OK,
        service_view(&stored_as(o)?, "api", Some(o.version)),
        Some(o.version),
    ))
}

fn check_service_upstream(api: &AdminApi, upstream: Option<&String>) -> Result<()> {
    check_upstream_field(api, upstream, "enterprise.upstream")
}

/// `POST /admin/v1/enterprise`: name, audience identifier (immutable once saved), permissions.
pub async fn create_enterprise(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let raw: RawService = parse(&body)?;
    let (key, hash, replayed) = idempotency(&api, &headers, "POST /admin/v1/enterprise", &body)?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    check_service_upstream(&api, raw.upstream.as_ref())?;
    // An outside exchange endpoint receives agents' tokens: the same rules as an upstream.
    check_upstream_field(
        &api,
        raw.exchange.as_ref().map(|x| &x.token_url),
        "enterprise.exchange.token_url",
    )?;
    let id = raw.id.clone();
    if api.file_managed(Kind::Enterprise, &id)? {
        return Err(AdminError::FileManaged {
            kind: "enterprise",
            id,
        });
    }
    if find(&api.stored()?, Kind::Enterprise, &id).is_some() {
        return Err(AdminError::Exists {
            kind: "enterprise",
            id,
        });
    }
    let value = to_value(&raw)?;
    let view = service_view(&raw, "api", Some(1));
    let plan = Plan {
        writes: vec![Write {
            kind: Kind::Enterprise,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(value.clone()),
        }],
        audit: vec![audit("create", Kind::Enterprise, &id, None, Some(&value))],
        idempotency: remember(key, hash, StatusCode::CREATED, &view),
    };
    api.apply(plan).await?;
    Ok(with_etag(StatusCode::CREATED, view, Some(1)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchService {
    id: Option<String>,
    name: Option<String>,
    audience: Option<String>,
    upstream: Option<String>,
    permissions: Option<Vec<RawPermission>>,
}

/// `PATCH /admin/v1/enterprise/{id}`: name, upstream, permissions. `id` and `audience` are immutable. A
/// permission removed here is removed from every API-managed authorization that granted it.
pub async fn patch_enterprise(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PatchService = parse(&body)?;
    if api.file_managed(Kind::Enterprise, &id)? {
        return Err(AdminError::FileManaged {
            kind: "enterprise",
            id,
        });
    }
    let stored = api.stored()?;
    let current = find(&stored, Kind::Enterprise, &id).ok_or(AdminError::NotFound {
        kind: "enterprise",
        id: id.clone(),
    })?;
    let mut raw: RawService = stored_as(current)?;
    if req.id.as_ref().is_some_and(|new| *new != id) {
        return Err(AdminError::Immutable("id"));
    }
    if req.audience.as_ref().is_some_and(|a| *a != raw.audience) {
        return Err(AdminError::Immutable("audience"));
    }
    check_service_upstream(&api, req.upstream.as_ref())?;
    if let Some(name) = req.name {
        raw.name = Some(name);
    }
    if let Some(upstream) = req.upstream {
        raw.upstream = Some(upstream);
    }
    let mut plan = Plan {
        writes: vec![],
        audit: vec![],
        idempotency: None,
    };
    if let Some(permissions) = req.permissions {
        let kept: Vec<&str> = permissions.iter().map(|p| p.scope.as_str()).collect();
        for o in stored.iter().filter(|o| o.kind == Kind::Outbound) {
            let Ok(mut edge) = serde_json::from_value::<RawEdge>(o.body.clone()) else {
                continue;
            };
            if edge.node != id || edge.scopes.iter().all(|s| kept.contains(&s.as_str())) {
                continue;
            }
            edge.scopes.retain(|s| kept.contains(&s.as_str()));
            let after = to_value(&edge)?;
            plan.audit.push(audit(
                "update",
                Kind::Outbound,
                &o.id,
                Some(&o.body),
                Some(&after),
            ));
            plan.writes.push(Write {
                kind: Kind::Outbound,
                id: o.id.clone(),
                expect: Expect::Version(o.version),
                body: Some(after),
            });
        }
        raw.permissions = permissions;
    }
    let value = to_value(&raw)?;
    plan.writes.insert(
        0,
        Write {
            kind: Kind::Enterprise,
            id: id.clone(),
            expect: expect_for(&headers, current)?,
            body: Some(value.clone()),
        },
    );
    plan.audit.insert(
        0,
        audit(
            "update",
            Kind::Enterprise,
            &id,
            Some(&current.body),
            Some(&value),
        ),
    );
    api.apply(plan).await?;
    let version = current.version + 1;
    Ok(with_etag(
        StatusCode::OK,
        service_view(&raw, "api", Some(version)),
        Some(version),
    ))
}

/// `DELETE /admin/v1/enterprise/{id}`: its outbound authorizations go with it.
pub async fn delete_enterprise(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_simple(&api, Kind::Enterprise, "enterprise", &id, &headers).await
}

// === credentials of agents and clients: client secrets and public keys ===

/// What agents and client applications share: a client id, secrets and keys.
trait Principal: serde::Serialize + DeserializeOwned {
    const KIND: Kind;
    fn secrets(&mut self) -> &mut Vec<RawClientSecret>;
    fn keys(&mut self) -> &mut Vec<RawPublicKey>;
    fn from_file(raw: idguard_config::raw::RawConfig, id: &str) -> Option<Self>;
}

impl Principal for RawAgent {
    const KIND: Kind = Kind::Agent;
    fn secrets(&mut self) -> &mut Vec<RawClientSecret> {
        &mut self.secrets
    }
    fn keys(&mut self) -> &mut Vec<RawPublicKey> {
        &mut self.keys
    }
    fn from_file(raw: idguard_config::raw::RawConfig, id: &str) -> Option<Self> {
        raw.agents.into_iter().find(|a| a.id == id)
    }
}

impl Principal for RawClient {
    const KIND: Kind = Kind::Client;
    fn secrets(&mut self) -> &mut Vec<RawClientSecret> {
        &mut self.secrets
    }
    fn keys(&mut self) -> &mut Vec<RawPublicKey> {
        &mut self.keys
    }
    fn from_file(raw: idguard_config::raw::RawConfig, id: &str) -> Option<Self> {
        raw.clients.into_iter().find(|c| c.id == id)
    }
}

/// Reads an API-managed principal for a change to its credentials.
fn principal_for_change<P: Principal>(api: &AdminApi, id: &str) -> Result<(StoredObject, P)> {
    let kind = P::KIND;
    if api.file_managed(kind, id)? {
        return Err(AdminError::FileManaged {
            kind: kind.as_str(),
            id: id.into(),
        });
    }
    let stored = api.stored()?;
    let current = find(&stored, kind, id)
        .ok_or(AdminError::NotFound {
            kind: kind.as_str(),
            id: id.into(),
        })?
        .clone();
    let raw = stored_as(&current)?;
    Ok((current, raw))
}

async fn save_principal<P: Principal>(
    api: &AdminApi,
    headers: &HeaderMap,
    current: &StoredObject,
    raw: &P,
) -> Result<u64> {
    let value = to_value(raw)?;
    let plan = Plan {
        writes: vec![Write {
            kind: P::KIND,
            id: current.id.clone(),
            expect: expect_for(headers, current)?,
            body: Some(value.clone()),
        }],
        audit: vec![audit(
            "update",
            P::KIND,
            &current.id,
            Some(&current.body),
            Some(&value),
        )],
        idempotency: None,
    };
    api.apply(plan).await?;
    Ok(current.version + 1)
}

fn principal_raw<P: Principal>(api: &AdminApi, id: &str) -> Result<P> {
    if let Some(p) = P::from_file(file_raw(api)?, id) {
        return Ok(p);
    }
    let stored = api.stored()?;
    stored_as(find(&stored, P::KIND, id).ok_or(AdminError::NotFound {
        kind: P::KIND.as_str(),
        id: id.into(),
    })?)
}

async fn create_secret_for<P: Principal>(
    api: &AdminApi,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    if headers.contains_key("idempotency-key") {
        // Replaying would mean storing the answer, and the answer is the secret.
        return Err(AdminError::BadRequest(
            "Idempotency-Key is not accepted here: a secret is shown exactly once".into(),
        ));
    }
    let (current, mut raw) = principal_for_change::<P>(api, id)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "idgsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    );
    let secret_id = random_id("sec");
    raw.secrets().push(RawClientSecret {
        id: secret_id.clone(),
        hash: api.secret_hash(&secret),
        created_at: now(),
    });
    let version = save_principal(api, headers, &current, &raw).await?;
    let body = json!({"id": secret_id, "client_id": id, "secret": secret, "created_at": now(),
                      "note": "store this secret now: it is not shown again"});
    Ok(with_etag(StatusCode::CREATED, body, Some(version)))
}

fn list_secrets_for<P: Principal>(api: &AdminApi, id: &str) -> Result<Response> {
    let mut raw = principal_raw::<P>(api, id)?;
    let items: Vec<Value> = raw
        .secrets()
        .iter()
        .map(|s| json!({"id": s.id, "created_at": s.created_at}))
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

async fn delete_secret_for<P: Principal>(
    api: &AdminApi,
    id: &str,
    secret: String,
    headers: &HeaderMap,
) -> Result<Response> {
    let (current, mut raw) = principal_for_change::<P>(api, id)?;
    let before = raw.secrets().len();
    raw.secrets().retain(|s| s.id != secret);
    if raw.secrets().len() == before {
        return Err(AdminError::NotFound {
            kind: "secret",
            id: secret,
        });
    }
    save_principal(api, headers, &current, &raw).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    id: Option<String>,
    jwk: Option<Value>,
    pem: Option<String>,
}

async fn create_key_for<P: Principal>(
    api: &AdminApi,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let req: CreateKey = parse(body)?;
    let (current, mut raw) = principal_for_change::<P>(api, id)?;
    let key_id = req.id.unwrap_or_else(|| random_id("key"));
    let key = RawPublicKey {
        id: key_id.clone(),
        jwk: req.jwk,
        pem: req.pem,
    };
    let alg = idguard_config::validate::public_key(&key)
        .map_err(|message| {
            AdminError::Invalid(vec![idguard_config::ValidationError {
                path: "key".into(),
                line: None,
                message,
            }])
        })?
        .alg;
    raw.keys().push(key);
    let version = save_principal(api, headers, &current, &raw).await?;
    Ok(with_etag(
        StatusCode::CREATED,
        json!({"id": key_id, "client_id": id, "alg": alg}),
        Some(version),
    ))
}

fn list_keys_for<P: Principal>(api: &AdminApi, id: &str) -> Result<Response> {
    let mut raw = principal_raw::<P>(api, id)?;
    let items: Vec<Value> = raw
        .keys()
        .iter()
        .map(|k| json!({"id": k.id, "jwk": k.jwk, "pem": k.pem}))
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

async fn delete_key_for<P: Principal>(
    api: &AdminApi,
    id: &str,
    key: String,
    headers: &HeaderMap,
) -> Result<Response> {
    let (current, mut raw) = principal_for_change::<P>(api, id)?;
    let before = raw.keys().len();
    raw.keys().retain(|k| k.id != key);
    if raw.keys().len() == before {
        return Err(AdminError::NotFound {
            kind: "key",
            id: key,
        });
    }
    save_principal(api, headers, &current, &raw).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/v1/agents/{id}/secrets`: a new client secret (256 random bits). The value is in this response
/// only; the store keeps a keyed hash. Several may exist at once, so secrets rotate without downtime.
pub async fn create_secret(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    create_secret_for::<RawAgent>(&api, &id, &headers).await
}
/// `GET /admin/v1/agents/{id}/secrets`: ids and creation times only.
pub async fn list_secrets(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    list_secrets_for::<RawAgent>(&api, &id)
}
/// `DELETE /admin/v1/agents/{id}/secrets/{secret}`: revoke one secret.
pub async fn delete_secret(
    State(api): State<AdminApi>,
    Path((id, secret)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_secret_for::<RawAgent>(&api, &id, secret, &headers).await
}
/// `POST /admin/v1/agents/{id}/keys`: register a public key (JWK or PEM) for `private_key_jwt`. The key fixes
/// the algorithm: EC P-256 → ES256, RSA → RS256, Ed25519 → EdDSA.
pub async fn create_key(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    create_key_for::<RawAgent>(&api, &id, &headers, &body).await
}
/// `GET /admin/v1/agents/{id}/keys`
pub async fn list_keys(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    list_keys_for::<RawAgent>(&api, &id)
}
/// `DELETE /admin/v1/agents/{id}/keys/{key}`
pub async fn delete_key(
    State(api): State<AdminApi>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_key_for::<RawAgent>(&api, &id, key, &headers).await
}
/// `POST /admin/v1/clients/{id}/secrets`
pub async fn create_client_secret(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    create_secret_for::<RawClient>(&api, &id, &headers).await
}
/// `GET /admin/v1/clients/{id}/secrets`
pub async fn list_client_secrets(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Result<Response> {
    list_secrets_for::<RawClient>(&api, &id)
}
/// `DELETE /admin/v1/clients/{id}/secrets/{secret}`
pub async fn delete_client_secret(
    State(api): State<AdminApi>,
    Path((id, secret)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_secret_for::<RawClient>(&api, &id, secret, &headers).await
}
/// `POST /admin/v1/clients/{id}/keys`
pub async fn create_client_key(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    create_key_for::<RawClient>(&api, &id, &headers, &body).await
}
/// `GET /admin/v1/clients/{id}/keys`
pub async fn list_client_keys(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Result<Response> {
    list_keys_for::<RawClient>(&api, &id)
}
/// `DELETE /admin/v1/clients/{id}/keys/{key}`
pub async fn delete_client_key(
    State(api): State<AdminApi>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_key_for::<RawClient>(&api, &id, key, &headers).await
}

// === client applications and inbound authorization ===

fn client_view(c: &RawClient, managed_by: &str, version: Option<u64>) -> Value {
    json!({
        "id": c.id,
        "name": c.name.clone().unwrap_or_else(|| c.id.clone()),
        "redirect_uris": c.redirect_uris,
        "auth": c.auth.clone().unwrap_or_else(|| "client_secret".into()),
        "secrets": c.secrets.iter().map(|s| json!({"id": s.id, "created_at": s.created_at})).collect::<Vec<_>>(),
        "keys": c.keys.iter().map(|k| json!({"id": k.id})).collect::<Vec<_>>(),
        "users": c.users,
        "groups": c.groups,
        "organizations": c.organizations,
        "enabled": c.enabled.unwrap_or(true),
        "managed_by": managed_by,
        "version": version,
    })
}

/// `GET /admin/v1/clients`
pub async fn list_clients(State(api): State<AdminApi>) -> Result<Response> {
    let mut out: Vec<Value> = file_raw(&api)?
        .clients
        .iter()
        .map(|c| client_view(c, "file", None))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == Kind::Client) {
        out.push(client_view(&stored_as(o)?, "api", Some(o.version)));
    }
    Ok(Json(json!({ "items": out })).into_response())
}

/// `GET /admin/v1/clients/{id}`
pub async fn get_client(State(api): State<AdminApi>, Path(id): Path<String>) -> Result<Response> {
    if let Some(c) = file_raw(&api)?.clients.iter().find(|c| c.id == id) {
        return Ok(with_etag(
            StatusCode::OK,
            client_view(c, "file", None),
            None,
        ));
    }
    let stored = api.stored()?;
    let o = find(&stored, Kind::Client, &id).ok_or(AdminError::NotFound {
        kind: "client",
        id: id.clone(),
    })?;
    Ok(with_etag(
        StatusCode::OK,
        client_view(&stored_as(o)?, "api", Some(o.version)),
        Some(o.version),
    ))
}

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

/// `POST /admin/v1/clients`: a client application; its `client_id` is generated unless given, and must not be
/// the id of an agent or service.
pub async fn create_client(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: ClientFields = parse(&body)?;
    let (key, hash, replayed) = idempotency(&api, &headers, "POST /admin/v1/clients", &body)?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    let id = req.id.clone().unwrap_or_else(|| random_id("client"));
    if api.file_managed(Kind::Client, &id)? {
        return Err(AdminError::FileManaged { kind: "client", id });
    }
    let stored = api.stored()?;
    if [Kind::Client, Kind::Agent, Kind::Enterprise]
        .iter()
        .any(|k| find(&stored, *k, &id).is_some())
        || api.file_managed(Kind::Agent, &id)?
        || api.file_managed(Kind::Enterprise, &id)?
    {
        return Err(AdminError::Exists { kind: "client", id });
    }
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
    let value = to_value(&raw)?;
    let view = client_view(&raw, "api", Some(1));
    let plan = Plan {
        writes: vec![Write {
            kind: Kind::Client,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(value.clone()),
        }],
        audit: vec![audit("create", Kind::Client, &id, None, Some(&value))],
        idempotency: remember(key, hash, StatusCode::CREATED, &view),
    };
    api.apply(plan).await?;
    Ok(with_etag(StatusCode::CREATED, view, Some(1)))
}

/// `PATCH /admin/v1/clients/{id}`: name, redirect URIs, credential type, authorized principals, enabled.
pub async fn patch_client(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: ClientFields = parse(&body)?;
    if req.id.as_ref().is_some_and(|new| *new != id) {
        return Err(AdminError::Immutable("id"));
    }
    let (current, mut raw) = principal_for_change::<RawClient>(&api, &id)?;
    req.apply(&mut raw);
    let version = save_principal(&api, &headers, &current, &raw).await?;
    Ok(with_etag(
        StatusCode::OK,
        client_view(&raw, "api", Some(version)),
        Some(version),
    ))
}

/// `DELETE /admin/v1/clients/{id}`: its inbound authorizations go with it.
pub async fn delete_client(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    delete_simple(&api, Kind::Client, "client", &id, &headers).await
}

/// `PUT /admin/v1/agents/{id}/inbound/{client}`: grant (or change) the client's inbound authorization: which of
/// the agent's permissions it may use.
pub async fn put_inbound(
    State(api): State<AdminApi>,
    Path((agent, client)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PutOutbound = parse(&body)?;
    let raw = RawInbound {
        client,
        agent,
        scopes: req.scopes,
    };
    let id = format!("{}/{}", raw.client, raw.agent);
    let (status, version) = put_edge(&api, Kind::Inbound, &id, to_value(&raw)?, &headers).await?;
    let view = json!({"client": raw.client, "agent": raw.agent, "scopes": raw.scopes, "managed_by": "api", "version": version});
    Ok(with_etag(status, view, Some(version)))
}

/// `DELETE /admin/v1/agents/{id}/inbound/{client}`: withdraw the inbound authorization.
pub async fn delete_inbound(
    State(api): State<AdminApi>,
    Path((agent, client)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = format!("{client}/{agent}");
    delete_simple(&api, Kind::Inbound, "inbound", &id, &headers).await
}

// === agent permission ===

/// `PUT /admin/v1/agents/{id}/permission`: the agent's permission — name, scope (default `agent.access`), mode
/// `auto` or `manual`, and in manual mode the users, groups and organizations it is granted to.
pub async fn put_permission(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let permission: RawAgentPermission = parse(&body)?;
    if api.file_managed(Kind::Agent, &id)? {
        return Err(AdminError::FileManaged { kind: "agent", id });
    }
    let stored = api.stored()?;
    let current = find(&stored, Kind::Agent, &id).ok_or(AdminError::NotFound {
        kind: "agent",
        id: id.clone(),
    })?;
    let mut raw: RawAgent = stored_as(current)?;
    let scope = permission
        .scope
        .clone()
        .unwrap_or_else(|| "agent.access".into());
    raw.permission = Some(permission);
    let value = to_value(&raw)?;
    let mut plan = Plan {
        writes: vec![Write {
            kind: Kind::Agent,
            id: id.clone(),
            expect: expect_for(&headers, current)?,
            body: Some(value.clone()),
        }],
        audit: vec![audit(
            "update",
            Kind::Agent,
            &id,
            Some(&current.body),
            Some(&value),
        )],
        idempotency: None,
    };
    // A permission scope that changes is withdrawn from every API-managed inbound authorization that granted it.
    for o in stored.iter().filter(|o| o.kind == Kind::Inbound) {
        let Ok(mut edge) = serde_json::from_value::<RawInbound>(o.body.clone()) else {
            continue;
        };
        if edge.agent != id || edge.scopes.iter().all(|s| *s == scope) {
            continue;
        }
        edge.scopes.retain(|s| *s == scope);
        let after = to_value(&edge)?;
        plan.audit.push(audit(
            "update",
            Kind::Inbound,
            &o.id,
            Some(&o.body),
            Some(&after),
        ));
        plan.writes.push(Write {
            kind: Kind::Inbound,
            id: o.id.clone(),
            expect: Expect::Version(o.version),
            body: Some(after),
        });
    }
    api.apply(plan).await?;
    let version = current.version + 1;
    let mut view = agent_view(&raw, "api", Some(version));
    view["permission"] = serde_json::to_value(&raw.permission).unwrap_or(Value::Null);
    Ok(with_etag(StatusCode::OK, view, Some(version)))
}

// === directory: users, groups, organizations ===

fn directory_kind(segment: &str) -> Result<Kind> {
    match segment {
        "users" => Ok(Kind::User),
        "groups" => Ok(Kind::Group),
        "organizations" => Ok(Kind::Organization),
        other => Err(AdminError::NotFound {
            kind: "collection",
            id: other.into(),
        }),
    }
}

/// Parses a directory object of `kind` strictly and returns it as JSON with its id.
async fn parse_directory(kind: Kind, body: &Bytes) -> Result<(String, Value)> {
    let value = match kind {
        Kind::User => {
            // A password comes in clear over the admin listener and is stored only as an argon2id hash; a hash is
            // never accepted from outside.
            let mut map: serde_json::Map<String, Value> = parse(body)?;
            if map.contains_key("password_hash") {
                return Err(AdminError::Invalid(vec![idguard_config::ValidationError {
                    path: "users.password_hash".into(),
                    line: None,
                    message: "is set by idguard; send `password` instead".into(),
                }]));
            }
            let password = map.remove("password");
            let mut user: RawUser =
                parse(&Bytes::from(serde_json::to_vec(&map).unwrap_or_default()))?;
            match password {
                None => {}
                Some(Value::String(pw)) if (8..=1024).contains(&pw.chars().count()) => {
                    // argon2id takes tens of milliseconds: off the runtime thread.
                    let hash = tokio::task::spawn_blocking(move || {
                        idguard_config::hashes::hash_password(&pw)
                    })
                    .await
                    .map_err(|_| AdminError::StoreUnavailable)?
                    .map_err(|_| AdminError::StoreUnavailable)?;
                    user.password_hash = Some(hash);
                }
                Some(_) => {
                    return Err(AdminError::Invalid(vec![idguard_config::ValidationError {
                        path: "users.password".into(),
                        line: None,
                        message: "must be a string of 8 to 1024 characters".into(),
                    }]));
                }
            }
            to_value(&user)?
        }
        Kind::Group => to_value(&parse::<RawGroup>(body)?)?,
        _ => to_value(&parse::<RawOrganization>(body)?)?,
    };
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    Ok((id, value))
}

fn file_directory(api: &AdminApi, kind: Kind) -> Result<Vec<Value>> {
    let raw = file_raw(api)?;
    let values = match kind {
        Kind::User => raw.users.iter().map(to_value).collect::<Result<Vec<_>>>()?,
        Kind::Group => raw
            .groups
            .iter()
            .map(to_value)
            .collect::<Result<Vec<_>>>()?,
        _ => raw
            .organizations
            .iter()
            .map(to_value)
            .collect::<Result<Vec<_>>>()?,
    };
    Ok(values)
}

fn directory_view(mut v: Value, managed_by: &str, version: Option<u64>) -> Value {
    if let Some(map) = v.as_object_mut()
        && let Some(hash) = map.remove("password_hash")
    {
        map.insert("has_password".into(), json!(!hash.is_null()));
    }
    v["managed_by"] = json!(managed_by);
    v["version"] = json!(version);
    v
}

/// `GET /admin/v1/{users|groups|organizations}`
pub async fn list_directory(
    State(api): State<AdminApi>,
    Path(segment): Path<String>,
) -> Result<Response> {
    let kind = directory_kind(&segment)?;
    let mut out: Vec<Value> = file_directory(&api, kind)?
        .into_iter()
        .map(|v| directory_view(v, "file", None))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == kind) {
        out.push(directory_view(o.body.clone(), "api", Some(o.version)));
    }
    Ok(Json(json!({ "items": out })).into_response())
}

/// `GET /admin/v1/{users|groups|organizations}/{id}`
pub async fn get_directory(
    State(api): State<AdminApi>,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Response> {
    let kind = directory_kind(&segment)?;
    if let Some(v) = file_directory(&api, kind)?
        .into_iter()
        .find(|v| v["id"] == id.as_str())
    {
        return Ok(with_etag(
            StatusCode::OK,
            directory_view(v, "file", None),
            None,
        ));
    }
    let stored = api.stored()?;
    let o = find(&stored, kind, &id).ok_or(AdminError::NotFound {
        kind: kind.as_str(),
        id: id.clone(),
    })?;
    Ok(with_etag(
        StatusCode::OK,
        directory_view(o.body.clone(), "api", Some(o.version)),
        Some(o.version),
    ))
}

/// `POST /admin/v1/{users|groups|organizations}`: a user `{id, name?, email?, organization?, groups?}`, a
/// group `{id, name?}`, or an organizational unit `{id, name?, parent?}`.
pub async fn create_directory(
    State(api): State<AdminApi>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let kind = directory_kind(&segment)?;
    let (id, value) = parse_directory(kind, &body).await?;
    let (key, hash, replayed) =
        idempotency(&api, &headers, &format!("POST /admin/v1/{segment}"), &body)?;
    if let Some(r) = replayed {
        return Ok(r);
    }
    if api.file_managed(kind, &id)? {
        return Err(AdminError::FileManaged {
            kind: kind.as_str(),
            id,
        });
    }
    if find(&api.stored()?, kind, &id).is_some() {
        return Err(AdminError::Exists {
            kind: kind.as_str(),
            id,
        });
    }
    let view = directory_view(value.clone(), "api", Some(1));
    let plan = Plan {
        writes: vec![Write {
            kind,
            id: id.clone(),
            expect: Expect::Absent,
            body: Some(value.clone()),
        }],
        audit: vec![audit("create", kind, &id, None, Some(&value))],
        idempotency: remember(key, hash, StatusCode::CREATED, &view),
    };
    api.apply(plan).await?;
    Ok(with_etag(StatusCode::CREATED, view, Some(1)))
}

/// `PUT /admin/v1/{users|groups|organizations}/{id}`: replace the object (its `id` is immutable).
pub async fn put_directory(
    State(api): State<AdminApi>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let kind = directory_kind(&segment)?;
    let (new_id, mut value) = parse_directory(kind, &body).await?;
    if new_id != id {
        return Err(AdminError::Immutable("id"));
    }
    if api.file_managed(kind, &id)? {
        return Err(AdminError::FileManaged {
            kind: kind.as_str(),
            id,
        });
    }
    let stored = api.stored()?;
    let current = find(&stored, kind, &id).ok_or(AdminError::NotFound {
        kind: kind.as_str(),
        id: id.clone(),
    })?;
    // A replacement without a password keeps the user's current one.
    if kind == Kind::User
        && value.get("password_hash").is_none()
        && let Some(old) = current.body.get("password_hash")
    {
        value["password_hash"] = old.clone();
    }
    let plan = Plan {
        writes: vec![Write {
            kind,
            id: id.clone(),
            expect: expect_for(&headers, current)?,
            body: Some(value.clone()),
        }],
        audit: vec![audit(
            "update",
            kind,
            &id,
            Some(&current.body),
            Some(&value),
        )],
        idempotency: None,
    };
    api.apply(plan).await?;
    let version = current.version + 1;
    Ok(with_etag(
        StatusCode::OK,
        directory_view(value, "api", Some(version)),
        Some(version),
    ))
}

/// `DELETE /admin/v1/{users|groups|organizations}/{id}`: refused (422) while something refers to it.
pub async fn delete_directory(
    State(api): State<AdminApi>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let kind = directory_kind(&segment)?;
    delete_simple(&api, kind, kind.as_str(), &id, &headers).await
}

// === topology view ===

/// `GET /admin/v1/agents/{id}/topology`: the agent's diagram — the agent, the nodes it may call (with their
/// credentials), and the edges between them, from the file and the store together.
pub async fn agent_topology(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Result<Response> {
    let stored = api.stored()?;
    let snapshot = api.inner.loader.build_with(&stored, 0).map_err(|e| {
        tracing::error!(reason = "config_unreadable", "{e}");
        AdminError::StoreUnavailable
    })?;
    let agent = snapshot
        .agents
        .get(id.as_str())
        .ok_or(AdminError::NotFound {
            kind: "agent",
            id: id.clone(),
        })?;
    let mut nodes = vec![
        json!({"kind": "agent", "id": &*agent.id, "name": agent.name, "audience": agent.audience, "enabled": agent.enabled}),
    ];
    let mut edges = Vec::new();
    let mut credentials = std::collections::BTreeSet::new();
    let mut reachable: Vec<_> = snapshot
        .edges
        .iter()
        .filter_map(|(node, by_agent)| {
            by_agent
                .get(id.as_str())
                .map(|e| (node.clone(), e.required_scopes.clone()))
        })
        .collect();
    reachable.sort();
    for (node_id, scopes) in reachable {
        let Some(node) = snapshot.nodes.get(&node_id) else {
            continue;
        };
        nodes.push(json!({"kind": node.kind.as_str(), "id": &*node.id, "name": node.name, "credential": &*node.credential}));
        let scopes: Vec<&str> = scopes.iter().map(|s| &**s).collect();
        edges.push(
            json!({"kind": "outbound", "from": &*agent.id, "to": &*node.id, "scopes": scopes}),
        );
        edges.push(json!({"kind": "uses", "from": &*node.id, "to": &*node.credential}));
        credentials.insert(node.credential.clone());
    }
    let mut granted: Vec<_> = snapshot
        .service_grants
        .iter()
        .filter_map(|(svc, by_agent)| {
            by_agent
                .get(id.as_str())
                .map(|scopes| (svc.clone(), scopes.clone()))
        })
        .collect();
    granted.sort();
    for (svc_id, scopes) in granted {
        let Some(svc) = snapshot.services.get(&svc_id) else {
            continue;
        };
        nodes.push(json!({"kind": "enterprise", "id": &*svc.id, "name": svc.name, "audience": svc.audience}));
        let scopes: Vec<&str> = scopes.iter().map(|s| &**s).collect();
        edges.push(
            json!({"kind": "outbound", "from": &*agent.id, "to": &*svc.id, "scopes": scopes}),
        );
    }
    for c in credentials {
        if let Some(cred) = snapshot.credentials.get(&c) {
            nodes.push(json!({"kind": "credential", "id": &*cred.id, "name": cred.name, "business_type": cred.kind.as_str()}));
        }
    }
    Ok(Json(json!({"agent": id, "nodes": nodes, "edges": edges})).into_response())
}

/// `GET /admin/v1/openapi.json`: the OpenAPI 3 description of this API.
pub async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
