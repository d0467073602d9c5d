//! The identity service's errors and their one mapping to HTTP (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 6750).
//!
//! [`OAuthError::into_response`] is exhaustive: every variant decides its status, its `error` code and its
//! description here. What went wrong in detail is a `reason` logged once where the error is made. A failed client
//! authentication tells the client what to fix ([`AuthFailure::description`]) but never whether the client exists:
//! an unknown client and a wrong secret read the same, and so do an unknown client and an assertion no registered
//! key verifies.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every way a request to the identity service can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Malformed: missing or repeated parameter, two authentication methods, wrong content type, a query
    /// string, a bad subject token (RFC 8693 §2.2.2).
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed, and why (as far as the client may be told).
    #[error("invalid_client: {}", .0.reason())]
    InvalidClient(AuthFailure),
    /// The code (or other grant) is invalid, expired, used, or was issued to another client or redirect URI.
    #[error("invalid_grant")]
    InvalidGrant,
    /// The client may not use this grant type.
    #[error("unauthorized_client")]
    UnauthorizedClient,
    /// The grant type is not one this server supports.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// A requested scope is beyond what the client is granted.
    #[error("invalid_scope")]
    InvalidScope,
    /// The audience or resource is unknown, or the caller has no authorization to it.
    #[error("invalid_target")]
    InvalidTarget,
    /// Too many failed authentications for this client; retry after the given seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// The shared store could not be reached: replay protection or revocation cannot be checked, so no token.
    #[error("temporarily unavailable")]
    Unavailable,
}

/// Why a client authentication failed. Each variant is one logged `reason`; [`AuthFailure::description`] is what
/// the client reads, grouped so that no answer tells an existing client from an unknown one: before a secret
/// matched or a signature verified, every failure that depends on the client reads the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The request carries no client authentication.
    Missing,
    /// An `Authorization` header that is not `Basic` over `client_id:client_secret`.
    BadAuthorizationHeader,
    /// A secret for a client id that does not exist.
    UnknownClient,
    /// A wrong secret.
    BadSecret,
    /// The right secret, for a client registered for `private_key_jwt`.
    SecretNotAllowed,
    /// The right secret or a verified assertion, for a disabled client.
    Disabled,
    /// An assertion that is not a compact JWS with JSON header and claims (`iss`, `sub`, `aud`, integer `exp`).
    MalformedAssertion,
    /// An assertion header that names or embeds a key (`jku`, `x5u`, `jwk`, `x5c`).
    HeaderKeyReference,
    /// An assertion header with `crit`.
    UnsupportedCrit,
    /// An assertion whose `typ` is not a client assertion's (an access token, say).
    BadTyp,
    /// `iss` and `sub` are not both the client (or disagree with `client_id`).
    BadSubject,
    /// `aud` is not one accepted audience alone; `token_endpoint` says whether endpoint URLs are accepted.
    BadAudience {
        /// Whether the token endpoint URL (and the called endpoint's) is accepted besides the issuer.
        token_endpoint: bool,
    },
    /// `exp` has passed.
    Expired,
    /// `exp` is further ahead than the bound, in seconds.
    Lifetime(u64),
    /// `iat` is in the future.
    IssuedInFuture,
    /// `nbf` is in the future.
    NotYetValid,
    /// No usable `jti`.
    MissingJti,
    /// An assertion for a client id that does not exist.
    UnknownAssertionClient,
    /// An assertion for a client registered for client secrets.
    AssertionNotAllowed,
    /// No registered key has the header's `kid`.
    UnknownKid,
    /// The header's `alg` is not the registered key's.
    AlgNotAllowed,
    /// No registered key verified the signature.
    BadSignature,
    /// The assertion's `jti` was used before.
    Replay,
}

