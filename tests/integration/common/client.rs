//! HTTP clients for tests: a hyper-util client for well-formed requests, and raw TCP for malformed ones.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub type Answer = (u16, HeaderMap, String);

pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(req: Request<Full<Bytes>>) -> Answer {
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::new())).unwrap()).await
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut b = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

/// POSTs a form body (`application/x-www-form-urlencoded`).
pub async fn form(url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut b = Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends raw bytes and returns whatever comes back before the server closes or 3 s pass.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The HTTP client the `oauth2` crate is given: its request sent as is, the answer handed back as is.
pub async fn oauth2_http(req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, std::io::Error> {
    let (parts, body) = req.into_parts();
    let mut b = Request::builder()
        .method(parts.method.as_str())
        .uri(parts.uri.to_string());
    for (k, v) in &parts.headers {
        b = b.header(k.as_str(), v.as_bytes());
    }
    let (status, headers, body) = send(b.body(Full::new(Bytes::from(body))).unwrap()).await;
    let mut resp = oauth2::HttpResponse::new(body.into_bytes());
    *resp.status_mut() = oauth2::http::StatusCode::from_u16(status).unwrap();
    for (k, v) in &headers {
        resp.headers_mut().insert(
            oauth2::http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            oauth2::http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    Ok(resp)
}
