//! The data plane's one error type and its one mapping to HTTP.
//!
//! [`ProxyError::into_response`] is an exhaustive `match` with no catch-all arm: adding a variant forces a decision
//! about its status. Bodies use the OpenAI error shape so SDKs display them, and are generic: no token, secret,
//! upstream URL or upstream body ever appears in one. The detailed reason goes to the access log (`reason=`).
//! `docs/errors.md` tables the same mapping.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::body::ProxyBody;

/// Why a token was refused. Each value is a stable `reason` in logs and in `idguard_authz_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReason {
    /// Not three base64url segments, or the header is not JSON.
    Malformed,
    /// The header names an algorithm other than the key's (including `none` and HMAC).
    AlgNotAllowed,
    /// The header carries a `crit` extension we do not implement.
    UnsupportedCrit,
    /// No trusted key has the token's `kid` (after a rate-limited refetch).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the key's issuer.
    BadIssuer,
    /// `aud` is not this proxy's audience, or names another audience too.
    BadAudience,
    /// `typ` is not an accepted access-token type.
    BadTyp,
    /// A required claim (`exp`, `iss`, `aud`, `client_id`/`sub`) is missing.
    MissingClaim,
    /// A claim has the wrong type or shape (string `exp`, array `scope`, duplicate keys, bad agent id).
    BadClaims,
    /// The agent named by the token is not in the topology.
    UnknownAgent,
    /// The agent is disabled.
    AgentDisabled,
    /// The token was revoked (`/oauth2/revoke`).
    Revoked,
    /// The client secret or key that obtained the token was removed, or its client disabled.
    CredentialRevoked,
    /// The client application named by the token is not in the topology.
    UnknownClient,
    /// The client application is disabled.
    ClientDisabled,
}

impl TokenReason {
    /// The stable reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenReason::Malformed => "malformed_token",
            TokenReason::AlgNotAllowed => "alg_not_allowed",
            TokenReason::UnsupportedCrit => "unsupported_crit",
            TokenReason::UnknownKey => "unknown_kid",
            TokenReason::BadSignature => "bad_signature",
            TokenReason::Expired => "token_expired",
            TokenReason::NotYetValid => "token_not_yet_valid",
            TokenReason::BadIssuer => "bad_issuer",
            TokenReason::BadAudience => "bad_audience",
            TokenReason::BadTyp => "bad_typ",
            TokenReason::MissingClaim => "missing_claim",
            TokenReason::BadClaims => "bad_claims",
            TokenReason::UnknownAgent => "unknown_agent",
            TokenReason::AgentDisabled => "agent_disabled",
            TokenReason::Revoked => "token_revoked",
            TokenReason::CredentialRevoked => "credential_revoked",
            TokenReason::UnknownClient => "unknown_client",
            TokenReason::ClientDisabled => "client_disabled",
        }
    }
}

/// Why a request was refused as malformed (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestReason {
    /// More than one token, or two different tokens in different slots.
    AmbiguousToken,
    /// A token in the query string (`access_token`).
    TokenInQuery,
    /// A token in a form-encoded body (`access_token`).
    TokenInBody,
    /// A header name with an underscore or other character outside the token set.
    BadHeaderName,
    /// A header value with control characters or non-ASCII bytes.
    BadHeaderValue,
    /// An absolute-form request target (`GET http://host/ HTTP/1.1`).
    AbsoluteForm,
    /// The path leaves, or tries to leave, the node's base path.
    PathEscape,
    /// The body's framing is malformed (a bad chunk size, too many chunk-extension bytes) or the body was cut short.
    MalformedBody,
    /// More than one `Host` header.
    DuplicateHost,
    /// HTTP/2: a `host` header that differs from `:authority`.
    HostMismatch,
    /// More than one `Content-Type` header, or one naming several media types.
    AmbiguousContentType,
}

