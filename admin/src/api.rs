//! The admin REST API under `/admin/v1` (JSON, admin token): agents, credentials, LLM and external nodes,
//! outbound authorizations. Every write goes through one pipeline ([`AdminApi::apply`]): under the write lock,
//! load the stored objects, apply the change in memory, build the whole topology (file + store) with the same
//! `validate()` the file uses, and only if it is valid commit it — audit record first — then trigger a reload so
//! the proxy applies it. Objects declared in the routing file are file-managed and refused.
//!
//! # Layout
//! - [`resources`]: the handlers, one group per resource.

pub mod resources;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{delete, get, put};
use idguard_config::hashes::KeyedHasher;
use idguard_config::store::{
    AuditRecord, Expect, IdempotentAnswer, Kind, Store, StoreError, StoredObject, Write,
};
use idguard_config::{ConfigError, Loader, Snapshot, SnapshotRx};
use tokio::sync::Notify;

use crate::auth::{AdminToken, require_admin};
use crate::error::AdminError;

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
}

/// One planned change: the writes, their audit records, and the answer to remember for an `Idempotency-Key`.
pub struct Plan {
    /// The writes, applied atomically.
    pub writes: Vec<Write>,
    /// Their audit records (redacted).
    pub audit: Vec<AuditRecord>,
    /// `(key, answer)` when the request carried an `Idempotency-Key`.
    pub idempotency: Option<(String, IdempotentAnswer)>,
}

// === impl AdminApi ===

