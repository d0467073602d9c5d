//! `idguard demo`: the whole flow on one machine with nothing to set up. It generates a signing key for a demo
//! issuer, a demo LLM API key (sealed under a throwaway master key), starts a mock OpenAI-style upstream that
//! reports whether it received exactly the stored key, starts the proxy in front of it, and mints a token for
//! the demo agent. The printed curl goes through the proxy with the agent's token; the answer shows the
//! upstream saw the stored key while the caller never held it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idguard_config::{Loader, MasterKeys};
use rand::RngCore;
use tokio::net::TcpListener;

const ISSUER: &str = "https://issuer.idguard.demo";
const AUDIENCE: &str = "idguard-demo-proxy";
const AGENT: &str = "demo-agent";

pub(crate) async fn run(listen: SocketAddr, once: bool) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("idguard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the demo directory")?;

    // The demo's stored LLM key: the caller never sees it; the mock upstream checks for it.
    let mut raw = [0u8; 12];
    rand::rng().fill_bytes(&mut raw);
    let llm_key: Arc<str> = Arc::from(format!("sk-demo-{}", hex(&raw)));
    let upstream = start_mock_upstream(llm_key.clone()).await?;

    // A signing key for the demo issuer; its public half goes in the JWKS the proxy trusts.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let point = pair.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "demo-1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).context("writing the demo JWKS")?;

    let master = MasterKeys::parse(&MasterKeys::generate_encoded())?;
    let sealed = master.seal("demo-llm-key", llm_key.as_bytes())?;
    let config = format!(
        r#"# Written by `idguard demo`.
[listeners]
admin = "127.0.0.1:0"

[[issuers]]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks_file = "jwks.json"

[[agents]]
id = "{AGENT}"
name = "Demo agent"

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

    let token = mint_token(pkcs8.as_ref())?;
    let loader = Loader::new(&config_path, Some(Arc::new(master)));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let data_dir = dir.join("data");
    let server = crate::serve_with(loader, &data_dir, Some(listen), None, Some(ready_tx));
    tokio::pin!(server);
    let addr = tokio::select! {
        result = &mut server => return result,
        addr = ready_rx => addr.context("the proxy did not start")?,
    };
    let url = format!("http://{addr}/llm/demo/v1/chat/completions");
    let body = r#"{"model":"demo","messages":[{"role":"user","content":"Hello"}]}"#;
    println!(
        "\nidguard demo is running. The proxy holds the LLM key; the agent holds only its own token.\n"
    );
    println!("  config:   {}", config_path.display());
    println!("  upstream: http://{upstream} (mock, expects the stored key)");
    println!("\nCall the LLM through the proxy as the demo agent:\n");
    println!(
        "curl -s {url} \\\n  -H 'Authorization: Bearer {token}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{body}'\n"
    );
    if once {
        let answer = tokio::select! {
            result = &mut server => return result,
            answer = post(&url, &token, body) => answer?,
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
    server.await
}

fn mint_token(pkcs8: &[u8]) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("demo-1".into());
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": AGENT, "client_id": AGENT,
        "iat": now, "exp": now + 3600, "jti": format!("demo-{now}"), "scope": "agent.access",
    });
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(pkcs8),
    )?)
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
