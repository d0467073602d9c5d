//! What every admin handler shares: reading a request (its JSON body, `If-Match`, `Idempotency-Key`), what a
//! request sees of the topology ([`Current`]: the routing file and the store, each read once), answering (views
//! stamped with `managed_by` and `version`, with an `ETag`), and list, get, create, change, upsert and delete
//! written once over the [`Resource`] trait that each resource family implements.
//!
//! The decisions — which precondition a write carries, whether an id is free, whether a key replays — are plain
//! functions of their inputs, tested without a socket in `core/tests.rs`.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idguard_config::ValidationError;
use idguard_config::raw::RawConfig;
use idguard_config::store::{Expect, IdempotentAnswer, Kind, StoredObject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AdminApi;
use super::paging::PageQuery;
use super::usage_graph::{UsedBy, cascade_param};
use super::write::{Plan, store_error};
use crate::error::{AdminError, Internal};

/// The admin handlers' result.
pub(super) type Result<T> = std::result::Result<T, AdminError>;

/// Who manages an object, and its version when the store does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Managed {
    /// Declared in the routing file: read-only through the API, no version.
    File,
    /// Stored through the API, at this version.
    Api(u64),
}

/// What a request sees of the topology: the routing file's objects and the stored ones, each read once.
#[derive(Clone, Copy)]
pub(super) struct Current<'a> {
    /// The routing file's objects.
    pub(super) file: &'a RawConfig,
    /// The stored objects.
    pub(super) stored: &'a [StoredObject],
}

/// A create's `Idempotency-Key`, scoped to its caller and its route, and the request's keyed hash.
pub(super) struct Idempotency {
    key: Option<String>,
    hash: String,
}

/// A kind of object the API manages: how it is stored, found in the routing file, and shown.
pub(super) trait Resource: 'static {
    /// The stored kind (also the name in messages).
    const KIND: Kind;
    /// The routing file's type for it, which the store keeps as JSON.
    type Raw: Clone + Serialize + DeserializeOwned + Send + 'static;

    /// The routing file's objects of this kind.
    fn file(file: &RawConfig) -> &[Self::Raw];

    /// An object's id.
    fn id(raw: &Self::Raw) -> Cow<'_, str>;

    /// The JSON an object is shown as, before [`stamp`] adds who manages it.
    fn view(api: &AdminApi, raw: &Self::Raw) -> Value;

    /// Refuses an id a new object may not take: by default one the file declares (409 `file_managed`) or the
    /// store holds (409 `exists`) for this kind.
    fn check_free(cur: Current<'_>, id: &str) -> Result<()> {
        if cur.declares::<Self>(id) {
            return Err(file_managed(Self::KIND, id));
        }
        if cur.stored(Self::KIND, id).is_some() {
            return Err(exists(Self::KIND, id));
        }
        Ok(())
    }

    /// Adds to `plan` what always goes with the object `id` when it is deleted: what belongs to it (an agent's
    /// own authorizations).
    fn cascade(_cur: Current<'_>, _id: &str, _plan: &mut Plan) {}

    /// The objects that use the object `id` ([`usage_graph`](super::usage_graph)): a delete is refused while there
    /// are any, unless it asks for the cascade and [`Resource::withdraw_uses`] can remove them.
    fn used_by(_cur: Current<'_>, _id: &str) -> Option<UsedBy> {
        None
    }

    /// Adds to `plan` the withdrawal of the stored uses of `id` (`?cascade=true`); `false` when uses cannot be
    /// withdrawn by a cascade (they are objects of their own, not authorizations).
    fn withdraw_uses(_cur: Current<'_>, _id: &str, _plan: &mut Plan) -> bool {
        false
    }
}

// === impl Managed ===

impl Managed {
    /// The `managed_by` value.
    pub(super) fn by(self) -> &'static str {
        match self {
            Managed::File => "file",
            Managed::Api(_) => "api",
        }
    }

    /// The version (and `ETag`) of a stored object.
    pub(super) fn version(self) -> Option<u64> {
        match self {
            Managed::File => None,
            Managed::Api(v) => Some(v),
        }
    }
}

