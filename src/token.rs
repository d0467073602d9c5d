//! `idguard token`: an access token from idguard's identity service for shell use (`client_credentials`), with a
//! client secret read from standard input, a file or `IDGUARD_CLIENT_SECRET` — never the command line — or with
//! `private_key_jwt` from a private key file. Prints the token, or `--format json` with its expiry.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use idguard_config::Secret;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use zeroize::Zeroizing;

/// The variable a client secret is read from when no other source is named.
pub const ENV_CLIENT_SECRET: &str = "IDGUARD_CLIENT_SECRET";
/// How long a `private_key_jwt` assertion made here is valid: one request's worth.
const ASSERTION_LIFETIME: u64 = 60;
/// How long the token endpoint (and discovery) may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// `idguard token`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("credential").args(["secret_stdin", "secret_file", "key_file"])))]
pub struct TokenArgs {
    /// Where idguard's public listener is reached, e.g. http://127.0.0.1:8080; the token endpoint is
    /// URL/oauth2/token.
    #[arg(long, env = "IDGUARD_URL")]
    pub url: String,
    /// The agent's (or client's) id.
    #[arg(long, env = "IDGUARD_CLIENT_ID")]
    pub client_id: String,
    /// Read the client secret from standard input (its first line). Without --secret-stdin, --secret-file or
    /// --key-file, the secret is read from IDGUARD_CLIENT_SECRET.
    #[arg(long)]
    pub secret_stdin: bool,
    /// Read the client secret from this file (its first line).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// private_key_jwt: sign the client assertion with this PEM private key (EC P-256 for ES256, Ed25519 for
    /// EdDSA, RSA for RS256); its `aud` is the issuer from the server's discovery document.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The registered key's id, sent as the assertion's `kid` (optional: the server tries each key).
    #[arg(long, requires = "key_file")]
    pub key_id: Option<String>,
    /// The scopes to ask for, space-separated (default: all granted).
    #[arg(long)]
    pub scope: Option<String>,
    /// Trust these PEM CA certificates instead of the public web roots (an https URL with a private CA).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// `text`: the token alone on one line; `json`: `access_token`, `token_type`, `expires_in`, `expires_at`
    /// (Unix seconds) and `scope`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The token alone.
    Text,
    /// One JSON object with its expiry.
    Json,
}

/// How the client authenticates.
enum Credential {
    Secret(Secret),
    Key {
        key: Box<jsonwebtoken::EncodingKey>,
        alg: jsonwebtoken::Algorithm,
    },
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Runs `idguard token`: exit 0 with the token printed, 1 when the server refuses (its `error` and
/// `error_description` printed), 2 for a usage or connection problem.
///
/// # Errors
/// A credential that cannot be read, a bad URL, or no answer from the server.
pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/').to_owned();
    let uri: http::Uri = base
        .parse()
        .with_context(|| format!("--url {base:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        anyhow::bail!("--url {base:?}: must be http://HOST[:PORT] or https://HOST[:PORT]");
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        anyhow::bail!(
            "--url: must not carry credentials; the secret comes from stdin, a file or the environment"
        );
    }
    let credential = credential(&args)?;
    let client = http_client(args.ca_file.as_deref())?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(obtain(&client, &base, &args, credential))
}

/// The credential the arguments name.
fn credential(args: &TokenArgs) -> anyhow::Result<Credential> {
    if let Some(path) = &args.key_file {
        return key(path).map(|(key, alg)| Credential::Key {
            key: Box::new(key),
            alg,
        });
    }
    let secret = if args.secret_stdin {
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            anyhow::bail!(
                "--secret-stdin reads the client secret from standard input: pipe it in (`... < FILE`)"
            );
        }
        let mut text = Zeroizing::new(String::new());
        stdin
            .read_to_string(&mut text)
            .context("reading the client secret from standard input")?;
        first_line(&text, "standard input")?
    } else if let Some(path) = &args.secret_file {
        let text = Zeroizing::new(
            idguard_config::files::read_text_bounded(
                path,
                idguard_config::files::MAX_KEY_FILE_BYTES,
            )
            .with_context(|| format!("--secret-file {}", path.display()))?,
        );
        first_line(&text, &format!("--secret-file {}", path.display()))?
    } else {
        match std::env::var(ENV_CLIENT_SECRET) {
            Ok(v) if !v.is_empty() => Secret::new(v),
            _ => anyhow::bail!(
                "no client secret: give --secret-stdin, --secret-file FILE or set {ENV_CLIENT_SECRET} \
                 (or --key-file for private_key_jwt); a secret is never taken from the command line"
            ),
        }
    };
    Ok(Credential::Secret(secret))
}

fn first_line(text: &str, from: &str) -> anyhow::Result<Secret> {
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        anyhow::bail!("{from}: the first line is empty: it must hold the client secret");
    }
    Ok(Secret::new(line.to_owned()))
}

