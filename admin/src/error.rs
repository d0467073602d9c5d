//! The admin API's error type and its one exhaustive mapping to HTTP. Bodies name the field or object at fault
//! but never carry a secret value; store and audit failures get a generic body and are logged once.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idguard_config::ValidationError;

/// Everything that ends an admin request with an error.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No admin token, or the wrong one.
    #[error("an admin token is required")]
    Unauthorized,
    /// No such object.
    #[error("{kind} {id:?} does not exist")]
    NotFound {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
    },
    /// The object is declared in the routing file; the API does not change it.
    #[error("{kind} {id:?} is managed by the routing file; change it there")]
    FileManaged {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
    },
    /// An immutable field was given a new value.
    #[error("{0} cannot be changed once saved")]
    Immutable(&'static str),
    /// An object with this id exists already.
    #[error("{kind} {id:?} exists already")]
    Exists {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
    },
    /// A console quota is used up.
    #[error("{0}")]
    Quota(String),
    /// `If-Match` did not match the current version.
    #[error("the object changed since it was read (If-Match does not match)")]
    Precondition,
    /// An `Idempotency-Key` was reused for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    /// The change would make the topology invalid; nothing was stored.
    #[error("the change would make the topology invalid")]
    Invalid(Vec<ValidationError>),
    /// The request body is malformed (syntax, unknown field, wrong type); the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The audit log cannot be written, so the write was refused.
    #[error("the audit log cannot be written; the change was not applied")]
    AuditUnavailable,
    /// The store failed.
    #[error("the store is unavailable")]
    StoreUnavailable,
    /// No master key is configured, so a credential cannot be stored sealed.
    #[error("no master key is configured; credentials cannot be stored")]
    Sealed,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::FileManaged { .. } => (StatusCode::CONFLICT, "file_managed"),
            AdminError::Immutable(_) => (StatusCode::CONFLICT, "immutable_field"),
            AdminError::Exists { .. } => (StatusCode::CONFLICT, "exists"),
            AdminError::Quota(_) => (StatusCode::CONFLICT, "quota_exhausted"),
            AdminError::Precondition => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            AdminError::IdempotencyMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            AdminError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_topology"),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AdminError::AuditUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
            AdminError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            AdminError::Sealed => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
        };
        let fields: Vec<serde_json::Value> = match &self {
            AdminError::Invalid(errors) => errors
                .iter()
                .map(|e| serde_json::json!({"path": e.path, "message": e.message}))
                .collect(),
            _ => Vec::new(),
        };
        let mut body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        if !fields.is_empty() {
            body["error"]["fields"] = serde_json::Value::Array(fields);
        }
        let mut resp = (status, Json(body)).into_response();
        if matches!(self, AdminError::Unauthorized) {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer realm=\"idguard-admin\""),
            );
        }
        if matches!(
            self,
            AdminError::AuditUnavailable | AdminError::StoreUnavailable
        ) {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        resp
    }
}
