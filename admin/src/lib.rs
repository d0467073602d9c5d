//! idguard's control plane: the admin listener's operational endpoints and the admin API over a durable store.
//!
//! # Layout
//! - [`router`]: the axum routes of the admin listener: `/metrics`, `/healthz`, `/readyz`, and `/admin/v1`.
//! - [`console`]: the web console at `/console/`: sign-in (directory users bound to an operator, through the
//!   identity service; the admin token), server-side sessions, CSRF, security headers, server-rendered pages.
//! - [`api`]: the admin REST API, one module per resource family; [`auth`]: the admin token; [`error`]: `AdminError`.
//! - [`ssrf`]: the stricter upstream rules for nodes created through the API, host names resolved and checked.
//! - [`store`]: the embedded (redb) store of API-managed objects, with its audit log.
//! - [`redis_store`]: the Redis store for several replicas, and the watcher that keeps a replica current.
//! - [`reseal`]: re-wrapping every stored credential under the newest master-key term (`idguard reseal`).
//! - [`usage`]: the console's quotas in use: `GET /admin/v1/usage`, gauges, warnings at 80 % and 100 %.
//! - [`tls`]: the admin listener over TLS (`[listeners.admin_tls]`), optional client certificates, reloaded live.
//! - [`run`]: serve an already-bound listener until the shutdown future completes ([`tls::serve`] over TLS).

use std::future::Future;
use std::sync::Arc;

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod redis_store;
pub mod reseal;
pub mod ssrf;
pub mod store;
pub mod tls;
pub mod usage;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use idguard_config::Readiness;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The registry every plane registered its metrics in.
    pub registry: Registry,
    /// The shared readiness flags.
    pub readiness: Arc<Readiness>,
    /// The admin API, when a store is configured.
    pub api: Option<api::AdminApi>,
    /// The web console (over the admin API).
    pub console: Option<console::Console>,
}

/// The admin listener's routes.
pub fn router(state: AdminState) -> Router {
    let api = state.api.clone();
    let console = state.console.clone();
    let ops = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let ops = match api {
        Some(api) => ops.merge(api.router()),
        None => ops,
    };
    match console {
        Some(console) => ops.merge(console.router()),
        None => ops,
    }
}

/// Serves the admin routes on `listener` until `shutdown` completes.
///
/// # Errors
/// The I/O error that stopped the server.
pub async fn run(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            buf,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("metrics encoding failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reason.as_str()),
        ),
    }
}