/// A PEM private key and the algorithm it fixes.
fn key(path: &Path) -> anyhow::Result<(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm)> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let pem = Zeroizing::new(
        idguard_config::files::read_text_bounded(path, idguard_config::files::MAX_KEY_FILE_BYTES)
            .with_context(|| format!("--key-file {}", path.display()))?,
    );
    if let Ok(k) = EncodingKey::from_ec_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::ES256));
    }
    if let Ok(k) = EncodingKey::from_ed_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::EdDSA));
    }
    if let Ok(k) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::RS256));
    }
    anyhow::bail!(
        "--key-file {}: not a PEM private key idguard can sign with (EC P-256, Ed25519 or RSA, PKCS#8 or the \
         traditional form)",
        path.display()
    )
}

fn http_client(ca_file: Option<&Path>) -> anyhow::Result<HttpClient> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots
                    .add(cert.with_context(|| format!("--ca-file {}", path.display()))?)
                    .with_context(|| format!("--ca-file {}", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("--ca-file {}: no PEM certificate in it", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

async fn obtain(
    client: &HttpClient,
    base: &str,
    args: &TokenArgs,
    credential: Credential,
) -> anyhow::Result<ExitCode> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &args.scope {
        form.append_pair("scope", scope);
    }
    let mut basic = None;
    match &credential {
        Credential::Secret(secret) => {
            // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded before base64.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = Zeroizing::new(format!("{}:{}", enc(&args.client_id), enc(secret.expose())));
            let mut value = http::HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            ))
            .context("the client id or secret is not usable in a header")?;
            value.set_sensitive(true);
            basic = Some(value);
        }
        Credential::Key { key, alg } => {
            let issuer = discover_issuer(client, base).await?;
            let assertion = assertion(&args.client_id, &issuer, key, *alg, args.key_id.clone())?;
            form.append_pair("client_id", &args.client_id);
            form.append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            );
            form.append_pair("client_assertion", &assertion);
        }
    }
    let body = Zeroizing::new(form.finish());
    let url = format!("{base}/oauth2/token");
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json");
    if let Some(value) = basic {
        req = req.header(http::header::AUTHORIZATION, value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.as_bytes().to_vec())))
        .with_context(|| format!("POST {url}"))?;
    let (status, bytes) = send(client, req, &format!("POST {url}")).await?;
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status != StatusCode::OK {
        eprintln!(
            "error: the token endpoint answered {status}: {}{}",
            answer["error"].as_str().unwrap_or("(no error code)"),
            answer["error_description"]
                .as_str()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    }
    let Some(token) = answer["access_token"].as_str() else {
        anyhow::bail!("the token endpoint answered 200 without an access_token");
    };
    match args.format {
        Format::Text => println!("{token}"),
        Format::Json => {
            let expires_in = answer["expires_in"].as_u64().unwrap_or(0);
            println!(
                "{}",
                serde_json::json!({
                    "access_token": token,
                    "token_type": answer["token_type"],
                    "expires_in": expires_in,
                    "expires_at": now() + expires_in,
                    "scope": answer["scope"],
                })
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The issuer named by the server's RFC 8414 metadata: the one audience a `private_key_jwt` assertion may name.
async fn discover_issuer(client: &HttpClient, base: &str) -> anyhow::Result<String> {
    let url = format!("{base}/.well-known/oauth-authorization-server");
    let req = Request::get(&url)
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("GET {url}"))?;
    let (status, bytes) = send(client, req, &format!("GET {url}")).await?;
    if status != StatusCode::OK {
        anyhow::bail!(
            "GET {url} answered {status}: is --url idguard's public listener, with [identity] set?"
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("GET {url}: the answer is not JSON"))?;
    meta["issuer"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("GET {url}: no issuer in the metadata"))
}

fn assertion(
    client_id: &str,
    issuer: &str,
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<String>,
) -> anyhow::Result<String> {
    let now = now();
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti)
        .map_err(|_| anyhow::anyhow!("no randomness for the assertion's jti"))?;
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": issuer,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": crate::secret::hex(&jti),
    });
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid;
    jsonwebtoken::encode(&header, &claims, key).context("signing the client assertion")
}

async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    what: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {}", chain(&e)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{what}: reading the answer"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {TIMEOUT:?}"))?
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
