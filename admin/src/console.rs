//! The web console at `/console/` on the admin listener: pages rendered by the server (askama templates under
//! `admin/templates/console/`), one small stylesheet and one small script of our own, both compiled into the
//! binary. No inline script or style anywhere, so the Content-Security-Policy forbids both.
//!
//! Operators sign in two ways. A directory user bound to an operator (`POST /admin/v1/operators {…, user}`) signs
//! in through idguard's own identity service: the console is its built-in public client
//! ([`idguard_config::identity::CONSOLE_CLIENT_ID`]), sends the browser to `/oauth2/authorize` with a fresh `state` and PKCE S256 challenge,
//! and redeems the returned code in-process ([`ConsoleCodes`]). The break-glass admin token signs in through a
//! POST form (never in a URL). `idguard demo` prints a one-time link instead.
//!
//! Every page acts as the signed-in operator through the admin API itself (`AdminApi::call_as`):
//! the same role table refuses a viewer's write, and the same audit records name the operator, with `auth`
//! `console_session` (or `console_admin_token`).
//!
//! # Layout
//! - `session`: server-side sessions (the cookie holds only a random id), pending sign-ins, one-time links.
//! - `signin`: the sign-in page, the directory-user flow and its callback, the admin-token form, sign-out.
//! - `csrf`: the token every form carries, checked in constant time on every POST.
//! - `headers`: the security headers on every console response.
//! - `pages`: the [`pages::Page`] extractor (who is signed in, and their CSRF token) and the pages themselves.
//! - `panels`: the node and edge panels the diagram opens (`nodes`, `edges`), and the directory, operators and
//!   audit pages (`directory`); their forms show the admin API's refusals beside the fields they name.
//! - `diagram`: an agent's diagram (server-drawn SVG and its text alternative); `diagram::layout` places it.
//! - `add`: the diagram's "+" and *Add node*: a node of a kind, existing or new, and its edge with scopes.
//! - `traffic`: per-edge requests and denials over five minutes, sampled from the proxy's counter.
//! - `error`: [`ConsoleError`] and its one mapping to a page.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use idguard_config::identity::ConsoleCodes;

use crate::api::AdminApi;

mod add;
mod csrf;
pub mod diagram;
mod error;
mod headers;
pub mod pages;
mod panels;
mod session;
mod signin;
pub mod traffic;

pub use error::ConsoleError;

/// The stylesheet, served at `/console/static/console.css`.
const CSS: &str = include_str!("../static/console.css");
/// The script, served at `/console/static/console.js`.
const JS: &str = include_str!("../static/console.js");

/// The console. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    api: AdminApi,
    codes: Arc<dyn ConsoleCodes>,
    /// Where browsers reach the admin listener (`http://127.0.0.1:9090`, no trailing slash); set once at start.
    base_url: std::sync::OnceLock<String>,
    sessions: session::Sessions,
    traffic: traffic::Traffic,
}

// === impl Console ===

impl Console {
    /// The console over `api`, redeeming sign-in codes with `codes` (the identity service, in-process).
    pub fn new(api: AdminApi, codes: Arc<dyn ConsoleCodes>) -> Self {
        Self {
            inner: Arc::new(Inner {
                api,
                codes,
                base_url: std::sync::OnceLock::new(),
                sessions: session::Sessions::default(),
                traffic: traffic::Traffic::default(),
            }),
        }
    }

    /// Sets where browsers reach the admin listener (`scheme://host:port`); `https` makes every cookie `Secure`.
    /// Set once; later calls are ignored.
    pub fn set_base_url(&self, base_url: &str) {
        let _ = self
            .inner
            .base_url
            .set(base_url.trim_end_matches('/').to_owned());
    }

    /// Where browsers reach the admin listener, once set.
    pub fn base_url(&self) -> Option<&str> {
        self.inner.base_url.get().map(String::as_str)
    }

    /// The console's one redirect URI, registered with the identity service for
    /// [`idguard_config::identity::CONSOLE_CLIENT_ID`].
    pub fn redirect_uri(&self) -> Option<String> {
        self.base_url().map(|b| format!("{b}/console/callback"))
    }

    /// Whether cookies carry `Secure` (the console is reached over https).
    fn secure(&self) -> bool {
        self.base_url().is_some_and(|b| b.starts_with("https://"))
    }

    /// A one-time sign-in link (a path, `/console/signin/once?t=…`): used once, within five minutes, it opens an
    /// owner session as the admin token would and lands on `landing` (a `/console/…` path). For `idguard demo`.
    ///
    /// # Errors
    /// [`ConsoleError::Unavailable`] without randomness, or for a landing outside the console.
    pub fn one_time_link(&self, landing: &str) -> Result<String, ConsoleError> {
        if !pages::is_console_path(landing) {
            return Err(ConsoleError::Unavailable);
        }
        let now = self.inner.api.clock().now();
        let token = self.inner.sessions.one_time(landing, now)?;
        Ok(format!("/console/signin/once?t={}", token.expose()))
    }

    /// Samples the proxy's request counter in `registry` for the diagram's edges until `stop` completes
    /// ([`traffic::Traffic::run`]); the binary runs it on the control plane's runtime.
    pub async fn watch_traffic(
        &self,
        registry: prometheus::Registry,
        stop: impl Future<Output = ()>,
    ) {
        self.inner.traffic.run(registry, stop).await;
    }

    /// The `/console` routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/console", get(pages::home))
            .route("/console/", get(pages::home))
            .route("/console/static/console.css", get(css))
            .route("/console/static/console.js", get(js))
            .route("/console/signin", get(signin::page))
            .route("/console/signin/directory", get(signin::directory))
            .route("/console/signin/token", post(signin::with_token))
            .route("/console/signin/once", get(signin::once))
            .route("/console/callback", get(signin::callback))
            .route("/console/signout", post(signin::sign_out))
            .route(
                "/console/agents",
                get(pages::agents).post(pages::register_agent),
            )
            .route("/console/agents/{id}", get(diagram::page))
            .route("/console/agents/{id}/add", get(add::page).post(add::submit))
            .route(
                "/console/agents/{id}/nodes/{kind}/{node}",
                get(panels::node),
            )
            .route(
                "/console/agents/{id}/nodes/{kind}/{node}/{action}",
                post(panels::node_action),
            )
            .route("/console/agents/{id}/edges/{dir}/{node}", get(panels::edge))
            .route(
                "/console/agents/{id}/edges/{dir}/{node}/{action}",
                post(panels::edge_action),
            )
            .route("/console/directory", get(panels::directory))
            .route("/console/operators", get(panels::operators))
            .route("/console/operators/{action}", post(panels::operator_action))
            .route("/console/audit", get(panels::audit))
            // Not a fallback: the console shares the admin listener, whose other 404s stay the API's.
            .route("/console/{*rest}", axum::routing::any(pages::not_found))
            .layer(axum::middleware::from_fn(headers::security_headers))
            .with_state(self.clone())
    }
}

async fn css() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        CSS,
    )
}

async fn js() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        JS,
    )
}
