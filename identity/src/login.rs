//! User sign-in for client applications: the authorization code flow with PKCE (S256 only).
//!
//! `GET /oauth2/authorize` checks the client and its exact redirect URI first — a bad one gets an error page,
//! never a redirect — then the rest (an error there is redirected to the client as RFC 6749 §4.1.2.1 says),
//! and renders a plain sign-in form. `POST /oauth2/authorize` checks the directory user's argon2id password
//! (an unknown user costs the same as a wrong password), that the user may use the client and holds the agent's
//! permission, and redirects with a one-time code. Codes live in the shared store under their hash, so any
//! replica can redeem one, once.
//!
//! The web console is a built-in client ([`CONSOLE_CLIENT_ID`]): one exact redirect URI set by the binary, PKCE,
//! no agent and no scope; its codes are redeemed only in-process ([`ConsoleCodes`]), never at `/oauth2/token`.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use idguard_config::identity::{BoxFuture, CONSOLE_CLIENT_ID, ConsoleCodeError, ConsoleCodes};
use idguard_config::secret::Secret;

use super::client_auth::{Authenticated, PrincipalKind};
use super::error::OAuthError;
use super::grants::{TokenResponse, target_agent};
use super::{Form, IdentityService, log_value, random_id, sha256};

/// The cookie that pairs the sign-in page with the form it posts.
const CSRF_COOKIE: &str = "idg_signin";

/// How long a code may wait to be redeemed.
const CODE_TTL: u64 = 60;

/// A code's record in the store.
#[derive(Serialize, Deserialize)]
struct CodeRecord {
    client: String,
    user: String,
    redirect_uri: String,
    challenge: String,
    agent: String,
    scope: Vec<String>,
    exp: u64,
}

/// A checked authorization request.
struct Checked {
    client: String,
    redirect_uri: String,
    state: Option<String>,
    challenge: String,
    agent: String,
    scope: Vec<String>,
}

enum Refusal {
    /// Shown as a page: the redirect URI cannot be trusted.
    Page(&'static str),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
    },
}