impl AuthFailure {
    /// The `reason` logged for it.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "no_client_auth",
            AuthFailure::BadAuthorizationHeader => "bad_authorization_header",
            AuthFailure::UnknownClient | AuthFailure::UnknownAssertionClient => "unknown_client",
            AuthFailure::BadSecret => "bad_client_secret",
            AuthFailure::SecretNotAllowed | AuthFailure::AssertionNotAllowed => {
                "auth_method_not_allowed"
            }
            AuthFailure::Disabled => "client_disabled",
            AuthFailure::MalformedAssertion => "bad_assertion",
            AuthFailure::HeaderKeyReference => "header_key_reference",
            AuthFailure::UnsupportedCrit => "unsupported_crit",
            AuthFailure::BadTyp => "bad_assertion_typ",
            AuthFailure::BadSubject => "bad_assertion_sub",
            AuthFailure::BadAudience { .. } => "bad_assertion_aud",
            AuthFailure::Expired => "assertion_expired",
            AuthFailure::Lifetime(_) => "assertion_lifetime",
            AuthFailure::IssuedInFuture => "assertion_iat_future",
            AuthFailure::NotYetValid => "assertion_not_yet_valid",
            AuthFailure::MissingJti => "assertion_missing_jti",
            AuthFailure::UnknownKid => "unknown_kid",
            AuthFailure::AlgNotAllowed => "alg_not_allowed",
            AuthFailure::BadSignature => "bad_assertion_signature",
            AuthFailure::Replay => "assertion_replay",
        }
    }

    /// The `error_description` the client reads: what to fix, never a value it sent, and the same text for an
    /// unknown client as for a wrong secret or an assertion no registered key verifies.
    pub fn description(&self) -> Cow<'static, str> {
        let text = match self {
            AuthFailure::Missing => {
                "Client authentication is required: HTTP Basic (client_secret_basic), client_id and \
                 client_secret in the body (client_secret_post), or a client assertion (private_key_jwt)."
            }
            AuthFailure::BadAuthorizationHeader => {
                "The Authorization header must be Basic over the form-encoded client_id:client_secret."
            }
            AuthFailure::UnknownClient | AuthFailure::BadSecret => {
                "Unknown client or wrong secret."
            }
            AuthFailure::SecretNotAllowed => {
                "This client authenticates with private_key_jwt, not a client secret."
            }
            AuthFailure::Disabled => "This client is disabled.",
            AuthFailure::MalformedAssertion => {
                "The client assertion must be a signed JWT whose claims include iss, sub, aud and exp (integer \
                 seconds)."
            }
            AuthFailure::HeaderKeyReference => {
                "The client assertion's header may not name or embed a key (jku, x5u, jwk, x5c): the key is \
                 one registered for the client, chosen by kid."
            }
            AuthFailure::UnsupportedCrit => "The client assertion's header may not carry crit.",
            AuthFailure::BadTyp => {
                "The client assertion's typ must be JWT or client-authentication+jwt (a token is not a client \
                 assertion)."
            }
            AuthFailure::BadSubject => {
                "The client assertion's iss and sub must both be the client id (and equal client_id when \
                 that is sent)."
            }
            AuthFailure::BadAudience {
                token_endpoint: true,
            } => {
                "The client assertion's aud must be the issuer or the token endpoint URL (from the \
                 authorization server metadata), as a single value."
            }
            AuthFailure::BadAudience {
                token_endpoint: false,
            } => {
                "The client assertion's aud must be the issuer (from the authorization server metadata) as a \
                 single value; this server does not accept the token endpoint URL."
            }
            AuthFailure::Expired => "The client assertion has expired.",
            AuthFailure::Lifetime(max) => {
                return Cow::Owned(format!(
                    "The client assertion's exp is more than {max} seconds ahead; sign assertions that \
                     expire sooner."
                ));
            }
            AuthFailure::IssuedInFuture => {
                "The client assertion's iat is in the future; check the client's clock."
            }
            AuthFailure::NotYetValid => {
                "The client assertion's nbf is in the future; check the client's clock."
            }
            AuthFailure::MissingJti => {
                "The client assertion needs a jti: a unique id of at most 256 characters."
            }
            AuthFailure::UnknownAssertionClient
            | AuthFailure::AssertionNotAllowed
            | AuthFailure::UnknownKid
            | AuthFailure::AlgNotAllowed
            | AuthFailure::BadSignature => {
                "The client assertion's signature did not verify with a key registered for this client \
                 (unknown client, kid, key or algorithm)."
            }
            AuthFailure::Replay => {
                "This client assertion was used before; sign a new one, with a new jti, for each request."
            }
        };
        Cow::Borrowed(text)
    }
}

impl OAuthError {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant => "invalid_grant",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::InvalidTarget => "invalid_target",
            OAuthError::RateLimited(_) => "slow_down",
            OAuthError::Unavailable => "temporarily_unavailable",
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, description): (StatusCode, Cow<'static, str>) = match &self {
            // The description of a malformed request names the parameter problem, never a value.
            OAuthError::InvalidRequest(why) => (StatusCode::BAD_REQUEST, Cow::Borrowed(*why)),
            OAuthError::InvalidClient(failure) => (StatusCode::UNAUTHORIZED, failure.description()),
            OAuthError::InvalidGrant => (
                StatusCode::BAD_REQUEST,
                "The authorization grant is invalid, expired or already used.".into(),
            ),
            OAuthError::UnauthorizedClient => (
                StatusCode::BAD_REQUEST,
                "This client may not use this grant type.".into(),
            ),
            OAuthError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "The grant type is not supported.".into(),
            ),
            OAuthError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "A requested scope is not granted to this client.".into(),
            ),
            OAuthError::InvalidTarget => (
                StatusCode::BAD_REQUEST,
                "The requested audience or resource is unknown or not authorized.".into(),
            ),
            OAuthError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts; retry later.".into(),
            ),
            OAuthError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity service cannot complete this request right now.".into(),
            ),
        };
        let body = serde_json::json!({ "error": self.code(), "error_description": description });
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match self {
            OAuthError::InvalidClient(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="idguard""#),
                );
            }
            OAuthError::RateLimited(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            OAuthError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidGrant
            | OAuthError::UnauthorizedClient
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidScope
            | OAuthError::InvalidTarget => {}
        }
        resp
    }
}
