//! Signing in and out.
//!
//! - `GET /console/signin`: the page, with both ways in; its admin-token form carries a double-submit token.
//! - `GET /console/signin/directory`: records a pending sign-in (`state` → PKCE verifier, server-side), puts the
//!   `state` in a short-lived cookie that ties the callback to this browser, and sends the browser to the
//!   identity service's `/oauth2/authorize` as the built-in console client.
//! - `GET /console/callback?code&state`: takes the pending sign-in once, redeems the code in-process with its
//!   verifier, and opens a session when the user is bound to an operator (else a 403 page).
//! - `POST /console/signin/token`: the break-glass admin token, in a form body (never a URL).
//! - `GET /console/signin/once?t=`: a one-time link (`idguard demo`), used once.
//! - `POST /console/signout`: deletes the session server-side and clears the cookie.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::identity::{CONSOLE_CLIENT_ID, ConsoleCodeError};
use idguard_config::secret::Secret;

use super::pages::{MessagePage, PageForm, Respond, SignInPage};
use super::session::{ABSOLUTE, PENDING_TTL, Principal, random_secret};
use super::{Console, ConsoleError, csrf};

/// The session cookie: only the random session id.
pub(super) const SESSION_COOKIE: &str = "idg_console";
/// The pending sign-in's `state`, tying the callback to the browser that started it.
const STATE_COOKIE: &str = "idg_console_state";
/// How long the sign-in form's double-submit token lasts (seconds).
const SIGNIN_FORM_TTL: u64 = 600;

/// `GET /console/signin`.
pub(super) async fn page(State(console): State<Console>) -> Result<Response, ConsoleError> {
    let form_token = random_secret()?;
    let directory =
        console.inner.api.snapshot().identity.is_some() && console.redirect_uri().is_some();
    let mut resp = SignInPage {
        csrf: form_token.expose().to_owned(),
        directory,
    }
    .respond(StatusCode::OK);
    set_cookie(
        &mut resp,
        &console,
        csrf::SIGNIN_COOKIE,
        form_token.expose(),
        "/console/signin",
        SIGNIN_FORM_TTL,
        "Strict",
    );
    Ok(resp)
}

