//! Mock upstreams that record every request (method, URI, every header, the body) and answer as told: a JSON
//! body, an SSE stream gated by the test, a redirect, an auth failure echoing the key, a delay, or a scripted
//! answer (any status and headers, a body whole or streamed piece by piece) — an upstream echoing what it was sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }
    /// Everything recorded, as one string, for canary searches.
    pub fn dump(&self) -> String {
        format!(
            "{} {}\n{:?}\n{}",
            self.method,
            self.uri,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

#[derive(Clone)]
pub enum Behavior {
    /// 200 with a small OpenAI-style JSON body.
    Ok,
    /// This status and body.
    Status(u16, String),
    /// 302 to this location.
    Redirect(String),
    /// SSE: the first event at once, the rest (`n` in all) after `release` is notified.
    Sse { events: usize, release: Arc<Notify> },
    /// Answer after this long.
    Delay(Duration),
    /// 200 echoing what arrived: the URI and the `authorization` header in `x-seen-uri` / `x-seen-auth` headers, and
    /// in a JSON body both as they are and base64-encoded — an upstream that hands back whatever it was sent.
    Reflect,
    /// This status, these headers, and this body in one piece (so with a `Content-Length`).
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// This status and these headers, then a streamed body (no `Content-Length`): each `Piece::Send` goes out as
    /// its own chunk, each `Piece::Wait` holds the stream until the test notifies it.
    Stream {
        status: u16,
        headers: Vec<(String, String)>,
        pieces: Vec<Piece>,
    },
}

/// One step of a [`Behavior::Stream`] body.
#[derive(Clone)]
pub enum Piece {
    Send(String),
    Wait(Arc<Notify>),
}

#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    behavior: Arc<Mutex<Behavior>>,
}

impl Mock {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(Some(config)).await
    }

    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mock = Mock {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            behavior: Arc::new(Mutex::new(Behavior::Ok)),
        };
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let m = mock.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let m = m.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let m = m.clone();
                        async move { Ok::<_, Infallible>(m.answer(req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                    }
                });
            }
        });
        mock
    }

    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap() = behavior;
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the mock received no request")
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<MockBody> {
        let (parts, body) = req.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        self.requests.lock().unwrap().push(Recorded {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers,
            body,
        });
        let seen_uri = parts.uri.to_string();
        let seen_auth = parts
            .headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let behavior = self.behavior.lock().unwrap().clone();
        match behavior {
            Behavior::Ok => json(
                200,
                r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#,
            ),
            Behavior::Status(status, body) => json(status, &body),
            Behavior::Redirect(location) => {
                let mut r = json(302, "{}");
                r.headers_mut()
                    .insert("location", location.parse().unwrap());
                r
            }
            Behavior::Delay(d) => {
                tokio::time::sleep(d).await;
                json(200, "{}")
            }
            Behavior::Sse { events, release } => {
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from("data: event-1\n\n")).await;
                    release.notified().await;
                    for i in 2..=events {
                        let _ = tx.send(Bytes::from(format!("data: event-{i}\n\n"))).await;
                    }
                });
                let mut r = Response::new(MockBody::Stream(rx));
                r.headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                r.headers_mut()
                    .insert("set-cookie", "session=upstream".parse().unwrap());
                r
            }
            Behavior::Reflect => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                let body = serde_json::json!({
                    "uri": seen_uri,
                    "authorization": seen_auth,
                    "uri_b64": b64.encode(&seen_uri),
                    "authorization_b64": b64.encode(&seen_auth),
                });
                let headers = [
                    ("x-seen-uri".to_owned(), seen_uri),
                    ("x-seen-auth".to_owned(), seen_auth),
                ];
                with_headers(json(200, &body.to_string()), &headers)
            }
            Behavior::Full {
                status,
                headers,
                body,
            } => with_headers(json(status, &body), &headers),
            Behavior::Stream {
                status,
                headers,
                pieces,
            } => {
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(async move {
                    for piece in pieces {
                        match piece {
                            Piece::Send(text) => {
                                let _ = tx.send(Bytes::from(text)).await;
                            }
                            Piece::Wait(gate) => gate.notified().await,
                        }
                    }
                });
                let mut r = Response::new(MockBody::Stream(rx));
                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                with_headers(r, &headers)
            }
        }
    }
}

/// Adds `headers` (appended, so a name may repeat).
fn with_headers(mut r: Response<MockBody>, headers: &[(String, String)]) -> Response<MockBody> {
    for (k, v) in headers {
        r.headers_mut().append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

fn json(status: u16, body: &str) -> Response<MockBody> {
    let mut r = Response::new(MockBody::Full(Some(Bytes::from(body.to_owned()))));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

pub enum MockBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    // A whole body has a known length, so hyper sends `Content-Length` for it.
    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            MockBody::Full(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            MockBody::Stream(_) => http_body::SizeHint::default(),
        }
    }
}