impl RequestReason {
    /// The stable reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestReason::AmbiguousToken => "ambiguous_token",
            RequestReason::TokenInQuery => "token_in_query",
            RequestReason::TokenInBody => "token_in_body",
            RequestReason::BadHeaderName => "bad_header_name",
            RequestReason::BadHeaderValue => "bad_header_value",
            RequestReason::AbsoluteForm => "absolute_form_target",
            RequestReason::PathEscape => "path_escape",
            RequestReason::MalformedBody => "malformed_body",
            RequestReason::DuplicateHost => "duplicate_host",
            RequestReason::HostMismatch => "host_authority_mismatch",
            RequestReason::AmbiguousContentType => "ambiguous_content_type",
        }
    }
}

/// Everything that ends a request at the proxy instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No token in any slot.
    #[error("no access token")]
    MissingToken,
    /// The token was refused.
    #[error("invalid access token: {}", .0.as_str())]
    InvalidToken(TokenReason),
    /// The request is malformed.
    #[error("invalid request: {}", .0.as_str())]
    InvalidRequest(RequestReason),
    /// No node is routed at this path.
    #[error("unknown route")]
    UnknownRoute,
    /// The node does not allow this method (or it is TRACE/CONNECT). Carries the node's `Allow` value; `None`
    /// before a node is known (the default method list). Boxed so every `Result<_, ProxyError>` on the request path
    /// stays small.
    #[error("method not allowed")]
    MethodNotAllowed(Option<Box<HeaderValue>>),
    /// The agent has no outbound authorization to the node.
    #[error("no outbound authorization from the agent to the node")]
    NoEdge,
    /// The edge exists but the token lacks scopes; the value lists them space-separated.
    #[error("insufficient scope")]
    InsufficientScope(String),
    /// Request headers over the limit.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// Request target over the limit.
    #[error("request target too long")]
    UriTooLong,
    /// Request body over the limit.
    #[error("request body too large")]
    BodyTooLarge,
    /// The request body sent nothing for the body idle timeout.
    #[error("request body timed out")]
    BodyTimeout,
    /// The node's credential could not be opened or is unset.
    #[error("credential unavailable")]
    CredentialUnavailable,
    /// The token's user may not use this agent (permission) or this client application.
    #[error("user not authorized")]
    UserNotAuthorized,
    /// The authorization server refused to exchange the agent's token for the service (its error code).
    #[error("token exchange refused")]
    ExchangeRefused,
    /// The token endpoint (exchange or OAuth client credentials) could not be reached or answered nonsense.
    #[error("token endpoint unavailable")]
    TokenEndpointUnavailable,
    /// The upstream could not be reached (connect, TLS, reset).
    #[error("upstream unreachable")]
    UpstreamUnreachable,
    /// The upstream's (or token endpoint's) host resolved to, or is, an address its route may not reach
    /// (`upstream::AddressPolicy`); no connection was opened.
    #[error("upstream address blocked")]
    UpstreamIpBlocked,
    /// The upstream did not answer in time.
    #[error("upstream timeout")]
    UpstreamTimeout,
    /// The upstream of a route that injects a credential answered with a content coding (despite being asked for
    /// `identity`): a compressed body cannot be searched for an echoed credential, so it is not passed on.
    #[error("upstream response encoded")]
    UpstreamEncoded,
    /// The shared store has been unreachable too long for the topology in force to be trusted.
    #[error("topology too old")]
    TopologyStale,
    /// A broken invariant inside the proxy (a stage ran without its context). Never expected.
    #[error("internal error")]
    Internal,
}

// === impl ProxyError ===