// === impl Current ===

impl<'a> Current<'a> {
    /// Whether the routing file declares the object `id` of kind `R`.
    pub(super) fn declares<R: Resource + ?Sized>(self, id: &str) -> bool {
        R::file(self.file).iter().any(|r| R::id(r) == id)
    }

    /// The stored object of `kind` with `id`.
    pub(super) fn stored(self, kind: Kind, id: &str) -> Option<&'a StoredObject> {
        self.stored.iter().find(|o| o.kind == kind && o.id == id)
    }

    /// The stored object a change or a delete applies to: refused when the file declares it, 404 when absent.
    pub(super) fn for_change<R: Resource>(self, id: &str) -> Result<&'a StoredObject> {
        if self.declares::<R>(id) {
            return Err(file_managed(R::KIND, id));
        }
        self.stored(R::KIND, id)
            .ok_or_else(|| not_found(R::KIND, id))
    }

    /// The stored object a create-or-replace applies to, if there is one; refused when the file declares it.
    pub(super) fn for_upsert<R: Resource>(self, id: &str) -> Result<Option<&'a StoredObject>> {
        if self.declares::<R>(id) {
            return Err(file_managed(R::KIND, id));
        }
        Ok(self.stored(R::KIND, id))
    }

    /// The stored objects of kind `R`, with their raw values, for cascades; a body that does not fit is skipped
    /// here and refused as corrupt when the write merges the store.
    pub(super) fn each<R: Resource>(self) -> impl Iterator<Item = (&'a StoredObject, R::Raw)> {
        self.stored
            .iter()
            .filter(|o| o.kind == R::KIND)
            .filter_map(|o| Some((o, serde_json::from_value(o.body.clone()).ok()?)))
    }
}

// === impl Idempotency ===

impl Idempotency {
    /// Reads the `Idempotency-Key` of a create at `route`. `Err(response)` is the answer remembered for this very
    /// request under that key by this same caller: send it again, do nothing else. Keys are scoped to the caller
    /// (the operator, or `admin`): another operator's key is a different key, so its answer — which may name what
    /// that operator created — is never replayed to anyone else, and a clash between two callers is no 422.
    ///
    /// # Errors
    /// 400 for a malformed key, 422 when the caller used the key for a different request, or the store's failure.
    pub(super) async fn begin(
        api: &AdminApi,
        headers: &HeaderMap,
        route: &str,
        body: &[u8],
    ) -> Result<std::result::Result<Self, Response>> {
        let hash = api.fingerprint(&format!("{route}\n{}", String::from_utf8_lossy(body)));
        let Some(key) = idempotency_key(headers)? else {
            return Ok(Ok(Self { key: None, hash }));
        };
        // The caller `access::authorize` authenticated; the role check has already passed, so a caller who may
        // not write never reads a remembered answer.
        let caller = super::access::Caller::current().ok_or(Internal::NoCaller)?;
        let key = scoped_key(&caller.actor, route, key);
        let remembered = {
            let key = key.clone();
            api.blocking(move |api| api.inner.store.idempotent(&key).map_err(store_error))
                .await?
        };
        Ok(match replay(remembered, &hash)? {
            Some(answer) => Err(replayed(&answer)),
            None => Ok(Self {
                key: Some(key),
                hash,
            }),
        })
    }

    /// What to remember under the key, if the request carried one: this answer.
    pub(super) fn remember(
        self,
        status: StatusCode,
        body: &Value,
    ) -> Option<(String, IdempotentAnswer)> {
        self.key.map(|k| {
            (
                k,
                IdempotentAnswer {
                    request_hash: self.hash,
                    status: status.as_u16(),
                    body: body.to_string(),
                },
            )
        })
    }
}

// === reading a request ===

