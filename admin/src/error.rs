//! The admin API's error type and its one exhaustive mapping to HTTP. Bodies name the field or object at fault
//! but never carry a secret value; store, audit and internal failures get a generic body and are logged once: store
//! and audit failures where the store's error is converted, internal ones by [`log_internal_errors`], which reads
//! the cause the response carries in its extensions.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idguard_config::ValidationError;
use idguard_config::store::error_class;

/// Everything that ends an admin request with an error.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No admin token, or the wrong one.
    #[error("an admin token is required")]
    Unauthorized,
    /// The caller is authenticated but their role is below what the operation needs.
    #[error("{what} requires the {role} role")]
    Forbidden {
        /// The operation (`POST /admin/v1/agents`, or a description), never a value from the request.
        what: String,
        /// The role it needs.
        role: crate::api::Role,
    },
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
    /// The object is in use (by agents, nodes); the message names them and says how to proceed.
    #[error("{kind} {id:?} is in use by {by}; {hint}")]
    InUse {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
        /// What uses it, named: `agents a, b`.
        by: String,
        /// How to proceed.
        hint: &'static str,
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
    /// The store cannot be reached (or refused the operation): retryable.
    #[error("the store is unavailable")]
    StoreUnavailable,
    /// idguard itself failed: not the client's fault, and not the store being down. The body is generic; the
    /// cause is logged once.
    #[error("internal error")]
    Internal(Internal),
    /// The store is not the one this replica served (it lost its data, or is another one): nothing is read from
    /// or written to it until an operator reseeds or accepts it.
    #[error(
        "the store is not the one this replica served ({}); restore it with POST /admin/v1/store/reseed or adopt it \
         with POST /admin/v1/store/accept",
        .0.as_str()
    )]
    StoreMismatch(idguard_config::store::StoreMismatch),
    /// A store reseed or accept was refused; the message says why.
    #[error("{0}")]
    RecoveryRefused(&'static str),
    /// No master key is configured, so a credential cannot be stored sealed.
    #[error("no master key is configured; credentials cannot be stored")]
    Sealed,
    /// The routing file cannot be read or parsed just now (an editor saving it in place, or a broken edit): no
    /// write can be judged against it, so nothing was changed. The cause is logged once (as `config_unreadable`,
    /// by [`log_internal_errors`]), never sent.
    #[error(
        "the routing file cannot be read or parsed right now; nothing was changed, retry once it is saved"
    )]
    RoutingFileUnusable(String),
}

/// What went wrong inside idguard. Messages carry kinds, ids and error classes, never a stored or submitted value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Internal {
    /// A stored record, or a stored object's body, does not decode as its type: `kind/id: error class`.
    #[error("a stored object is corrupt: {0}")]
    Corrupt(String),
    /// The routing file cannot be read, parsed or (for a read that builds the topology) validated.
    #[error("the routing file cannot be used: {0}")]
    Config(String),
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The system's random number generator failed.
    #[error("no randomness available")]
    Randomness,
    /// A blocking task panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Task(String),
    /// A write ran outside an authenticated request, so its audit records would have no author.
    #[error("a write has no authenticated caller")]
    NoCaller,
    /// A value of ours could not be serialized.
    #[error("serialization failed: {0}")]
    Serialize(String),
}

// === impl Internal ===

impl Internal {
    /// The `reason` field of its log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Internal::Corrupt(_) => "stored_object_corrupt",
            Internal::Config(_) => "config_unreadable",
            Internal::Hashing(_) => "hashing_failed",
            Internal::Randomness => "randomness_failed",
            Internal::Task(_) => "task_failed",
            Internal::NoCaller => "no_caller",
            Internal::Serialize(_) => "serialization_failed",
        }
    }
}

// === impl AdminError ===

impl AdminError {
    /// The stored object `record` (`kind/id`) does not deserialize as its raw type; `message` is the deserializer's,
    /// of which only the class is kept (see [`error_class`]).
    pub fn corrupt(record: &str, message: &str) -> Self {
        AdminError::Internal(Internal::Corrupt(format!(
            "{record}: {}",
            error_class(message)
        )))
    }
}

impl From<Internal> for AdminError {
    fn from(cause: Internal) -> Self {
        AdminError::Internal(cause)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            AdminError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::FileManaged { .. } => (StatusCode::CONFLICT, "file_managed"),
            AdminError::Immutable(_) => (StatusCode::CONFLICT, "immutable_field"),
            AdminError::Exists { .. } => (StatusCode::CONFLICT, "exists"),
            AdminError::InUse { .. } => (StatusCode::CONFLICT, "in_use"),
            AdminError::Quota(_) => (StatusCode::CONFLICT, "quota_exhausted"),
            AdminError::Precondition => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            AdminError::IdempotencyMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            AdminError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_topology"),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AdminError::AuditUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
            AdminError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            AdminError::Sealed => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
            AdminError::StoreMismatch(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_identity_mismatch")
            }
            AdminError::RecoveryRefused(_) => (StatusCode::CONFLICT, "store_recovery_refused"),
            AdminError::RoutingFileUnusable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "routing_file_unusable")
            }
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
        if matches!(self, AdminError::RoutingFileUnusable(_)) {
            // An editor's save takes moments; a broken edit waits for its author either way.
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        // The cause rides along for `log_internal_errors`; extensions never reach the client.
        if let AdminError::RoutingFileUnusable(cause) = &self {
            resp.extensions_mut()
                .insert(Internal::Config(cause.clone()));
        }
        if let AdminError::Internal(cause) = self {
            resp.extensions_mut().insert(cause);
        }
        resp
    }
}

/// Logs the cause of an internal error once, with the request's method and path, after the handler has answered.
/// Installed on the admin API's routes.
pub async fn log_internal_errors(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    if let Some(cause) = resp.extensions().get::<Internal>() {
        tracing::error!(reason = cause.reason(), %method, %path, "{cause}");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: AdminError) -> (StatusCode, serde_json::Value, Response) {
        let resp = e.into_response();
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let resp = Response::from_parts(parts, axum::body::Body::empty());
        (status, serde_json::from_slice(&bytes).unwrap(), resp)
    }

    #[tokio::test]
    async fn internal_errors_are_500_with_a_generic_body_and_the_cause_for_the_log_only() {
        let cause = "agent/a: invalid type";
        let (status, body, resp) = answer(Internal::Corrupt(cause.into()).into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "internal_error", "message": "internal error"}})
        );
        assert!(resp.headers().get("retry-after").is_none());
        let logged = resp.extensions().get::<Internal>().unwrap();
        assert_eq!(logged.reason(), "stored_object_corrupt");
        assert!(logged.to_string().contains(cause));
        // The store being unreachable stays a retryable 503, with no cause attached.
        let (status, body, resp) = answer(AdminError::StoreUnavailable).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
        );
        assert!(resp.headers().get("retry-after").is_some());
        assert!(resp.extensions().get::<Internal>().is_none());
    }

    #[test]
    fn a_corrupt_object_keeps_only_the_class_of_its_error() {
        let e = AdminError::corrupt(
            "user/u",
            "invalid type: string \"$argon2id$v=19$secret\", expected a map",
        );
        assert!(
            matches!(e, AdminError::Internal(Internal::Corrupt(ref why)) if why == "user/u: invalid type"),
            "{e:?}"
        );
        let e = AdminError::corrupt("agent/a", "missing field `id`");
        assert!(
            matches!(e, AdminError::Internal(Internal::Corrupt(ref why)) if why == "agent/a: missing field `id`")
        );
    }
}
