//! One typed client for the admin API: the admin token, JSON in and out, `If-Match` and `Idempotency-Key`, so a
//! test says only what it sends and what it checks.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use serde_json::Value;

use super::client::{Answer, bearer, client, send};
use super::harness::{ADMIN_TOKEN, Harness};

/// Status, headers, and the body as JSON (`Null` when it is not JSON).
pub type Reply = (u16, HeaderMap, Value);

/// Calls one admin listener with one token.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    headers: Vec<(String, String)>,
}

impl AdminClient {
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        Self {
            base: format!("http://{addr}"),
            token: token.to_owned(),
            headers: vec![],
        }
    }

    /// The admin API of an in-process harness, with its admin token.
    pub fn of(h: &Harness) -> Self {
        Self::new(h.admin, ADMIN_TOKEN)
    }

    /// The token this client presents.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// This client, also sending `name: value`.
    pub fn header(&self, name: &str, value: &str) -> Self {
        let mut c = self.clone();
        c.headers.push((name.to_owned(), value.to_owned()));
        c
    }

    /// This client, also sending `If-Match: "version"`.
    pub fn if_match(&self, version: u64) -> Self {
        self.header("if-match", &format!("\"{version}\""))
    }

    /// This client, also sending `Idempotency-Key: key`.
    pub fn idempotency_key(&self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    /// Every item of the list at `path`, following `next_cursor` page by page (1,000 a page); panics on an error.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{path}?limit=1000&cursor={c}"),
                None => format!("{path}?limit=1000"),
            };
            let (status, _, page) = self.get(&page_path).await;
            assert_eq!(status, 200, "{page_path}: {page}");
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    /// A `POST` with an empty body (creating a secret).
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.call("POST", path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// Any method, with `body` as JSON (an empty body for `None`).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, headers, text) = self.send_text(method, path, &body).await;
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// Sends `body` exactly as given (malformed JSON, oversized bodies); the answer's body as text.
    pub async fn send_text(&self, method: &str, path: &str, body: &str) -> Answer {
        send(self.request(method, path, body)).await
    }

    /// A `POST` that may go unanswered (the server is being killed): `None` when it is not answered within
    /// `patience`.
    pub async fn try_post(&self, path: &str, body: Value, patience: Duration) -> Option<Reply> {
        self.try_call("POST", path, Some(body), patience).await
    }

    /// Any call that may go unanswered (the server is stopping or being killed): `None` when the connection is
    /// refused or reset, or no answer comes within `patience`.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        patience: Duration,
    ) -> Option<Reply> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = self.request(method, path, &body);
        let resp = tokio::time::timeout(patience, client().request(req))
            .await
            .ok()?
            .ok()?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    fn request(&self, method: &str, path: &str, body: &str) -> hyper::Request<Full<Bytes>> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", bearer(&self.token))
            .header("content-type", "application/json");
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }
}
