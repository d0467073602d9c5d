//! `idguard demo`: the whole flow on one machine with nothing to set up. It generates a demo LLM API key (sealed
//! under a throwaway master key) and a client secret for the demo agent, starts a mock OpenAI-style upstream that
//! reports whether it received exactly the stored key, and starts idguard in front of it with its identity
//! service on. The printed commands are what an agent does: get a token from idguard's token endpoint with its
//! client secret, then call the LLM through the proxy with that token; the answer shows the upstream saw the
//! stored key while the agent never held it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idguard_config::MasterKeys;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::serve::{Environment, Listeners, Options, Server};

const ISSUER: &str = "http://idguard.demo";
const AGENT: &str = "demo-agent";

/// Runs the demo until Ctrl-C (or, with `once`, until the agent's call has been made and checked).
///
/// # Errors
/// The demo's files or servers could not be set up.
pub async fn run(listen: SocketAddr, once: bool) -> anyhow::Result<ExitCode> {
    // Ctrl-C and SIGTERM are caught from the start (before anything is written), so that they stop the demo the
    // way its end does and its directory is removed; uncaught, they would kill the process and leave it.
    let stop = stop_signal().context("installing the signal handlers")?;
    let dir = std::env::temp_dir().join(format!("idguard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the demo directory")?;
    // Removed however the demo ends: `--once`, an error, or Ctrl-C/SIGTERM (which stop the server, so `run`
    // returns); the directory holds the demo's master key, sealed LLM key and admin token.
    let _cleanup = RemoveOnDrop(dir.clone());

    // The demo's stored LLM key: the caller never sees it; the mock upstream checks for it.
    let llm_key: Arc<str> = Arc::from(format!("sk-demo-{}", hex(&random::<12>())));
    let upstream = start_mock_upstream(llm_key.clone()).await?;

    let (config_path, data_dir, secret, master) = write_files(&dir, upstream, &llm_key)?;

    // Self-contained: no IDGUARD_* variable of the caller's shell (a Redis URL, an admin token) reaches the demo.
    let env = Environment {
        master_keys: Some(Arc::new(master)),
        ..Environment::default()
    };
    let built = Server::build(Options {
        config: config_path.clone(),
        data_dir: Some(data_dir),
        env,
    })?;
    let (public, admin) = built.addresses(Some(listen), None);
    let listeners = Listeners::bind(public, admin).await?;
    let addr = listeners.public.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    let console_link = built
        .console()
        .one_time_link(&format!("/console/agents/{AGENT}"))
        .map_err(|e| anyhow::anyhow!("making the console's sign-in link: {e}"))?;
    let server = built.run(listeners, stop);
    tokio::pin!(server);
    let token_url = format!("http://{addr}/oauth2/token");
    let url = format!("http://{addr}/llm/demo/v1/chat/completions");
    let body = r#"{"model":"demo","messages":[{"role":"user","content":"Hello"}]}"#;
    println!(
        "\nidguard demo is running. The proxy holds the LLM key; the agent holds only its client secret and tokens.\n"
    );
    println!("  config:   {}", config_path.display());
    println!("  upstream: http://{upstream} (mock, expects the stored key)");
    println!(
        "  console:  http://{admin_addr}{console_link}\n            (a one-time sign-in link, good for five minutes, to the demo agent's page)"
    );
    println!("\n1. The agent gets a token from idguard's identity service:\n");
    println!(
        "TOKEN=$(curl -s -u '{AGENT}:{secret}' -d grant_type=client_credentials {token_url} \\\n  | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n"
    );
    println!("2. It calls the LLM through the proxy with that token:\n");
    println!(
        "curl -s {url} \\\n  -H \"Authorization: Bearer $TOKEN\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{body}'\n"
    );
    if once {
        let answer = tokio::select! {
            result = &mut server => return result.map(|()| ExitCode::SUCCESS),
            answer = agent_flow(&token_url, &secret, &url, body) => answer?,
        };
        println!("{answer}");
        let json = answer.split_once('\n').map_or("", |(_, body)| body);
        let saw = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["idguard_demo"]["upstream_received_stored_key"].as_bool())
            .unwrap_or(false);
        return Ok(if saw {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    println!("Press Ctrl-C to stop.");
    server.await.map(|()| ExitCode::SUCCESS)
}

/// Completes on the first SIGINT or SIGTERM received after it was called (the handlers are installed at once).
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Removes its directory, and everything in it, when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "idguard demo: could not remove {}: {e}; delete it by hand (it holds the demo's keys)",
                self.0.display()
            );
        }
    }
}