impl AdminApi {
    /// The API over `store`, validating with `loader`, reading the topology in force from `snapshots`, and
    /// notifying `reload` after every commit.
    pub fn new(
        store: Arc<dyn Store>,
        loader: Loader,
        snapshots: SnapshotRx,
        reload: Arc<Notify>,
        token: AdminToken,
        fingerprint_key: [u8; 32],
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
            }),
        }
    }

    /// The `/admin/v1` routes, behind the admin token.
    pub fn router(&self) -> Router {
        use resources as r;
        Router::new()
            .route(
                "/admin/v1/agents",
                get(r::list_agents).post(r::create_agent),
            )
            .route(
                "/admin/v1/agents/{id}",
                get(r::get_agent)
                    .patch(r::patch_agent)
                    .delete(r::delete_agent),
            )
            .route(
                "/admin/v1/agents/{id}/outbound/{node}",
                put(r::put_outbound).delete(r::delete_outbound),
            )
            .route("/admin/v1/agents/{id}/topology", get(r::agent_topology))
            .route("/admin/v1/agents/{id}/permission", put(r::put_permission))
            .route(
                "/admin/v1/agents/{id}/secrets",
                get(r::list_secrets).post(r::create_secret),
            )
            .route(
                "/admin/v1/agents/{id}/secrets/{secret}",
                delete(r::delete_secret),
            )
            .route(
                "/admin/v1/agents/{id}/keys",
                get(r::list_keys).post(r::create_key),
            )
            .route("/admin/v1/agents/{id}/keys/{key}", delete(r::delete_key))
            .route(
                "/admin/v1/agents/{id}/inbound/{client}",
                put(r::put_inbound).delete(r::delete_inbound),
            )
            .route(
                "/admin/v1/clients",
                get(r::list_clients).post(r::create_client),
            )
            .route(
                "/admin/v1/clients/{id}",
                get(r::get_client)
                    .patch(r::patch_client)
                    .delete(r::delete_client),
            )
            .route(
                "/admin/v1/clients/{id}/secrets",
                get(r::list_client_secrets).post(r::create_client_secret),
            )
            .route(
                "/admin/v1/clients/{id}/secrets/{secret}",
                delete(r::delete_client_secret),
            )
            .route(
                "/admin/v1/clients/{id}/keys",
                get(r::list_client_keys).post(r::create_client_key),
            )
            .route(
                "/admin/v1/clients/{id}/keys/{key}",
                delete(r::delete_client_key),
            )
            .route(
                "/admin/v1/{directory}",
                get(r::list_directory).post(r::create_directory),
            )
            .route(
                "/admin/v1/{directory}/{id}",
                get(r::get_directory)
                    .put(r::put_directory)
                    .delete(r::delete_directory),
            )
            .route(
                "/admin/v1/enterprise",
                get(r::list_enterprise).post(r::create_enterprise),
            )
            .route(
                "/admin/v1/enterprise/{id}",
                get(r::get_enterprise)
                    .patch(r::patch_enterprise)
                    .delete(r::delete_enterprise),
            )
            .route(
                "/admin/v1/credentials",
                get(r::list_credentials).post(r::create_credential),
            )
            .route(
                "/admin/v1/credentials/{id}",
                get(r::get_credential).delete(r::delete_credential),
            )
            .route("/admin/v1/llm", get(r::list_llm).post(r::create_llm))
            .route("/admin/v1/llm/{id}", get(r::get_llm).delete(r::delete_llm))
            .route(
                "/admin/v1/external",
                get(r::list_external).post(r::create_external),
            )
            .route(
                "/admin/v1/external/{id}",
                get(r::get_external).delete(r::delete_external),
            )
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(axum::middleware::from_fn_with_state(
                self.inner.token.clone(),
                require_admin,
            ))
            // The description of the API is not a secret; tools fetch it without the token.
            .route("/admin/v1/openapi.json", get(r::openapi))
            .with_state(self.clone())
    }

    /// The topology in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshots.borrow().clone()
    }

    /// The stored (API-managed) objects.
    ///
    /// # Errors
    /// [`AdminError::StoreUnavailable`].
    pub fn stored(&self) -> Result<Vec<StoredObject>, AdminError> {
        self.inner.store.load().map(|(_, o)| o).map_err(store_error)
    }

    /// Whether the routing file declares this object.
    ///
    /// # Errors
    /// [`AdminError::StoreUnavailable`] when the file cannot be read.
    pub fn file_managed(&self, kind: Kind, id: &str) -> Result<bool, AdminError> {
        let raw = self.inner.loader.file_raw().map_err(|e| {
            tracing::error!(reason = "config_unreadable", "{e}");
            AdminError::StoreUnavailable
        })?;
        Ok(match kind {
            Kind::Agent => raw.agents.iter().any(|a| a.id == id),
            Kind::Credential => raw.credentials.iter().any(|c| c.id == id),
            Kind::Llm => raw.llm.iter().any(|n| n.id == id),
            Kind::External => raw.external.iter().any(|n| n.id == id),
            Kind::Enterprise => raw.enterprise.iter().any(|n| n.id == id),
            Kind::User => raw.users.iter().any(|u| u.id == id),
            Kind::Group => raw.groups.iter().any(|g| g.id == id),
            Kind::Organization => raw.organizations.iter().any(|o| o.id == id),
            Kind::Client => raw.clients.iter().any(|c| c.id == id),
            Kind::Inbound => raw
                .inbound
                .iter()
                .any(|e| format!("{}/{}", e.client, e.agent) == id),
            Kind::Outbound => raw
                .outbound
                .iter()
                .any(|e| format!("{}/{}", e.agent, e.node) == id),
        })
    }

    /// Seals a credential value for `id`.
    ///
    /// # Errors
    /// [`AdminError::Sealed`] without a master key.
    pub fn seal(&self, id: &str, value: &str) -> Result<String, AdminError> {
        let keys = self.inner.loader.master_keys().ok_or(AdminError::Sealed)?;
        keys.seal(id, value.as_bytes())
            .map_err(|_| AdminError::Sealed)
    }

    /// A keyed fingerprint of a secret value: stable, and useless for recovering the value.
    pub fn fingerprint(&self, value: &str) -> String {
        self.inner.hasher.fingerprint(value.as_bytes())
    }

    /// The keyed hash a client secret is stored as ([`KeyedHasher::client_secret_hex`]).
    pub fn secret_hash(&self, secret: &str) -> String {
        self.inner.hasher.client_secret_hex(secret)
    }

    /// The remembered answer for an `Idempotency-Key`, checked against this request's hash.
    ///
    /// # Errors
    /// [`AdminError::IdempotencyMismatch`] when the key was used for another request.
    pub fn replay(
        &self,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<IdempotentAnswer>, AdminError> {
        match self.inner.store.idempotent(key).map_err(store_error)? {
            Some(answer) if answer.request_hash == request_hash => Ok(Some(answer)),
            Some(_) => Err(AdminError::IdempotencyMismatch),
            None => Ok(None),
        }
    }

    /// Validates and commits a plan, then triggers a reload. Returns the new topology version.
    ///
    /// # Errors
    /// [`AdminError::Precondition`], [`AdminError::Invalid`] (nothing stored), [`AdminError::AuditUnavailable`]
    /// (nothing stored), [`AdminError::StoreUnavailable`].
    pub async fn apply(&self, plan: Plan) -> Result<u64, AdminError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_blocking(plan))
            .await
            .map_err(|e| {
                tracing::error!("admin write task failed: {e}");
                AdminError::StoreUnavailable
            })?
    }

    fn apply_blocking(&self, plan: Plan) -> Result<u64, AdminError> {
        let inner = &self.inner;
        let _guard = inner
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, mut objects) = inner.store.load().map_err(store_error)?;
        for w in &plan.writes {
            let at = objects
                .iter()
                .position(|o| o.kind == w.kind && o.id == w.id);
            let ok = w.expect.holds(at.map(|i| objects[i].version));
            if !ok {
                return Err(AdminError::Precondition);
            }
            match (&w.body, at) {
                (Some(body), Some(i)) => objects[i].body = body.clone(),
                (Some(body), None) => objects.push(StoredObject {
                    kind: w.kind,
                    id: w.id.clone(),
                    version: 1,
                    created_at: 0,
                    updated_at: 0,
                    body: body.clone(),
                }),
                (None, Some(i)) => {
                    objects.remove(i);
                }
                (None, None) => {}
            }
        }
        let candidate = match inner.loader.build_with(&objects, 0) {
            Ok(snapshot) => snapshot,
            Err(ConfigError::Invalid(errors)) => return Err(AdminError::Invalid(errors.0)),
            Err(e) => {
                tracing::error!(reason = "config_unreadable", "{e}");
                return Err(AdminError::StoreUnavailable);
            }
        };
        // Console quotas: checked on the whole candidate topology, only when this change creates that kind.
        let creates = |kind: Kind| {
            plan.writes
                .iter()
                .any(|w| w.kind == kind && w.expect == Expect::Absent)
        };
        let licenses = candidate.settings.m2m_licenses;
        // Agents, client applications and enterprise services each use one M2M application license.
        let in_use =
            (candidate.agents.len() + candidate.services.len() + candidate.clients.len()) as u64;
        let licensed = creates(Kind::Agent) || creates(Kind::Enterprise) || creates(Kind::Client);
        if licensed && in_use > licenses {
            return Err(AdminError::Quota(format!(
                "M2M application license quota exhausted: {licenses} of {licenses} in use"
            )));
        }
        let cap = candidate.settings.max_credentials;
        if creates(Kind::Credential) && candidate.credentials.len() as u64 > cap {
            return Err(AdminError::Quota(format!(
                "stored credential limit reached: {cap} of {cap} stored"
            )));
        }
        let idempotency = plan.idempotency.as_ref().map(|(k, a)| (k.as_str(), a));
        let version = inner
            .store
            .commit(&plan.writes, &plan.audit, idempotency)
            .map_err(store_error)?;
        inner.reload.notify_one();
        Ok(version)
    }
}

fn store_error(e: StoreError) -> AdminError {
    match e {
        StoreError::Precondition { .. } => AdminError::Precondition,
        StoreError::Audit(why) => {
            tracing::error!(reason = "audit_unavailable", "{why}");
            AdminError::AuditUnavailable
        }
        StoreError::Unavailable(why) => {
            tracing::error!(reason = "store_unavailable", "{why}");
            AdminError::StoreUnavailable
        }
    }
}

/// `If-Match: "N"` (or `N`) as a version.
///
/// # Errors
/// [`AdminError::BadRequest`] when present but not a version.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, AdminError> {
    match headers.get(axum::http::header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                AdminError::BadRequest("If-Match must be a version such as \"3\"".into())
            }),
    }
}