impl IdentityService {
    fn check_authorize(&self, form: &Form) -> Result<Checked, Refusal> {
        let snapshot = self.snapshot();
        let Some(client_id) = form.get("client_id") else {
            return Err(Refusal::Page("client_id is missing."));
        };
        if client_id == CONSOLE_CLIENT_ID {
            return self.check_console_authorize(form);
        }
        let Some(client) = snapshot.clients.get(client_id).filter(|c| c.enabled) else {
            return Err(Refusal::Page("This application is not registered."));
        };
        let Some(redirect_uri) = form.get("redirect_uri") else {
            return Err(Refusal::Page("redirect_uri is missing."));
        };
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            tracing::warn!(reason = "redirect_uri_mismatch", client_id = %log_value(client_id), "authorization request with an unregistered redirect_uri");
            return Err(Refusal::Page(
                "The redirect URI is not registered for this application.",
            ));
        }
        let state = form.get("state").map(str::to_owned);
        let back = |error| Refusal::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            error,
        };
        if form.get("response_type") != Some("code") {
            return Err(back("unsupported_response_type"));
        }
        let challenge = checked_challenge(form).ok_or_else(|| back("invalid_request"))?;
        let audience = form.get("audience").or(form.get("resource"));
        let (agent, allowed) = match target_agent(&snapshot, client_id, audience) {
            Ok(found) => found,
            Err(OAuthError::InvalidRequest(_)) => return Err(back("invalid_request")),
            Err(_) => return Err(back("invalid_target")),
        };
        let scope: Vec<String> = match form.get("scope") {
            None => allowed,
            Some(text) => {
                let list: Vec<String> = text
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if !list.iter().all(|s| allowed.contains(s)) {
                    return Err(back("invalid_scope"));
                }
                list
            }
        };
        Ok(Checked {
            client: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            challenge: challenge.to_owned(),
            agent: agent.id.to_string(),
            scope,
        })
    }

    /// The built-in console client: its one exact redirect URI, then PKCE S256. It targets no agent and asks no
    /// scope: the console decides what the signed-in user may do (their operator role), not a token.
    fn check_console_authorize(&self, form: &Form) -> Result<Checked, Refusal> {
        let registered = self.inner.console_redirect.get();
        let redirect_uri = form.get("redirect_uri").unwrap_or_default();
        if registered.is_none_or(|r| r != redirect_uri) {
            tracing::warn!(
                reason = "redirect_uri_mismatch",
                client_id = CONSOLE_CLIENT_ID,
                "console sign-in with another redirect_uri"
            );
            return Err(Refusal::Page(
                "The redirect URI is not registered for this application.",
            ));
        }
        let state = form.get("state").map(str::to_owned);
        let back = |error| Refusal::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            error,
        };
        if form.get("response_type") != Some("code") {
            return Err(back("unsupported_response_type"));
        }
        let challenge = checked_challenge(form).ok_or_else(|| back("invalid_request"))?;
        Ok(Checked {
            client: CONSOLE_CLIENT_ID.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state,
            challenge: challenge.to_owned(),
            agent: String::new(),
            scope: Vec::new(),
        })
    }

    /// `GET /oauth2/authorize`.
    pub fn authorize_page(&self, query: &str) -> Response {
        let Ok(form) = Form::parse(query.as_bytes()) else {
            return page(
                StatusCode::BAD_REQUEST,
                error_body("A parameter was sent more than once."),
            );
        };
        match self.check_authorize(&form) {
            Err(refusal) => refuse(refusal),
            Ok(_) => {
                let Ok(csrf) = random_id() else {
                    return page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        error_body("Sign-in is unavailable."),
                    );
                };
                let secure = self
                    .snapshot()
                    .identity
                    .as_ref()
                    .is_some_and(|s| s.issuer.starts_with("https://"));
                let mut resp = page(StatusCode::OK, login_body(&form, None, &csrf));
                // Double submit: the form carries the same random value as this cookie, which a page on
                // another site can neither read nor send along (SameSite=Strict).
                let cookie = format!(
                    "{CSRF_COOKIE}={csrf}; Path=/oauth2/authorize; Max-Age=600; HttpOnly; SameSite=Strict{}",
                    if secure { "; Secure" } else { "" }
                );
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    resp.headers_mut().insert(header::SET_COOKIE, v);
                }
                resp
            }
        }
    }

    /// The sign-in POST came from the page this service rendered: its `csrf` field equals the cookie set with
    /// that page, and an `Origin`, when the browser sends one other than `null`, is this issuer's.
    fn check_same_origin(&self, headers: &HeaderMap, form: &Form) -> bool {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(CSRF_COOKIE)?.strip_prefix('='));
        let same_token = match (cookie, form.get("csrf")) {
            (Some(c), Some(f)) if !c.is_empty() => bool::from(c.as_bytes().ct_eq(f.as_bytes())),
            _ => false,
        };
        let origin_ok = match headers.get(header::ORIGIN) {
            // `null`: what a browser sends from a page with `Referrer-Policy: no-referrer` (this sign-in page);
            // the token alone decides then.
            None => true,
            Some(origin) if origin.as_bytes() == b"null" => true,
            Some(origin) => self.snapshot().identity.as_ref().is_some_and(|s| {
                origin.to_str().is_ok_and(|o| {
                    issuer_origin(&s.issuer).is_some_and(|mine| o.eq_ignore_ascii_case(&mine))
                })
            }),
        };
        same_token && origin_ok
    }

    /// The username's password, under the failure limiter (per username and source address); `Err` is the page
    /// to answer with (429, 401 or 503). An unknown user costs the same as a wrong password.
    async fn check_password(
        &self,
        form: &Form,
        username: &str,
        password: zeroize::Zeroizing<String>,
        peer: Option<IpAddr>,
        limit: u32,
        now: u64,
    ) -> Result<(), Response> {
        let csrf = form.get("csrf").unwrap_or_default();
        let limiter_key = format!("user:{username}");
        if self
            .check_failures(&limiter_key, peer, limit, now)
            .await
            .is_err()
        {
            tracing::warn!(reason = "rate_limited", user = %log_value(username), "sign-in rate-limited");
            return Err(page(
                StatusCode::TOO_MANY_REQUESTS,
                login_body(
                    form,
                    Some("Too many attempts. Wait a minute and try again."),
                    csrf,
                ),
            ));
        }
        let hash = self
            .snapshot()
            .directory
            .users
            .get(username)
            .and_then(|u| u.password_hash.clone());
        let known = hash.is_some();
        // argon2id holds 19 MiB for tens of milliseconds: a few at a time, so a burst of sign-ins queues instead of
        // exhausting memory.
        let Ok(_permit) = password_slots().acquire().await else {
            return Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("Sign-in is unavailable."),
            ));
        };
        let ok = tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), &password))
            .await
            .unwrap_or(false);
        if !ok {
            tracing::warn!(reason = if known { "bad_password" } else { "unknown_user" }, user = %log_value(username), "sign-in failed");
            self.count_failure(&limiter_key, peer, now).await;
            return Err(page(
                StatusCode::UNAUTHORIZED,
                login_body(form, Some("The username or password is incorrect."), csrf),
            ));
        }
        Ok(())
    }

    /// `POST /oauth2/authorize`: the sign-in form.
    pub async fn authorize_submit(
        &self,
        body: &[u8],
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Response {
        let Ok(form) = Form::parse(body) else {
            return page(
                StatusCode::BAD_REQUEST,
                error_body("A parameter was sent more than once."),
            );
        };
        if !self.check_same_origin(headers, &form) {
            tracing::warn!(
                reason = "sign_in_csrf",
                "sign-in form without its page's token or from another origin"
            );
            return page(
                StatusCode::FORBIDDEN,
                error_body(
                    "This sign-in form expired or was not sent from its page. Reload the page and sign in again.",
                ),
            );
        }
        let checked = match self.check_authorize(&form) {
            Ok(c) => c,
            Err(refusal) => return refuse(refusal),
        };
        // Directory ids are at most 128 characters; anything longer is no user (and never a limiter key).
        let username: String = form
            .get("username")
            .unwrap_or_default()
            .chars()
            .take(129)
            .collect();
        let password = zeroize::Zeroizing::new(form.get("password").unwrap_or_default().to_owned());
        let snapshot = self.snapshot();
        let Ok(settings) = self.settings(&snapshot) else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("Sign-in is unavailable."),
            );
        };
        let now = self.now();
        if let Err(refused) = self
            .check_password(
                &form,
                &username,
                password,
                peer,
                settings.max_failed_auth_per_minute,
                now,
            )
            .await
        {
            return refused;
        }
        // The console's users are checked by the console (bound to an operator); others by the client and agent.
        let allowed = checked.client == CONSOLE_CLIENT_ID
            || snapshot
                .clients
                .get(checked.client.as_str())
                .is_some_and(|c| c.authorizes(&username, &snapshot.directory))
                && snapshot
                    .agents
                    .get(checked.agent.as_str())
                    .is_some_and(|a| a.permission.granted_to(&username, &snapshot.directory));
        if !allowed {
            tracing::warn!(reason = "user_not_authorized", user = %log_value(&username), "user may not use this client or agent");
            return refuse(Refusal::Redirect {
                redirect_uri: checked.redirect_uri,
                state: checked.state,
                error: "access_denied",
            });
        }
        self.issue_code(checked, username, now, &settings.issuer)
            .await
    }

    /// Stores a single-use code for the signed-in `username` (the identity store, so any replica redeems it)
    /// and redirects to the client with it, its `state` and this issuer (RFC 9207).
    async fn issue_code(
        &self,
        checked: Checked,
        username: String,
        now: u64,
        issuer: &str,
    ) -> Response {
        let Ok(code) = random_id() else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("Sign-in is unavailable."),
            );
        };
        let record = CodeRecord {
            client: checked.client,
            user: username,
            redirect_uri: checked.redirect_uri.clone(),
            challenge: checked.challenge,
            agent: checked.agent,
            scope: checked.scope,
            exp: now + CODE_TTL,
        };
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("Sign-in is unavailable."),
            );
        };
        let store = self.inner.store.clone();
        let key = sha256(format!("code\n{code}").as_bytes());
        let stored =
            tokio::task::spawn_blocking(move || store.cache_put(&key, &bytes, record.exp)).await;
        if !matches!(stored, Ok(Ok(()))) {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                error_body("Sign-in is unavailable."),
            );
        }
        let mut params = form_urlencoded::Serializer::new(String::new());
        params.append_pair("code", &code);
        if let Some(state) = &checked.state {
            params.append_pair("state", state);
        }
        params.append_pair("iss", issuer);
        redirect(&checked.redirect_uri, &params.finish())
    }

    /// `grant_type=authorization_code`: redeems a code once, for the client it was issued to, with the same
    /// redirect URI and the PKCE verifier.
    ///
    /// # Errors
    /// [`OAuthError::InvalidGrant`] for anything wrong with the code; [`OAuthError::UnauthorizedClient`] for an
    /// agent.
    pub async fn redeem_code(
        &self,
        who: &Authenticated,
        form: &Form,
    ) -> Result<TokenResponse, OAuthError> {
        if who.kind != PrincipalKind::Client {
            return Err(OAuthError::UnauthorizedClient);
        }
        let (Some(code), Some(redirect_uri), Some(verifier)) = (
            form.get("code"),
            form.get("redirect_uri"),
            form.get("code_verifier"),
        ) else {
            return Err(OAuthError::InvalidRequest(
                "code, redirect_uri and code_verifier are required.",
            ));
        };
        let record = self.take_code(code, redirect_uri, verifier).await?;
        if record.client != *who.id || record.client == CONSOLE_CLIENT_ID {
            tracing::warn!(
                reason = "code_mismatch",
                "authorization code redeemed by another client"
            );
            return Err(OAuthError::InvalidGrant);
        }
        self.user_token(who, &record.user, &record.agent, record.scope)
    }
}