impl ProxyError {
    /// The stable reason string logged and counted for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::MissingToken => "missing_token",
            ProxyError::InvalidToken(r) => r.as_str(),
            ProxyError::InvalidRequest(r) => r.as_str(),
            ProxyError::UnknownRoute => "unknown_route",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::NoEdge => "no_edge",
            ProxyError::InsufficientScope(_) => "insufficient_scope",
            ProxyError::HeadersTooLarge => "headers_too_large",
            ProxyError::UriTooLong => "uri_too_long",
            ProxyError::BodyTooLarge => "body_too_large",
            ProxyError::BodyTimeout => "body_idle_timeout",
            ProxyError::CredentialUnavailable => "credential_unavailable",
            ProxyError::UserNotAuthorized => "user_not_authorized",
            ProxyError::ExchangeRefused => "exchange_refused",
            ProxyError::TokenEndpointUnavailable => "token_endpoint_unavailable",
            ProxyError::UpstreamUnreachable => "upstream_unreachable",
            ProxyError::UpstreamIpBlocked => "upstream_ip_blocked",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamEncoded => "upstream_encoding_refused",
            ProxyError::Internal => "internal_error",
            ProxyError::TopologyStale => "topology_stale",
        }
    }

    /// Whether idguard itself refused the caller — its token (401) or its authorization (403) — as opposed to a
    /// malformed request, a limit, an unknown route, or a failure of the upstream or of idguard. These are what
    /// `idguard_denials_total` counts and what the console draws as a denied edge.
    pub fn is_denial(&self) -> bool {
        match self {
            ProxyError::MissingToken
            | ProxyError::InvalidToken(_)
            | ProxyError::NoEdge
            | ProxyError::InsufficientScope(_)
            | ProxyError::UserNotAuthorized
            | ProxyError::ExchangeRefused => true,
            ProxyError::InvalidRequest(_)
            | ProxyError::UnknownRoute
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::HeadersTooLarge
            | ProxyError::UriTooLong
            | ProxyError::BodyTooLarge
            | ProxyError::BodyTimeout
            | ProxyError::CredentialUnavailable
            | ProxyError::TokenEndpointUnavailable
            | ProxyError::UpstreamUnreachable
            | ProxyError::UpstreamIpBlocked
            | ProxyError::UpstreamTimeout
            | ProxyError::UpstreamEncoded
            | ProxyError::TopologyStale
            | ProxyError::Internal => false,
        }
    }

    /// The HTTP response for this error. Pure: no logging, no side effects.
    // Long by design: one exhaustive match, a row per variant and no `_ =>` arm, mirrored as the table in
    // docs/errors.md; splitting it would hide the table.
    pub fn into_response(self, request_id: &HeaderValue) -> Response<ProxyBody> {
        use StatusCode as S;
        let (status, kind, code, message, www_auth): (
            StatusCode,
            &str,
            &str,
            &str,
            Option<String>,
        ) = match &self {
            ProxyError::MissingToken => (
                S::UNAUTHORIZED,
                "authentication_error",
                "missing_token",
                "An idguard access token is required (Authorization: Bearer, x-api-key, api-key or x-goog-api-key).",
                Some(r#"Bearer realm="idguard""#.to_owned()),
            ),
            ProxyError::InvalidToken(_) => (
                S::UNAUTHORIZED,
                "authentication_error",
                "invalid_token",
                "The access token is invalid, expired, or not for this proxy.",
                Some(r#"Bearer realm="idguard", error="invalid_token""#.to_owned()),
            ),
            ProxyError::InvalidRequest(r) => (
                S::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                match r {
                    RequestReason::AmbiguousToken => "Send exactly one access token, in one place.",
                    RequestReason::TokenInQuery => {
                        "Access tokens are not accepted in the query string."
                    }
                    RequestReason::TokenInBody => {
                        "Access tokens are not accepted in the request body."
                    }
                    RequestReason::BadHeaderName => {
                        "A header name is not allowed (underscores are refused)."
                    }
                    RequestReason::BadHeaderValue => {
                        "A header value contains characters that are not allowed."
                    }
                    RequestReason::AbsoluteForm => {
                        "Absolute-form request targets are not accepted."
                    }
                    RequestReason::PathEscape => "The request path is not allowed.",
                    RequestReason::MalformedBody => "The request body is malformed or incomplete.",
                    RequestReason::DuplicateHost => "Send exactly one Host header.",
                    RequestReason::HostMismatch => "The host header must match :authority.",
                    RequestReason::AmbiguousContentType => {
                        "Send exactly one Content-Type, naming one media type."
                    }
                },
                None,
            ),
            ProxyError::UnknownRoute => (
                S::NOT_FOUND,
                "not_found_error",
                "unknown_route",
                "No route matches this path.",
                None,
            ),
            ProxyError::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                "This method is not allowed on this route.",
                None,
            ),
            ProxyError::NoEdge => (
                S::FORBIDDEN,
                "permission_error",
                "no_edge",
                "This agent is not authorized to call this node.",
                Some(r#"Bearer realm="idguard", error="insufficient_scope""#.to_owned()),
            ),
            ProxyError::InsufficientScope(scopes) => (
                S::FORBIDDEN,
                "permission_error",
                "insufficient_scope",
                "The access token lacks a scope this route requires.",
                Some(format!(
                    r#"Bearer realm="idguard", error="insufficient_scope", scope="{scopes}""#
                )),
            ),
            ProxyError::HeadersTooLarge => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "invalid_request_error",
                "headers_too_large",
                "Request headers are too large.",
                None,
            ),
            ProxyError::UriTooLong => (
                S::URI_TOO_LONG,
                "invalid_request_error",
                "uri_too_long",
                "The request target is too long.",
                None,
            ),
            ProxyError::BodyTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                "The request body is too large.",
                None,
            ),
            ProxyError::BodyTimeout => (
                S::REQUEST_TIMEOUT,
                "invalid_request_error",
                "body_idle_timeout",
                "The request body stopped arriving.",
                None,
            ),
            ProxyError::CredentialUnavailable => (
                S::BAD_GATEWAY,
                "api_error",
                "credential_unavailable",
                "The credential for this route is unavailable.",
                None,
            ),
            ProxyError::UserNotAuthorized => (
                S::FORBIDDEN,
                "permission_error",
                "user_not_authorized",
                "The signed-in user may not use this agent through this application.",
                Some(r#"Bearer realm="idguard", error="insufficient_scope""#.to_owned()),
            ),
            ProxyError::ExchangeRefused => (
                S::FORBIDDEN,
                "permission_error",
                "exchange_refused",
                "A token for this service could not be issued to this agent.",
                None,
            ),
            ProxyError::TokenEndpointUnavailable => (
                S::BAD_GATEWAY,
                "api_error",
                "token_endpoint_unavailable",
                "The token endpoint for this route could not be reached.",
                None,
            ),
            ProxyError::UpstreamUnreachable => (
                S::BAD_GATEWAY,
                "api_error",
                "upstream_unreachable",
                "The upstream could not be reached.",
                None,
            ),
            ProxyError::UpstreamIpBlocked => (
                S::BAD_GATEWAY,
                "api_error",
                "upstream_ip_blocked",
                "The upstream's address is not one this route may reach.",
                None,
            ),
            ProxyError::UpstreamTimeout => (
                S::GATEWAY_TIMEOUT,
                "api_error",
                "upstream_timeout",
                "The upstream did not answer in time.",
                None,
            ),
            ProxyError::UpstreamEncoded => (
                S::BAD_GATEWAY,
                "api_error",
                "upstream_encoding_refused",
                "The upstream answered with a compressed body, which this route does not pass on.",
                None,
            ),
            ProxyError::TopologyStale => (
                S::SERVICE_UNAVAILABLE,
                "api_error",
                "topology_stale",
                "The proxy cannot confirm its authorization data right now; try again shortly.",
                None,
            ),
            ProxyError::Internal => (
                S::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
                "The proxy failed unexpectedly.",
                None,
            ),
        };
        let mut resp = json_error(status, kind, code, message, request_id);
        if let Some(value) = www_auth.and_then(|v| HeaderValue::from_str(&v).ok()) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        if matches!(self, ProxyError::TopologyStale) {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let ProxyError::MethodNotAllowed(allow) = self {
            resp.headers_mut().insert(
                ALLOW,
                allow.map_or_else(
                    || HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                    |v| *v,
                ),
            );
        }
        resp
    }
}

/// A JSON error response in the OpenAI shape: `{"error":{"message","type","code","request_id"}}`.
pub(crate) fn json_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": {
            "message": message,
            "type": kind,
            "code": code,
            "request_id": request_id.to_str().unwrap_or_default(),
        }
    });
    let mut resp = Response::new(ProxyBody::Right(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
