//! The pooled upstream client: hyper-util's legacy client over rustls (webpki roots plus an optional extra CA
//! file), HTTP/1.1 and HTTP/2 by ALPN, `TCP_NODELAY`, a connect timeout, and idle-connection expiry. The same
//! connector fetches JWKS URLs.
//!
//! Every connection goes through `upstream/guard.rs`: host names are resolved once per connection and every address is
//! checked against the route's [`AddressPolicy`] before connecting. There is one pool per policy, so a connection
//! opened for a file-managed route is never reused by an API-managed one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use idguard_config::Resolver;
use idguard_config::files::{MAX_TLS_FILE_BYTES, read_bounded};
use idguard_config::snapshot::UpstreamSettings;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::body::{LimitedBody, ZeroizingBuf};
use crate::keys::{FetchFuture, JwksFetch};
use guard::GuardedConnector;

mod guard;

pub use guard::{AddressPolicy, UpstreamBlocked, blocked};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Time allowed for a JWKS fetch.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

type Connector = HttpsConnector<GuardedConnector>;

/// Building the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA file could not be read or parsed.
    #[error("upstream.extra_ca_file {path}: {message}")]
    ExtraCa {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("upstream TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The upstream client (cheap to clone: the pools are shared).
#[derive(Clone)]
pub struct UpstreamClient {
    forward: ByPolicy<Client<Connector, LimitedBody>>,
    form: ByPolicy<Client<Connector, Full<ZeroizingBuf>>>,
    // JWKS URLs come from the routing file only.
    jwks: Client<Connector, Empty<Bytes>>,
}

/// One client per [`AddressPolicy`].
#[derive(Clone)]
struct ByPolicy<C> {
    public_only: C,
    no_metadata: C,
}

/// Why a token endpoint gave no answer.
#[derive(Debug)]
pub enum TokenFailure {
    /// Its address is one the route may not reach.
    Blocked(UpstreamBlocked),
    /// Unreachable, a timeout, not JSON, a 5xx: described by status and shape only.
    Failed(String),
}

/// A token endpoint's answer to a form POST.
pub enum TokenAnswer {
    /// 200 with an `access_token`.
    Issued {
        /// The token.
        access_token: idguard_config::Secret,
        /// `expires_in`, if given.
        expires_in: Option<u64>,
    },
    /// A 4xx with an OAuth `error` code.
    Refused(String),
}

/// Largest token-endpoint answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// How long a token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

// === impl UpstreamClient ===

impl UpstreamClient {
    /// Builds the client from the snapshot's upstream settings, resolving host names with `resolver`.
    ///
    /// # Errors
    /// [`ClientError`] when the extra CA file is unusable.
    pub fn new(settings: &UpstreamSettings, resolver: &Resolver) -> Result<Self, ClientError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &settings.extra_ca_file {
            add_pem_roots(&mut roots, path)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = |policy| {
            let mut http = GuardedConnector::new(policy, resolver.clone());
            let tcp = http.tcp();
            tcp.enforce_http(false);
            tcp.set_nodelay(true);
            tcp.set_connect_timeout(Some(settings.connect_timeout));
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http)
        };
        let (public_only, no_metadata) = (
            connector(AddressPolicy::PublicOnly),
            connector(AddressPolicy::NoMetadataByName),
        );
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_timer(TokioTimer::new());
        // Redirects are never followed: the legacy client has no redirect support at all, by design.
        Ok(Self {
            forward: ByPolicy {
                public_only: builder.build(public_only.clone()),
                no_metadata: builder.build(no_metadata.clone()),
            },
            form: ByPolicy {
                public_only: builder.build(public_only),
                no_metadata: builder.build(no_metadata.clone()),
            },
            jwks: builder.build(no_metadata),
        })
    }

    /// The client that forwards requests (with streamed bodies) to upstreams under `policy`.
    pub fn forwarding(&self, policy: AddressPolicy) -> &Client<Connector, LimitedBody> {
        self.forward.get(policy)
    }

    /// POSTs `form` to a token endpoint reached under `policy`, with `client_secret_basic` credentials when
    /// given, and reads the OAuth answer. The token never appears in an error: a failure is described by status
    /// and shape only.
    ///
    /// # Errors
    /// [`TokenFailure::Blocked`] for an address `policy` refuses; otherwise why no answer could be had.
    pub async fn token_request(
        &self,
        url: &Uri,
        form: zeroize::Zeroizing<String>,
        basic: Option<(&str, &str)>,
        policy: AddressPolicy,
    ) -> Result<TokenAnswer, TokenFailure> {
        use base64::Engine;
        let mut req = Request::post(url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: each part form-urlencoded, then joined and base64-encoded.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(id),
                    enc(secret)
                ))
            );
            let mut value = http::HeaderValue::from_str(&value)
                .map_err(|_| TokenFailure::Failed("client id".to_owned()))?;
            value.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, value);
        }
        let req = req
            .body(Full::new(ZeroizingBuf::from(form)))
            .map_err(|e| TokenFailure::Failed(e.to_string()))?;
        let client = self.form.get(policy).clone();
        let fetch = async move {
            let resp = client.request(req).await.map_err(|e| match blocked(&e) {
                Some(b) => TokenFailure::Blocked(b.clone()),
                None => TokenFailure::Failed(format!("request failed: {e}")),
            })?;
            read_token_answer(resp).await.map_err(TokenFailure::Failed)
        };
        tokio::time::timeout(TOKEN_TIMEOUT, fetch)
            .await
            .map_err(|_| TokenFailure::Failed("timed out".to_owned()))?
    }
}