/// `GET /console/signin/directory`: off to the identity service.
pub(super) async fn directory(State(console): State<Console>) -> Result<Response, ConsoleError> {
    let issuer = console
        .inner
        .api
        .snapshot()
        .identity
        .as_ref()
        .map(|i| i.issuer.clone())
        .ok_or(ConsoleError::SignIn(
            "Directory sign-in needs the identity service ([identity] in the routing file).",
        ))?;
    let redirect_uri = console.redirect_uri().ok_or(ConsoleError::Unavailable)?;
    let now = console.inner.api.clock().now();
    let (state, verifier) = console.inner.sessions.begin(now)?;
    let challenge = URL_SAFE_NO_PAD.encode(super::session::digest(verifier.expose()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", CONSOLE_CLIENT_ID)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("state", state.expose())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut resp = see_other(&format!("{issuer}/oauth2/authorize?{query}"));
    // Lax, not Strict: the callback arrives by a redirect from the identity service, which may be another site.
    set_cookie(
        &mut resp,
        &console,
        STATE_COOKIE,
        state.expose(),
        "/console/callback",
        PENDING_TTL,
        "Lax",
    );
    Ok(resp)
}

/// `GET /console/callback?code&state` (or `?error&state`).
pub(super) async fn callback(
    State(console): State<Console>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let q = fields(query.as_deref().unwrap_or_default().as_bytes())?;
    let state = q.get("state").ok_or(ConsoleError::SignIn(
        "The sign-in came back without its state.",
    ))?;
    if !csrf::matches(
        Some(state),
        csrf::cookie(&headers, STATE_COOKIE).unwrap_or_default(),
    ) {
        tracing::warn!(
            reason = "console_state_mismatch",
            "console sign-in callback in a browser that did not start it"
        );
        return Err(ConsoleError::SignIn(
            "This sign-in did not start in this browser. Start again from the sign-in page.",
        ));
    }
    let now = console.inner.api.clock().now();
    let pending = console
        .inner
        .sessions
        .finish(state, now)
        .ok_or(ConsoleError::SignIn(
            "This sign-in expired or was already used. Start again from the sign-in page.",
        ))?;
    if q.contains_key("error") {
        return Err(ConsoleError::SignIn(
            "The identity service did not sign you in.",
        ));
    }
    let code = q.get("code").ok_or(ConsoleError::SignIn(
        "The sign-in came back without a code.",
    ))?;
    let redirect_uri = console.redirect_uri().ok_or(ConsoleError::Unavailable)?;
    let user = console
        .inner
        .codes
        .redeem_console_code(Secret::new(code.clone()), redirect_uri, pending.verifier)
        .await
        .map_err(|e| match e {
            ConsoleCodeError::Invalid => {
                ConsoleError::SignIn("The sign-in code was not accepted. Start again.")
            }
            ConsoleCodeError::Unavailable => ConsoleError::Unavailable,
        })?;
    let bound = console
        .inner
        .api
        .operator_of_user(&user)
        .await
        .map_err(|_| ConsoleError::Unavailable)?;
    let Some((operator, _)) = bound else {
        tracing::warn!(
            reason = "console_not_operator",
            user = %user.escape_debug(),
            "a directory user not bound to an operator signed in to the console"
        );
        return Err(ConsoleError::NotOperator);
    };
    tracing::info!(operator = %operator, "console sign-in");
    let (id, _) = console.inner.sessions.open(Principal::User(user), now)?;
    // A page, not a redirect: when the identity service is another site, a browser sends no SameSite=Strict
    // cookie on a redirect chain that began there; this page's own navigation onward is same-site.
    let mut resp = MessagePage::new("Signed in", "Opening the console…".into())
        .refresh("/console/agents")
        .respond(StatusCode::OK);
    set_session_cookie(&mut resp, &console, id.expose());
    set_cookie(
        &mut resp,
        &console,
        STATE_COOKIE,
        "",
        "/console/callback",
        0,
        "Lax",
    );
    Ok(resp)
}

/// `POST /console/signin/token`: `token` and `csrf` in the form body.
pub(super) async fn with_token(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let f = fields(&body)?;
    let expected = csrf::cookie(&headers, csrf::SIGNIN_COOKIE).unwrap_or_default();
    csrf::check(
        &headers,
        console.base_url(),
        f.get("csrf").map(String::as_str),
        expected,
    )?;
    let token = f.get("token").map(String::as_str).unwrap_or_default();
    if !console.inner.api.is_admin_token(token) {
        tracing::warn!(
            reason = "console_bad_admin_token",
            "console sign-in with a wrong admin token"
        );
        return Err(ConsoleError::BadToken);
    }
    tracing::info!(operator = "admin", "console sign-in with the admin token");
    let now = console.inner.api.clock().now();
    let (id, _) = console.inner.sessions.open(Principal::Admin, now)?;
    let mut resp = see_other("/console/agents");
    set_session_cookie(&mut resp, &console, id.expose());
    Ok(resp)
}

/// `GET /console/signin/once?t=…`.
pub(super) async fn once(
    State(console): State<Console>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let q = fields(query.as_deref().unwrap_or_default().as_bytes())?;
    let now = console.inner.api.clock().now();
    let landing = q
        .get("t")
        .and_then(|t| console.inner.sessions.use_once(t, now))
        .ok_or(ConsoleError::SignIn(
            "This sign-in link was used already or has expired.",
        ))?;
    tracing::info!(operator = "admin", "console sign-in with a one-time link");
    let (id, _) = console.inner.sessions.open(Principal::Admin, now)?;
    let mut resp = see_other(&landing);
    set_session_cookie(&mut resp, &console, id.expose());
    Ok(resp)
}

/// `POST /console/signout`.
pub(super) async fn sign_out(State(console): State<Console>, form: PageForm) -> Response {
    console
        .inner
        .sessions
        .close(form.page.session_id().expose());
    let mut resp = see_other("/console/signin");
    set_cookie(
        &mut resp,
        &console,
        SESSION_COOKIE,
        "",
        "/console",
        0,
        "Strict",
    );
    resp
}

/// Parses a form or query string, refusing a repeated field.
///
/// # Errors
/// [`ConsoleError::Invalid`] naming the field.
pub(super) fn fields(body: &[u8]) -> Result<HashMap<String, String>, ConsoleError> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        let k = k.into_owned();
        if map.contains_key(&k) {
            return Err(ConsoleError::Invalid(format!("{k}: sent more than once")));
        }
        map.insert(k, v.into_owned());
    }
    map.retain(|_, v: &mut String| !v.is_empty());
    Ok(map)
}

fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn set_session_cookie(resp: &mut Response, console: &Console, id: &str) {
    set_cookie(
        resp,
        console,
        SESSION_COOKIE,
        id,
        "/console",
        ABSOLUTE,
        "Strict",
    );
}

/// Appends `Set-Cookie: name=value; Path; Max-Age; HttpOnly; SameSite; Secure when the console is on https`.
fn set_cookie(
    resp: &mut Response,
    console: &Console,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    same_site: &str,
) {
    let secure = if console.secure() { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}