impl IdentityService {
    /// Claims a code once (any replica) and checks its redirect URI, expiry and PKCE `verifier`; the caller checks
    /// the client it was issued to.
    ///
    /// # Errors
    /// [`OAuthError::InvalidGrant`] for anything wrong with the code; [`OAuthError::Unavailable`] without a store.
    async fn take_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<CodeRecord, OAuthError> {
        let store = self.inner.store.clone();
        let key = sha256(format!("code\n{code}").as_bytes());
        let used = sha256(format!("code-used\n{code}").as_bytes());
        let used_until = self.now() + CODE_TTL;
        let found = tokio::task::spawn_blocking(move || -> Result<Option<(Vec<u8>, bool)>, ()> {
            let Some(bytes) = store.cache_get(&key).map_err(|_| ())? else {
                return Ok(None);
            };
            let first = store.claim_jti(&used, used_until).map_err(|_| ())?;
            Ok(Some((bytes, first)))
        })
        .await
        .map_err(|_| OAuthError::Unavailable)?
        .map_err(|()| OAuthError::Unavailable)?;
        let Some((bytes, first)) = found else {
            tracing::warn!(
                reason = "unknown_code",
                "authorization code unknown or expired"
            );
            return Err(OAuthError::InvalidGrant);
        };
        if !first {
            tracing::warn!(reason = "code_replay", "authorization code used twice");
            return Err(OAuthError::InvalidGrant);
        }
        let record: CodeRecord =
            serde_json::from_slice(&bytes).map_err(|_| OAuthError::InvalidGrant)?;
        let computed = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
        let pkce_ok: bool = computed
            .as_bytes()
            .ct_eq(record.challenge.as_bytes())
            .into();
        if record.redirect_uri != redirect_uri || record.exp < self.now() || !pkce_ok {
            tracing::warn!(
                reason = "code_mismatch",
                "authorization code redeemed with the wrong redirect_uri or verifier"
            );
            return Err(OAuthError::InvalidGrant);
        }
        Ok(record)
    }
}