/// Parses a JSON body strictly (the raw types refuse unknown fields); the 400 names the field at fault. `null` is
/// refused wherever it appears (no field of the API is nullable: an absent field is left out), so `"id": null`
/// is not taken for a missing `id`.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let bad = |m: String| AdminError::BadRequest(format!("invalid request body: {m}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if let Some(path) = first_null(&value, String::new()) {
        return Err(bad(format!("`{path}` must not be null")));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = without_type_names(&e.into_inner().to_string());
        if path == "." {
            bad(message)
        } else {
            bad(format!("`{path}`: {message}"))
        }
    })
}

/// The path of the first `null` in `value` (`a.b[2].c`), if any.
fn first_null(value: &Value, at: String) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::Null => Some(at),
        Value::Object(map) => map.iter().find_map(|(k, v)| first_null(v, join(k))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

/// serde's message with the names of our Rust types (`expected struct RawOAuth`) replaced by what the client
/// must send: messages name fields and JSON shapes, never an implementation type.
pub(super) fn without_type_names(message: &str) -> String {
    const SHAPES: [(&str, &str); 7] = [
        ("expected internally tagged enum ", "expected an object"),
        ("expected adjacently tagged enum ", "expected an object"),
        ("expected tuple struct ", "expected an array"),
        ("expected unit struct ", "expected null"),
        ("expected struct ", "expected an object"),
        ("expected enum ", "expected one of the documented values"),
        ("any variant of untagged enum ", "any documented form"),
    ];
    let mut out = message.to_owned();
    for (pattern, shape) in SHAPES {
        while let Some(at) = out.find(pattern) {
            let rest = &out[at + pattern.len()..];
            let name = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            out.replace_range(at..at + pattern.len() + name, shape);
        }
    }
    out
}

/// One of our own values as JSON.
pub(super) fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Internal::Serialize(e.to_string()).into())
}

/// A stored object's raw value.
///
/// # Errors
/// [`Internal::Corrupt`] when its body does not fit the raw type.
pub(super) fn raw_of<R: Resource>(o: &StoredObject) -> Result<R::Raw> {
    serde_json::from_value(o.body.clone())
        .map_err(|e| AdminError::corrupt(&format!("{}/{}", o.kind.as_str(), o.id), &e.to_string()))
}

/// Unix seconds.
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `N` bytes from the system's random number generator.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Internal::Randomness)?;
    Ok(bytes)
}

/// A generated id: `prefix-` and 48 random bits in hex.
pub(super) fn random_id(prefix: &str) -> Result<String> {
    let hex: String = random_bytes::<6>()?
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    Ok(format!("{prefix}-{hex}"))
}

/// What `If-Match` accepts (RFC 9110 §13.1.1): `*` (any existing version) or a list of versions, each `"N"`,
/// `W/"N"` or a bare `N` (the version an `ETag` names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IfMatch {
    /// `*`: the object must exist, whatever its version.
    Any,
    /// The object must be at one of these versions.
    Versions(Vec<u64>),
}

/// `If-Match` as an [`IfMatch`]; `None` without the header.
///
/// # Errors
/// 400 naming `If-Match` when present but neither `*` nor a comma-separated list of versions.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<IfMatch>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let refused =
        || AdminError::BadRequest("If-Match must be * or versions such as \"3\", \"4\"".into());
    let s = v.to_str().map_err(|_| refused())?.trim();
    if s == "*" {
        return Ok(Some(IfMatch::Any));
    }
    let versions = s
        .split(',')
        .map(|tag| {
            tag.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse::<u64>()
                .map_err(|_| refused())
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok(Some(IfMatch::Versions(versions)))
}

/// What a change expects of the stored object it replaces or deletes: the version read when `If-Match` is absent,
/// `*` or lists it (so a concurrent change in another replica still fails the commit), else a version `If-Match`
/// names (which does not hold: 412).
pub(super) fn expect_version(if_match: Option<IfMatch>, current: &StoredObject) -> Expect {
    match if_match {
        None | Some(IfMatch::Any) => Expect::Version(current.version),
        Some(IfMatch::Versions(v)) if v.contains(&current.version) => {
            Expect::Version(current.version)
        }
        Some(IfMatch::Versions(v)) => Expect::Version(v.first().copied().unwrap_or(0)),
    }
}

/// The `Idempotency-Key` header, if any.
///
/// # Errors
/// 400 unless it is 1-128 visible characters.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    key.to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .map(Some)
        .ok_or_else(|| {
            AdminError::BadRequest("Idempotency-Key must be 1-128 visible characters".into())
        })
}

