//! The admin REST API under `/admin/v1` (JSON, the admin token or an operator's token, checked against the
//! route's role before any work): agents, credentials, LLM, external and enterprise
//! nodes, client applications, the directory, and the authorizations between them. Reads merge the routing file's
//! objects (`managed_by: "file"`) with the store's (`managed_by: "api"`, with a `version` and an `ETag`). Every
//! write goes through one pipeline (`AdminApi::write`, in `write`): under the write lock, read the routing file and
//! the store once, let the handler plan the change from them, apply it in memory, validate the whole topology (the
//! file and the store together) with the same `validate()` the file uses, and only if it is valid commit it — audit
//! record first — then trigger a reload so the proxy applies it. Objects declared in the routing file are
//! file-managed and refused. No response ever carries a credential value, sealed or not: credentials show a keyed
//! fingerprint. Defaults (derived audience, `agent.access`, `client_secret`) come from
//! [`idguard_config::defaults`], as validation's do.
//!
//! # Layout
//! - `core`: what every handler shares: request parsing, `If-Match` and `Idempotency-Key`, views with
//!   `managed_by` and an `ETag`, and list, get, create, change and delete written once over the `Resource` trait.
//! - `write`: the write pipeline and its pure decisions: preconditions, quotas, audit records.
//! - `agents`, `credentials`, `nodes` (LLM and external), `enterprise`, `clients`, `directory` (users, groups,
//!   organizations): one module per resource family.
//! - `principals`: client secrets and public keys, shared by agents and client applications.
//! - `authorizations`: outbound and inbound authorizations, and the agent permission.
//! - `audit`: the audit log, read back newest first from the store's shared copy.
//! - `store`: recovering from a store that lost its data or was replaced (reseed, accept).
//! - `access`: who is calling (the admin token or an operator token) and whether their role allows the route.
//! - `operators`: operators and their tokens.
//! - `usage`: `GET /admin/v1/usage`, the quotas in use ([`crate::usage`]).
//! - `topology`: an agent's diagram. `openapi`: the OpenAPI description (`openapi.json`).
//! - `paging`: cursor paging, search and the stable order every list answers with.
//! - `usage_graph`: who uses what ("used by"), for refusing deletes of objects in use and for the diagram.

use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use idguard_config::hashes::KeyedHasher;
use idguard_config::store::{Store, StoredObject};
use idguard_config::{Clock, Loader, Resolver, Snapshot, SnapshotRx};
use tokio::sync::Notify;

use self::agents::Agents;
use self::clients::Clients;
use crate::auth::AdminToken;
use crate::error::{AdminError, Internal, log_internal_errors};

mod access;
mod agents;
mod audit;
mod authorizations;
mod clients;
mod core;
mod credentials;
mod directory;
mod enterprise;
mod nodes;
mod openapi;
mod operators;
mod paging;
mod principals;
mod store;
mod topology;
mod usage;
mod usage_graph;
mod write;

pub(crate) use access::InProcessCaller;
pub use access::{Caller, Role, required_role};
pub(crate) use write::redact;

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// The admin API's state.
#[derive(Clone)]
pub struct AdminApi {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    loader: Loader,
    snapshots: SnapshotRx,
    reload: Arc<Notify>,
    token: AdminToken,
    // Serializes validate-then-commit so two concurrent changes cannot each be valid alone and invalid together.
    write_lock: Mutex<()>,
    hasher: KeyedHasher,
    // Resolves upstream host names for the SSRF rules (the system resolver; a manual one in tests).
    resolver: Resolver,
    // The store version the data plane serves (set once by the binary): a write answers only once it is in force.
    applied: std::sync::OnceLock<tokio::sync::watch::Receiver<u64>>,
    // Expiry of operator tokens is read on it (a manual clock in tests).
    clock: Clock,
    // Operator tokens as last read from the store, with the store version they were read at.
    operators: RwLock<Option<Arc<access::OperatorIndex>>>,
}

// === impl AdminApi ===

