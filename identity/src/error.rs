//! The identity service's errors and their one mapping to HTTP (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 6750).
//!
//! [`OAuthError::into_response`] is exhaustive: every variant decides its status, its `error` code and its
//! generic description here. What went wrong in detail is a `reason` logged once where the error is made, and
//! never reaches the client: an unknown client and a wrong secret look the same from outside.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every way a request to the identity service can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Malformed: missing or repeated parameter, two authentication methods, wrong content type, a query
    /// string, a bad subject token (RFC 8693 §2.2.2).
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed (unknown client, wrong secret, bad assertion, disabled).
    #[error("invalid_client")]
    InvalidClient,
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

impl OAuthError {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
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
        let (status, description): (StatusCode, &str) = match &self {
            // The description of a malformed request names the parameter problem, never a value.
            OAuthError::InvalidRequest(why) => (StatusCode::BAD_REQUEST, why),
            OAuthError::InvalidClient => {
                (StatusCode::UNAUTHORIZED, "Client authentication failed.")
            }
            OAuthError::InvalidGrant => (
                StatusCode::BAD_REQUEST,
                "The authorization grant is invalid, expired or already used.",
            ),
            OAuthError::UnauthorizedClient => (
                StatusCode::BAD_REQUEST,
                "This client may not use this grant type.",
            ),
            OAuthError::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "The grant type is not supported.")
            }
            OAuthError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "A requested scope is not granted to this client.",
            ),
            OAuthError::InvalidTarget => (
                StatusCode::BAD_REQUEST,
                "The requested audience or resource is unknown or not authorized.",
            ),
            OAuthError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts; retry later.",
            ),
            OAuthError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity service cannot complete this request right now.",
            ),
        };
        let body = serde_json::json!({ "error": self.code(), "error_description": description });
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match self {
            OAuthError::InvalidClient => {
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