/// Where the answer to `key`, sent by `actor` to `route`, is remembered. Actors and routes hold no newline, so
/// two different triples never make the same key.
pub(super) fn scoped_key(actor: &str, route: &str, key: &str) -> String {
    format!("{actor}\n{route}\n{key}")
}

/// Whether a request with keyed hash `hash` replays the answer `remembered` under its key: the same request gets
/// the same answer again, a first request goes ahead (`None`).
///
/// # Errors
/// 422 when the key was used for a different request.
pub(super) fn replay(
    remembered: Option<IdempotentAnswer>,
    hash: &str,
) -> Result<Option<IdempotentAnswer>> {
    match remembered {
        Some(answer) if answer.request_hash == hash => Ok(Some(answer)),
        Some(_) => Err(AdminError::IdempotencyMismatch),
        None => Ok(None),
    }
}

/// Refuses a new value for an immutable field: `given` when it differs from `current`.
pub(super) fn unchanged<T: PartialEq + ?Sized>(
    field: &'static str,
    given: Option<&T>,
    current: Option<&T>,
) -> Result<()> {
    match given {
        Some(new) if Some(new) != current => Err(AdminError::Immutable(field)),
        _ => Ok(()),
    }
}

/// One field refused the way validation refuses it (422 with its path).
pub(super) fn invalid(path: &str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid(vec![ValidationError {
        path: path.into(),
        line: None,
        message: message.into(),
    }])
}

/// The admin API's SSRF rules for an upstream URL given in `field`, its host name resolved with the API's
/// resolver. Runs before the write pipeline: resolving waits on the network, the pipeline holds the write lock.
pub(super) async fn check_upstream(
    api: &AdminApi,
    url: Option<&String>,
    field: &str,
) -> Result<()> {
    let Some(url) = url else { return Ok(()) };
    let allow = api.snapshot().settings.upstream_allow_hosts.clone();
    crate::ssrf::check_upstream_resolved(url, &allow, &api.inner.resolver)
        .await
        .map_err(|message| invalid(field, message))
}

/// 409: the routing file declares the object.
pub(super) fn file_managed(kind: Kind, id: &str) -> AdminError {
    AdminError::FileManaged {
        kind: kind.as_str(),
        id: id.into(),
    }
}

/// 409: the id is taken.
pub(super) fn exists(kind: Kind, id: &str) -> AdminError {
    AdminError::Exists {
        kind: kind.as_str(),
        id: id.into(),
    }
}

/// 404: no such object.
pub(super) fn not_found(kind: Kind, id: &str) -> AdminError {
    AdminError::NotFound {
        kind: kind.as_str(),
        id: id.into(),
    }
}

// === answering ===

/// `view` with who manages it: `managed_by` and `version`.
pub(super) fn stamp(mut view: Value, managed: Managed) -> Value {
    view["managed_by"] = json!(managed.by());
    view["version"] = json!(managed.version());
    view
}

/// `R`'s view of `raw`, stamped.
pub(super) fn view_of<R: Resource>(api: &AdminApi, raw: &R::Raw, managed: Managed) -> Value {
    stamp(R::view(api, raw), managed)
}

/// A JSON answer, with `ETag: "N"` for a stored object.
pub(super) fn answer(status: StatusCode, body: Value, managed: Managed) -> Response {
    with_etag(status, body, managed.version())
}