impl AdminApi {
    /// The API over `store`, validating with `loader`, reading the topology in force from `snapshots`,
    /// notifying `reload` after every commit, resolving upstream host names with `resolver`, and judging operator
    /// tokens' expiry on `clock`.
    // One call site (`idguard::Server`), which names every part.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        loader: Loader,
        snapshots: SnapshotRx,
        reload: Arc<Notify>,
        token: AdminToken,
        fingerprint_key: [u8; 32],
        resolver: Resolver,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                loader,
                snapshots,
                reload,
                token,
                write_lock: Mutex::new(()),
                hasher: KeyedHasher::new(&fingerprint_key),
                resolver,
                applied: std::sync::OnceLock::new(),
                clock,
                operators: RwLock::new(None),
            }),
        }
    }

    /// Makes every write wait (bounded) until `applied` — the store version the data plane serves — reaches the
    /// version it committed, so the next request through this replica's proxy sees it. Without it a write waits for
    /// the snapshot only. Set once; later calls are ignored.
    pub fn wait_for_data_plane(&self, applied: tokio::sync::watch::Receiver<u64>) {
        let _ = self.inner.applied.set(applied);
    }

    /// The `/admin/v1` routes, behind the admin token or an operator token with the route's role (except the API's
    /// description).
    pub fn router(&self) -> Router {
        Router::new()
            .merge(agents::routes())
            .merge(authorizations::routes())
            .merge(topology::routes())
            .merge(principals::routes::<Agents>("/admin/v1/agents"))
            .merge(clients::routes())
            .merge(principals::routes::<Clients>("/admin/v1/clients"))
            .merge(directory::routes())
            .merge(enterprise::routes())
            .merge(credentials::routes())
            .merge(nodes::routes())
            .merge(audit::routes())
            .merge(store::routes())
            .merge(operators::routes())
            .merge(usage::routes())
            .layer(axum::middleware::map_response(no_store))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                access::authorize,
            ))
            // The description of the API is not a secret; tools fetch it without the token.
            .route("/admin/v1/openapi.json", get(openapi::document))
            .layer(axum::middleware::from_fn(log_internal_errors))
            .with_state(self.clone())
    }

    /// Runs one `/admin/v1` request in-process as `caller` (the console's signed-in operator): the same router,
    /// role table, handlers and audit attribution as over HTTP, without a bearer token. `if_match` is sent as
    /// `If-Match: "N"` (the change then applies only to version N, else 412). Answers the status and the JSON body
    /// (`null` when the body is empty or not JSON).
    pub(crate) async fn call_as(
        &self,
        caller: &Caller,
        method: axum::http::Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<u64>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        use tower::ServiceExt as _;
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .header("x-request-id", caller.request_id.as_str());
        if let Some(version) = if_match {
            req = req.header(axum::http::header::IF_MATCH, format!("\"{version}\""));
        }
        if let Some(h) = req.headers_mut() {
            h.remove(axum::http::header::AUTHORIZATION);
        }
        let Ok(mut req) = req.body(axum::body::Body::from(bytes)) else {
            return (axum::http::StatusCode::BAD_REQUEST, serde_json::Value::Null);
        };
        req.extensions_mut().insert(InProcessCaller(caller.clone()));
        let Ok(resp) = self.router().oneshot(req).await;
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4 * 1024 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// The topology in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshots.borrow().clone()
    }

    /// The routing file's objects, read and parsed once for this request.
    ///
    /// # Errors
    /// [`AdminError::RoutingFileUnusable`] (503, retry) when the file cannot be read or parsed — mid-save, or
    /// broken until its author fixes it; the cause is logged once with the request, and not sent to the client.
    fn file(&self) -> Result<idguard_config::reload::RoutingFile, AdminError> {
        self.inner
            .loader
            .read_file()
            .map_err(|e| AdminError::RoutingFileUnusable(e.to_string()))
    }

    /// Runs `read` (routing-file and store reads, which block on I/O) on the blocking pool: a slow or hung store
    /// then holds a blocking thread for as long as the store's timeouts allow, never a worker of the runtime
    /// serving the admin listener (so `/readyz` and `/metrics` keep answering).
    ///
    /// # Errors
    /// Whatever `read` returns; [`Internal::Task`] when it panicked.
    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&AdminApi) -> Result<T, AdminError> + Send + 'static,
    ) -> Result<T, AdminError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || read(&this))
            .await
            .map_err(|e| Internal::Task(e.to_string()))?
    }

    /// The stored (API-managed) objects.
    fn stored(&self) -> Result<Vec<StoredObject>, AdminError> {
        self.inner
            .store
            .load()
            .map(|(_, o)| o)
            .map_err(write::store_error)
    }

    /// Seals a credential value for `id`.
    ///
    /// # Errors
    /// [`AdminError::Sealed`] without a master key.
    fn seal(&self, id: &str, value: &str) -> Result<String, AdminError> {
        let keys = self.inner.loader.master_keys().ok_or(AdminError::Sealed)?;
        keys.seal(id, value.as_bytes())
            .map_err(|_| AdminError::Sealed)
    }

    /// A keyed fingerprint of a secret value: stable, and useless for recovering the value.
    fn fingerprint(&self, value: &str) -> String {
        self.inner.hasher.fingerprint(value.as_bytes())
    }

    /// The keyed hash a client secret is stored as ([`KeyedHasher::client_secret_hex`]).
    fn secret_hash(&self, secret: &str) -> String {
        self.inner.hasher.client_secret_hex(secret)
    }
}

/// Every `/admin/v1` answer is `Cache-Control: no-store` (and `Pragma: no-cache` for HTTP/1.0 caches): some carry
/// a secret shown once (a client secret, an operator token) and the rest describe the topology, so no proxy or
/// browser cache may keep any of them. A handler's own `Cache-Control` is kept.
async fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = resp.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::PRAGMA)
        .or_insert(HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests;