impl ConsoleCodes for IdentityService {
    fn redeem_console_code(
        &self,
        code: Secret,
        redirect_uri: String,
        verifier: Secret,
    ) -> BoxFuture<Result<String, ConsoleCodeError>> {
        let svc = self.clone();
        Box::pin(async move {
            let record = svc
                .take_code(code.expose(), &redirect_uri, verifier.expose())
                .await
                .map_err(|e| match e {
                    OAuthError::Unavailable => ConsoleCodeError::Unavailable,
                    _ => ConsoleCodeError::Invalid,
                })?;
            if record.client != CONSOLE_CLIENT_ID {
                tracing::warn!(
                    reason = "code_mismatch",
                    "a client application's code presented to the console"
                );
                return Err(ConsoleCodeError::Invalid);
            }
            Ok(record.user)
        })
    }
}

/// The PKCE S256 challenge of an authorization request: 43 to 128 URL-safe characters.
fn checked_challenge(form: &Form) -> Option<&str> {
    let challenge = form.get("code_challenge").unwrap_or_default();
    let ok = form.get("code_challenge_method") == Some("S256")
        && (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(challenge)
}

/// Concurrent password verifications allowed.
const PASSWORD_SLOTS: usize = 4;

fn password_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PASSWORD_SLOTS);
    &SLOTS
}