/// An answer showing `raw`, of kind `R`, as stored at `version`.
pub(super) fn answer_stored<R: Resource>(
    api: &AdminApi,
    status: StatusCode,
    raw: &R::Raw,
    version: u64,
) -> Response {
    let managed = Managed::Api(version);
    answer(status, view_of::<R>(api, raw, managed), managed)
}

fn with_etag(status: StatusCode, body: Value, version: Option<u64>) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Some(v) = version
        && let Ok(h) = HeaderValue::from_str(&format!("\"{v}\""))
    {
        resp.headers_mut().insert(header::ETAG, h);
    }
    resp
}

fn replayed(answer: &IdempotentAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let version = body.get("version").and_then(Value::as_u64);
    with_etag(status, body, version)
}

// === list, get, create, change, upsert, delete ===

/// `GET` a collection: the routing file's objects and the stored ones, sorted by id, paged and searched as
/// [`PageQuery`] says.
pub(super) async fn list<R: Resource>(
    State(api): State<AdminApi>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    list_of::<R>(&api, query).await
}

/// [`list`] for a known kind.
pub(super) async fn list_of<R: Resource>(
    api: &AdminApi,
    query: Option<String>,
) -> Result<Response> {
    // The query is checked before any read: bad input costs no I/O.
    let page = PageQuery::parse(query.as_deref())?;
    api.blocking(move |api| list_blocking::<R>(api, &page))
        .await
}

fn list_blocking<R: Resource>(api: &AdminApi, page: &PageQuery) -> Result<Response> {
    let file = api.file()?.raw;
    let mut out: Vec<(String, Value)> = R::file(&file)
        .iter()
        .map(|r| (R::id(r).into_owned(), view_of::<R>(api, r, Managed::File)))
        .collect();
    for o in api.stored()?.iter().filter(|o| o.kind == R::KIND) {
        let view = view_of::<R>(api, &raw_of::<R>(o)?, Managed::Api(o.version));
        out.push((o.id.clone(), view));
    }
    page.cut(api, R::KIND.as_str(), out)
}

/// `GET` one object, the file's or the store's.
pub(super) async fn get<R: Resource>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Result<Response> {
    get_of::<R>(&api, &id).await
}

/// [`get`] for a known kind.
pub(super) async fn get_of<R: Resource>(api: &AdminApi, id: &str) -> Result<Response> {
    let (raw, managed) = find::<R>(api, id).await?;
    Ok(answer(
        StatusCode::OK,
        view_of::<R>(api, &raw, managed),
        managed,
    ))
}

/// The object `id` of kind `R` as a read finds it: the file's first; the store is read only when the file does not
/// declare it (so file-managed objects stay readable while the store is down).
///
/// # Errors
/// 404 when neither has it.
pub(super) async fn find<R: Resource>(api: &AdminApi, id: &str) -> Result<(R::Raw, Managed)> {
    let id = id.to_owned();
    api.blocking(move |api| find_blocking::<R>(api, &id)).await
}

fn find_blocking<R: Resource>(api: &AdminApi, id: &str) -> Result<(R::Raw, Managed)> {
    let file = api.file()?.raw;
    if let Some(raw) = R::file(&file).iter().find(|r| R::id(r) == id) {
        return Ok((raw.clone(), Managed::File));
    }
    let stored = api.stored()?;
    let o = stored
        .iter()
        .find(|o| o.kind == R::KIND && o.id == id)
        .ok_or_else(|| not_found(R::KIND, id))?;
    Ok((raw_of::<R>(o)?, Managed::Api(o.version)))
}

/// Creates the object `id`: refused where [`Resource::check_free`] says so; `build` then makes it (sealing a value
/// waits until the id is known to be free). Answers 201 with its view at version 1, remembered under the key.
pub(super) async fn create<R: Resource>(
    api: &AdminApi,
    idempotency: Idempotency,
    id: String,
    build: impl FnOnce(&AdminApi) -> Result<R::Raw> + Send + 'static,
) -> Result<Response> {
    let view = api
        .write(move |api, cur| {
            R::check_free(cur, &id)?;
            let raw = build(api)?;
            let view = view_of::<R>(api, &raw, Managed::Api(1));
            let plan = Plan::create(R::KIND, &id, to_value(&raw)?)
                .remembering(idempotency.remember(StatusCode::CREATED, &view));
            Ok((plan, view))
        })
        .await?;
    Ok(answer(StatusCode::CREATED, view, Managed::Api(1)))
}

