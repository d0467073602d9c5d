//! The admin routes over a real embedded store and routing file, without a socket: failures inside idguard are
//! internal errors (500, generic body, nothing stored), apart from the store being unreachable; the one read of the
//! file per write decides what is file-managed.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use idguard_config::Loader;
use idguard_config::store::{Expect, Kind, Store, StoredObject, Write};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

use super::AdminApi;
use crate::auth::AdminToken;
use crate::error::Internal;
use crate::store::EmbeddedStore;

/// A stored object as the store answers it (for the decision tests of the modules below).
pub(super) fn stored_object(kind: Kind, id: &str, version: u64, body: Value) -> StoredObject {
    StoredObject {
        kind,
        id: id.into(),
        version,
        created_at: 0,
        updated_at: 0,
        body,
    }
}

/// A routing file and an embedded store in a fresh directory, and the admin routes over them.
struct Fixture {
    dir: PathBuf,
    store: Arc<EmbeddedStore>,
    router: axum::Router,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("idguard-api-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("idguard.toml");
        std::fs::write(&path, "[[agents]]\nid = \"file-agent\"\n").unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.join("data")).unwrap());
        let loader = Loader::new(&path, None).with_store(store.clone());
        let (snapshot, _) = loader.load(0).unwrap();
        let (_, snapshots) = tokio::sync::watch::channel(Arc::new(snapshot));
        let api = AdminApi::new(
            store.clone(),
            loader,
            snapshots,
            Arc::new(Notify::new()),
            AdminToken::from_secret("token"),
            [7u8; 32],
            idguard_config::Resolver::manual(),
            idguard_config::Clock::manual(),
        );
        Self {
            dir,
            store,
            router: api.router(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer token")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let cause = resp.extensions().get::<Internal>().cloned();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // An internal error carries its cause for the one log line, never in the body.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert!(cause.is_some(), "{method} {path}: no cause to log");
            assert_eq!(body["error"]["message"], "internal error");
        }
        (status, body)
    }

    /// Asserts that the request answers 500 `internal_error`.
    async fn assert_internal(&self, method: &str, path: &str, body: Option<Value>) {
        let (status, body) = self.call(method, path, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("internal_error")),
            "{method} {path}"
        );
    }

    fn put_raw(&self, kind: Kind, id: &str, body: Value) {
        let write = Write {
            kind,
            id: id.into(),
            expect: Expect::Any,
            body: Some(body),
        };
        self.store.commit(&[write], &[], None).unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_corrupt_stored_object_answers_500_on_reads_and_writes_and_nothing_is_stored() {
    let f = Fixture::new("corrupt");
    f.put_raw(Kind::Agent, "bad", json!({"id": "bad", "enabled": "yes"}));
    let version = f.store.version().unwrap();
    for (method, path, body) in [
        ("GET", "/admin/v1/agents", None),
        ("GET", "/admin/v1/agents/bad", None),
        ("GET", "/admin/v1/agents/bad/secrets", None),
        ("PATCH", "/admin/v1/agents/bad", Some(json!({"name": "x"}))),
        ("POST", "/admin/v1/agents", Some(json!({"name": "beside"}))),
        ("GET", "/admin/v1/agents/bad/topology", None),
    ] {
        f.assert_internal(method, path, body).await;
    }
    assert_eq!(f.store.version().unwrap(), version, "nothing was committed");
    // The file's objects stay readable: a get of one does not read the store.
    let (status, body) = f.call("GET", "/admin/v1/agents/file-agent", None).await;
    assert_eq!(
        (status, body["managed_by"].as_str()),
        (StatusCode::OK, Some("file"))
    );
}

#[tokio::test]
async fn an_unreadable_routing_file_answers_503_and_nothing_is_stored() {
    let f = Fixture::new("unreadable");
    let (status, _) = f
        .call(
            "PATCH",
            "/admin/v1/agents/file-agent",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "file-managed");
    let path = f.dir.join("idguard.toml");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    for (method, path, body) in [
        ("POST", "/admin/v1/agents", Some(json!({}))),
        ("GET", "/admin/v1/agents", None),
        ("DELETE", "/admin/v1/agents/file-agent", None),
    ] {
        let (status, body) = f.call(method, path, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("routing_file_unusable")
            ),
            "{method} {path}"
        );
    }
    assert_eq!(f.store.version().unwrap(), 0, "nothing was committed");
}