/// Checks `password` against an argon2id PHC string; without one, against a fixed dummy so the cost is the same.
fn verify_password(hash: Option<&str>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        idguard_config::hashes::hash_password("idguard-dummy-password").unwrap_or_default()
    });
    let (phc, real) = match hash {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

fn refuse(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => page(StatusCode::BAD_REQUEST, error_body(message)),
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
        } => {
            let mut params = form_urlencoded::Serializer::new(String::new());
            params.append_pair("error", error);
            if let Some(state) = &state {
                params.append_pair("state", state);
            }
            redirect(&redirect_uri, &params.finish())
        }
    }
}

fn redirect(uri: &str, query: &str) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{sep}{query}");
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn page(status: StatusCode, body: String) -> Response {
    let mut resp = (status, Html(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Every 503 of the sign-in page is the store or the topology being unavailable: worth a retry.
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}\
label{display:block;margin-top:1rem}input{width:100%;padding:.4rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.5rem 1rem}.error{color:#a00}";

fn error_body(message: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in error</title><style>{STYLE}</style></head>\
         <body><h1>Sign-in error</h1><p class=\"error\">{}</p></body></html>",
        escape(message)
    )
}

/// The `scheme://authority` of `issuer`: what a browser sends as `Origin` from its pages.
fn issuer_origin(issuer: &str) -> Option<String> {
    let uri: axum::http::Uri = issuer.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

fn login_body(form: &Form, error: Option<&str>, csrf: &str) -> String {
    const CARRIED: [&str; 9] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "audience",
        "resource",
    ];
    let hidden: String = CARRIED
        .iter()
        .filter_map(|name| {
            form.get(name).map(|v| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    escape(v)
                )
            })
        })
        .collect();
    let client = escape(form.get("client_id").unwrap_or_default());
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title><style>{STYLE}</style></head>\
         <body><h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{error}\
         <form method=\"post\" action=\"/oauth2/authorize\">{hidden}\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Username <input name=\"username\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form></body></html>",
        escape(csrf)
    )
}
