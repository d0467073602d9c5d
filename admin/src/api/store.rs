//! Recovering from a shared store that is not the one the replicas served (see `docs/scale.md`, "When Redis loses
//! its data"): `POST /admin/v1/store/reseed` writes this replica's last-known-good objects into the empty store
//! under the remembered identity; `POST /admin/v1/store/accept` adopts the store as it is under a new identity.
//! Both are audited by the store and answer `{"version": N}`, the topology version every replica then loads.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use idguard_config::store::Recovery;
use serde_json::json;

use super::AdminApi;
use super::access::Caller;
use super::write::store_error;
use crate::error::AdminError;

/// The store recovery routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/admin/v1/store/reseed", post(reseed))
        .route("/admin/v1/store/accept", post(accept))
}

async fn reseed(
    State(api): State<AdminApi>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, AdminError> {
    recover(&api, Recovery::Reseed, &caller)
}

async fn accept(
    State(api): State<AdminApi>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, AdminError> {
    recover(&api, Recovery::Accept, &caller)
}

/// Recovers as `caller` (owners only: the route table), audited under their name.
fn recover(api: &AdminApi, recovery: Recovery, caller: &Caller) -> Result<Response, AdminError> {
    // Under the write lock, so no ordinary write interleaves with the recovery.
    let _guard = api
        .inner
        .write_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let version = api
        .inner
        .store
        .recover(recovery, &caller.actor)
        .map_err(store_error)?;
    api.inner.reload.notify_one();
    Ok(Json(json!({ "version": version })).into_response())
}
