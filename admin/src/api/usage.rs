//! `GET /admin/v1/usage`: what the topology in force uses of the console's quotas ([`crate::usage`]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::AdminApi;
use crate::usage::Usage;

pub(super) fn routes() -> Router<AdminApi> {
    Router::new().route("/admin/v1/usage", get(usage))
}

/// M2M application licenses and stored credentials, used and total, from the snapshot in force.
async fn usage(State(api): State<AdminApi>) -> Response {
    Json(Usage::of(&api.snapshot()).to_json()).into_response()
}
