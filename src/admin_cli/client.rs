//! The HTTP client of `idguard admin`: hyper-util's pooled client over rustls (for https admin listeners), one
//! bearer token, a deadline per request.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idguard_config::Secret;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use zeroize::Zeroizing;

use super::CliError;

/// One request: what [`super::plan`] builds from a command.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// The path under the base URL, segments already escaped, e.g. `/admin/v1/agents/agent-1`.
    pub(crate) path: String,
    /// Query parameters (escaped when sent).
    pub(crate) query: Vec<(&'static str, String)>,
    /// The JSON body; it may hold a secret read from standard input, so it is wiped when dropped.
    pub(crate) body: Option<Zeroizing<String>>,
    /// `If-Match` / `Idempotency-Key`.
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// An answer: status and body bytes.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// The admin API at one base URL, with one token.
pub(crate) struct Client {
    base: String,
    token: Secret,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    /// A client for `base` (`http://…` or `https://…`; a trailing `/` is ignored). `ca_file` replaces the public web
    /// roots for https.
    pub(crate) fn new(
        base: &str,
        token: Secret,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| CliError::Usage(format!("--url {base:?}: {e}")))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // A password in the URL would be printed with every connection error: the token goes elsewhere.
            return Err(CliError::Usage(
                "--url: must not carry credentials (user@ or user:password@); the token comes from \
                 IDGUARD_ADMIN_TOKEN, --token-file or --token-stdin"
                    .into(),
            ));
        }
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => {}
            _ => {
                return Err(CliError::Usage(format!(
                    "--url {base:?}: must be http://HOST[:PORT] or https://HOST[:PORT]"
                )));
            }
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", path.display())))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        CliError::Usage(format!("--ca-file {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        CliError::Usage(format!("--ca-file {}: {e}", path.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(CliError::Usage(format!(
                        "--ca-file {}: no PEM certificate in it",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::Usage(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base,
            token,
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// Sends `call`; an answer of any status is `Ok` (the caller decides), a failure to get one is
    /// [`CliError::Connection`].
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, CliError> {
        let mut url = format!("{}{}", self.base, call.path);
        if !call.query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &call.query {
                q.append_pair(k, v);
            }
            url.push('?');
            url.push_str(&q.finish());
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
            .map_err(|_| CliError::Usage("the admin token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(&url)
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::ACCEPT, "application/json");
        let body = match &call.body {
            Some(body) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                // No copy: the bytes are the wiped buffer itself, zeroed when the last reference goes.
                Bytes::from_owner(ZeroizingBytes(body.clone()))
            }
            None => Bytes::new(),
        };
        for (k, v) in &call.headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| CliError::Usage(format!("{} {url}: {e}", call.method)))?;
        let what = format!("{} {url}", call.method);
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| CliError::Connection(format!("{what}: {}", chain(&e))))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| CliError::Connection(format!("{what}: reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                CliError::Connection(format!("{what}: no answer within {:?}", self.timeout))
            })?
    }
}

/// A request body that is wiped when dropped, as the owner of the `Bytes` hyper sends.
struct ZeroizingBytes(Zeroizing<String>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// An error and its causes on one line (hyper's own message alone says only "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
