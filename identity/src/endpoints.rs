//! The identity service's HTTP surface, served on the public listener.
//!
//! | route | what |
//! |---|---|
//! | `POST /oauth2/token` | `client_credentials`, `authorization_code`, token exchange |
//! | `POST /oauth2/revoke` | RFC 7009 |
//! | `POST /oauth2/introspect` | RFC 7662 |
//! | `GET, POST /oauth2/authorize` | the sign-in page and its form |
//! | `GET /.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | RFC 8414 metadata |
//! | `GET /.well-known/jwks.json` | the signing keys |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use idguard_config::identity::{PeerAddr, TOKEN_EXCHANGE_GRANT};

use super::client_auth::{Endpoint, PrincipalKind};
use super::error::OAuthError;
use super::grants::ExchangeParams;
use super::{Form, IdentityService};

/// Largest request body the identity service reads.
const MAX_BODY: usize = 64 * 1024;

/// The identity service as one boxed service over hyper's request body: what the public listener dispatches
/// `/oauth2/` and `/.well-known/` to. (The same type as the proxy's `IdentityRoutes`, spelled here so that
/// neither crate depends on the other.)
pub type PublicService = tower::util::BoxCloneSyncService<
    axum::http::Request<hyper::body::Incoming>,
    axum::http::Response<
        http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>,
    >,
    std::convert::Infallible,
>;

impl IdentityService {
    /// The public routes, boxed for the public listener.
    pub fn public_service(&self) -> PublicService {
        use http_body_util::BodyExt;
        let router = self.router();
        let service = tower::ServiceExt::<axum::http::Request<hyper::body::Incoming>>::map_response(
            router,
            |r: axum::http::Response<axum::body::Body>| {
                r.map(|b| {
                    b.map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
                        .boxed_unsync()
                })
            },
        );
        tower::util::BoxCloneSyncService::new(service)
    }

    /// The public routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth2/token", post(token))
            .route("/oauth2/revoke", post(revoke))
            .route("/oauth2/introspect", post(introspect))
            .route("/oauth2/authorize", get(authorize_get).post(authorize_post))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/.well-known/jwks.json", get(jwks))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                require_configured,
            ))
            // Every answer of the OAuth endpoints — errors and 405s included — must not be cached (RFC 6749 §5.1).
            .layer(axum::middleware::map_response(no_store))
            .with_state(self.clone())
    }
}

/// Without `[identity]` there is no identity service: its paths are simply not found.
async fn require_configured(
    State(svc): State<IdentityService>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if svc.snapshot().identity.is_none() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": "not_found",
                "error_description": "The identity service is not configured on this proxy.",
            })),
        )
            .into_response();
    }
    next.run(req).await
}

async fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The checks every form endpoint shares: no query string, a form body.
fn form_request(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    if uri.query().is_some() {
        // The query may hold a secret: it is never logged.
        tracing::warn!(
            reason = "query_parameters",
            "parameters in the query string refused"
        );
        return Err(OAuthError::InvalidRequest(
            "Send parameters in a form-encoded body, not the query string.",
        ));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::InvalidRequest(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    Form::parse(body)
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    let mut resp = axum::Json(value).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

async fn token(
    State(svc): State<IdentityService>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(PeerAddr(ip))| ip);
    match token_inner(&svc, &uri, &headers, &body, peer).await {
        Ok((grant, resp)) => {
            svc.count("token", "ok");
            tracing::info!(reason = "token_issued", grant, scope = %resp.scope, expires_in = resp.expires_in, "token issued");
            svc.inner.metrics.issued.with_label_values(&[grant]).inc();
            json(&resp)
        }
        Err(e) => {
            svc.count("token", e.code());
            e.into_response()
        }
    }
}

async fn token_inner(
    svc: &IdentityService,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    peer: Option<std::net::IpAddr>,
) -> Result<(&'static str, super::grants::TokenResponse), OAuthError> {
    let form = form_request(uri, headers, body)?;
    svc.topology_current()?;
    let grant = form
        .get("grant_type")
        .ok_or(OAuthError::InvalidRequest("grant_type is required."))?;
    match grant {
        "client_credentials" => {
            let who = svc
                .authenticate(headers, &form, peer, Endpoint::Token)
                .await?;
            Ok(("client_credentials", svc.client_credentials(&who, &form)?))
        }
        "authorization_code" => {
            let who = svc
                .authenticate(headers, &form, peer, Endpoint::Token)
                .await?;
            Ok(("authorization_code", svc.redeem_code(&who, &form).await?))
        }
        TOKEN_EXCHANGE_GRANT => {
            // Client authentication is optional for an exchange (the subject token is the proof), but when sent
            // it must hold.
            let presented = headers.contains_key(header::AUTHORIZATION)
                || form.get("client_secret").is_some()
                || form.get("client_assertion").is_some();
            let caller = if presented {
                Some(
                    svc.authenticate(headers, &form, peer, Endpoint::Token)
                        .await?,
                )
            } else {
                None
            };
            let params = ExchangeParams {
                subject_token: form
                    .get("subject_token")
                    .ok_or(OAuthError::InvalidRequest("subject_token is required."))?,
                subject_token_type: form.get("subject_token_type").ok_or(
                    OAuthError::InvalidRequest("subject_token_type is required."),
                )?,
                actor_token: form.get("actor_token"),
                actor_token_type: form.get("actor_token_type"),
                audience: form.get("audience"),
                resource: form.get("resource"),
                scope: form.get("scope"),
                requested_token_type: form.get("requested_token_type"),
            };
            Ok((
                "token_exchange",
                svc.exchange(caller.as_ref(), params).await?,
            ))
        }
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

async fn revoke(
    State(svc): State<IdentityService>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(PeerAddr(ip))| ip);
    let result: Result<(), OAuthError> = async {
        let form = form_request(&uri, &headers, &body)?;
        let who = svc
            .authenticate(&headers, &form, peer, Endpoint::Revocation)
            .await?;
        let token = form
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required."))?;
        // RFC 7009 §2.2: an unknown, invalid or foreign token is answered 200 all the same. A token already
        // revoked is revoked again (no store read is needed to revoke); one the store cannot record is 503, never
        // 200, so an acknowledged revocation is never lost.
        if let Some(claims) = svc.verify_signature(token)
            && claims.client_id == *who.id
        {
            svc.revoke(&claims).await?;
            tracing::info!(reason = "token_revoked", client_id = %who.id, "token revoked");
        }
        Ok(())
    }
    .await;
    svc.count(
        "revoke",
        result.as_ref().err().map_or("ok", OAuthError::code),
    );
    match result {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn introspect(
    State(svc): State<IdentityService>,
    peer: Option<Extension<PeerAddr>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(PeerAddr(ip))| ip);
    let result: Result<serde_json::Value, OAuthError> = async {
        let form = form_request(&uri, &headers, &body)?;
        svc.topology_current()?;
        let who = svc
            .authenticate(&headers, &form, peer, Endpoint::Introspection)
            .await?;
        let token = form
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required."))?;
        let inactive = serde_json::json!({ "active": false });
        // A revocation that cannot be checked is 503, not `active: false`: the resource server can tell
        // "try again" from "inactive".
        let Some(claims) = svc.verify_local(token).await? else {
            return Ok(inactive);
        };
        let snapshot = svc.snapshot();
        // Who may look: the client the token was issued to, or the agent it was issued for (its audience).
        let entitled = claims.client_id == *who.id
            || (who.kind == PrincipalKind::Agent
                && snapshot
                    .agents
                    .get(&who.id)
                    .is_some_and(|a| a.audience == claims.aud));
        let current = claims
            .idg_cred
            .as_deref()
            .is_none_or(|c| snapshot.credential_current(&claims.client_id, c));
        if !entitled || !current || claims.exp < svc.now() {
            return Ok(inactive);
        }
        let mut out = serde_json::json!({
            "active": true,
            "iss": claims.iss,
            "sub": claims.sub,
            "aud": claims.aud,
            "client_id": claims.client_id,
            "scope": claims.scope,
            "iat": claims.iat,
            "exp": claims.exp,
            "jti": claims.jti,
            "token_type": "Bearer",
        });
        if let Some(act) = &claims.act {
            out["act"] = serde_json::to_value(act).unwrap_or_default();
        }
        Ok(out)
    }
    .await;
    svc.count(
        "introspect",
        result.as_ref().err().map_or("ok", OAuthError::code),
    );
    match result {
        Ok(v) => json(&v),
        Err(e) => e.into_response(),
    }
}

async fn authorize_get(State(svc): State<IdentityService>, uri: Uri) -> Response {
    if let Err(e) = svc.topology_current() {
        return e.into_response();
    }
    svc.authorize_page(uri.query().unwrap_or_default())
}

async fn authorize_post(
    State(svc): State<IdentityService>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return OAuthError::InvalidRequest("The sign-in form must be form-encoded.")
            .into_response();
    }
    if let Err(e) = svc.topology_current() {
        return e.into_response();
    }
    svc.authorize_submit(&body, &headers, peer.map(|Extension(PeerAddr(ip))| ip))
        .await
}

async fn metadata(State(svc): State<IdentityService>) -> Response {
    let snapshot = svc.snapshot();
    let Some(settings) = snapshot.identity.as_ref() else {
        return OAuthError::Unavailable.into_response();
    };
    let iss = &settings.issuer;
    // RFC 8414 §2: an endpoint that lists `private_key_jwt` must list the algorithms its assertions may use.
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let assertion_algs = ["ES256", "RS256", "EdDSA"];
    let body = serde_json::json!({
        "issuer": iss,
        "token_endpoint": settings.token_endpoint(),
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{iss}{}", Endpoint::Revocation.path()),
        "introspection_endpoint": format!("{iss}{}", Endpoint::Introspection.path()),
        "grant_types_supported": ["client_credentials", "authorization_code", TOKEN_EXCHANGE_GRANT],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "access_token_signing_alg_values_supported": ["ES256"],
    });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

async fn jwks(State(svc): State<IdentityService>) -> Response {
    let set = svc.inner.jwks.borrow().clone();
    let mut resp = axum::Json(&*set).into_response();
    // Short: the next key is published a whole period ahead, so a minute of caching never misses a rotation.
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    resp
}