/// Changes the stored object `id` in place: refused when the file declares it, 404 when absent. `edit` changes its
/// raw value, may add cascaded writes to the plan, and returns what the answer needs; the update itself leads the
/// plan and carries `If-Match` (parsed by the caller, judged here, after `edit`). Returns the new raw value, its
/// version and what `edit` returned.
pub(super) async fn change<R: Resource, T: Send + 'static>(
    api: &AdminApi,
    id: String,
    if_match: Result<Option<IfMatch>>,
    edit: impl FnOnce(&AdminApi, Current<'_>, &mut R::Raw, &mut Plan) -> Result<T> + Send + 'static,
) -> Result<(R::Raw, u64, T)> {
    api.write(move |api, cur| {
        let current = cur.for_change::<R>(&id)?;
        let mut raw = raw_of::<R>(current)?;
        let mut cascaded = Plan::default();
        let out = edit(api, cur, &mut raw, &mut cascaded)?;
        let update = Plan::update(current, expect_version(if_match?, current), to_value(&raw)?);
        Ok((update.then(cascaded), (raw, current.version + 1, out)))
    })
    .await
}

/// Creates (201) or replaces (200, honouring `If-Match`) the stored object `id`; refused when the file declares
/// it. Returns the status and the new version.
pub(super) async fn upsert<R: Resource>(
    api: &AdminApi,
    id: String,
    raw: &R::Raw,
    if_match: Result<Option<IfMatch>>,
) -> Result<(StatusCode, u64)> {
    let value = to_value(raw)?;
    api.write(move |_, cur| {
        Ok(match cur.for_upsert::<R>(&id)? {
            Some(c) => (
                Plan::update(c, expect_version(if_match?, c), value),
                (StatusCode::OK, c.version + 1),
            ),
            // RFC 9110: any `If-Match` fails when there is nothing to match.
            None if if_match?.is_some() => return Err(AdminError::Precondition),
            None => (Plan::create(R::KIND, &id, value), (StatusCode::CREATED, 1)),
        })
    })
    .await
}

/// `DELETE` one stored object, and what goes with it ([`Resource::cascade`]), in one audited commit. Refused
/// (409 `in_use`) while something uses it ([`Resource::used_by`]), unless `?cascade=true` asks to withdraw those
/// uses in the same commit.
pub(super) async fn delete<R: Resource>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let cascade = cascade_param(query.as_deref())?;
    delete_of::<R>(&api, id, if_match(&headers), cascade).await
}

/// [`delete`] for a known kind and id.
pub(super) async fn delete_of<R: Resource>(
    api: &AdminApi,
    id: String,
    if_match: Result<Option<IfMatch>>,
    cascade: bool,
) -> Result<Response> {
    api.write(move |_, cur| {
        let current = cur.for_change::<R>(&id)?;
        let mut plan = Plan::delete(current, expect_version(if_match?, current));
        if let Some(users) = R::used_by(cur, &id).filter(|u| !u.ids.is_empty()) {
            // The routing file's authorizations are not withdrawn: validation then refuses the delete (422).
            let withdrawn = cascade && R::withdraw_uses(cur, &id, &mut plan);
            if !withdrawn {
                return Err(users.refusal(R::KIND.as_str(), &id, cascade_helps::<R>(cur, &id)));
            }
        }
        R::cascade(cur, &id, &mut plan);
        Ok((plan, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether a cascade can withdraw the uses of `id` (tried on a scratch plan).
fn cascade_helps<R: Resource>(cur: Current<'_>, id: &str) -> bool {
    R::withdraw_uses(cur, id, &mut Plan::default())
}

#[cfg(test)]
mod tests;