/// Writes the demo's data directory (a fingerprint key) and routing file: the demo agent with a fresh client
/// secret (stored as its keyed hash), the LLM key sealed under a throwaway master key, and the LLM node at the
/// mock `upstream`. Returns the file, the data directory, the client secret and the master key.
fn write_files(
    dir: &std::path::Path,
    upstream: SocketAddr,
    llm_key: &str,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf, String, MasterKeys)> {
    // The agent's client secret, stored only as a keyed hash under the data directory's fingerprint key (written
    // here before idguard starts, as the admin API would have done when it issued the secret).
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).context("creating the demo data directory")?;
    let fingerprint = random::<32>();
    std::fs::write(
        data_dir.join("fingerprint.key"),
        URL_SAFE_NO_PAD.encode(fingerprint),
    )
    .context("writing the demo fingerprint key")?;
    let secret = format!("idgsec_{}", URL_SAFE_NO_PAD.encode(random::<32>()));
    let hash = idguard_config::hashes::KeyedHasher::new(&fingerprint).client_secret_hex(&secret);

    let master = MasterKeys::parse(&MasterKeys::generate_encoded())?;
    let sealed = master.seal("demo-llm-key", llm_key.as_bytes())?;
    let config = format!(
        r#"# Written by `idguard demo`.
[listeners]
admin = "127.0.0.1:0"

[identity]
issuer = "{ISSUER}"

[[agents]]
id = "{AGENT}"
name = "Demo agent"
secrets = [{{ id = "demo-secret", hash = "{hash}" }}]

[[credentials]]
id = "demo-llm-key"
kind = "llm"
sealed = "{sealed}"

[[llm]]
id = "demo"
upstream = "http://{upstream}"
style = "bearer"
credential = "demo-llm-key"

[[outbound]]
agent = "{AGENT}"
node = "demo"
"#
    );
    let config_path = dir.join("idguard.toml");
    std::fs::write(&config_path, config).context("writing the demo config")?;

    Ok((config_path, data_dir, secret, master))
}

/// What the printed commands do: a token by `client_secret_basic`, then the call.
async fn agent_flow(
    token_url: &str,
    secret: &str,
    url: &str,
    body: &'static str,
) -> anyhow::Result<String> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = Request::post(token_url)
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{AGENT}:{secret}"))),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))?;
    let resp = client.request(req).await?;
    let bytes = resp.into_body().collect().await?.to_bytes();
    let token = serde_json::from_slice::<serde_json::Value>(&bytes)?["access_token"]
        .as_str()
        .context("the token endpoint issued no token")?
        .to_owned();
    println!(
        "(token obtained: {} bytes, expires in 15 minutes)\n",
        token.len()
    );
    post(url, &token, body).await
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

async fn start_mock_upstream(expected: Arc<str>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let expected = expected.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let expected = expected.clone();
                        async move { Ok::<_, Infallible>(mock_answer(&req, &expected)) }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn mock_answer(req: &Request<hyper::body::Incoming>, expected: &str) -> Response<Full<Bytes>> {
    let auth: Vec<&str> = req
        .headers()
        .get_all("authorization")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let saw_key = auth.len() == 1 && auth[0] == format!("Bearer {expected}");
    let credential_headers = ["authorization", "x-api-key", "api-key", "x-goog-api-key"]
        .iter()
        .map(|h| req.headers().get_all(*h).iter().count())
        .sum::<usize>();
    let agent_token_seen = auth.iter().any(|a| a.matches('.').count() == 2);
    let body = serde_json::json!({
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": "demo",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": if saw_key { "Hello from the upstream: I received the stored API key, and only that." }
                       else { "The upstream did NOT receive the stored key." }}}],
        "idguard_demo": {
            "upstream_received_stored_key": saw_key,
            "credential_headers_received": credential_headers,
            "agent_token_reached_upstream": agent_token_seen,
            "path": req.uri().path(),
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

async fn post(url: &str, token: &str, body: &'static str) -> anyhow::Result<String> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(format!(
        "HTTP {status}\n{}",
        String::from_utf8_lossy(&bytes)
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