/// A token endpoint's answer, read within [`MAX_TOKEN_ANSWER`] bytes.
async fn read_token_answer(
    resp: http::Response<hyper::body::Incoming>,
) -> Result<TokenAnswer, String> {
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_TOKEN_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<u64>,
        error: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|_| format!("status {status}: the answer is not an OAuth JSON object"))?;
    match (status.is_success(), answer.access_token, answer.error) {
        (true, Some(token), _) if !token.is_empty() => Ok(TokenAnswer::Issued {
            access_token: idguard_config::Secret::new(token),
            expires_in: answer.expires_in,
        }),
        (false, _, Some(code)) if status.is_client_error() => Ok(TokenAnswer::Refused(
            code.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect(),
        )),
        _ => Err(format!("status {status}: no token in the answer")),
    }
}

// === impl ByPolicy ===

impl<C> ByPolicy<C> {
    fn get(&self, policy: AddressPolicy) -> &C {
        match policy {
            AddressPolicy::PublicOnly => &self.public_only,
            AddressPolicy::NoMetadataByName => &self.no_metadata,
        }
    }
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), ClientError> {
    let err = |message: String| ClientError::ExtraCa {
        path: path.display().to_string(),
        message,
    };
    let pem = read_bounded(path, MAX_TLS_FILE_BYTES).map_err(|e| err(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate found".into()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

impl JwksFetch for UpstreamClient {
    fn fetch(&self, url: &str) -> FetchFuture {
        let client = self.jwks.clone();
        let uri = url.parse::<Uri>();
        Box::pin(async move {
            let uri = uri.map_err(|e| e.to_string())?;
            let req = Request::get(uri)
                .header(http::header::ACCEPT, "application/json")
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let fetch = async {
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("status {}", resp.status()));
                }
                let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
                    .collect()
                    .await
                    .map_err(|e| format!("body: {e}"))?
                    .to_bytes();
                String::from_utf8(body.to_vec()).map_err(|_| "body is not UTF-8".to_owned())
            };
            tokio::time::timeout(JWKS_TIMEOUT, fetch)
                .await
                .map_err(|_| "timed out".to_owned())?
        })
    }
}
