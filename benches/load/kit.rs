//! The load benchmark's helpers, one binary (`cargo build --release --example load-kit`), driven by
//! `benches/load/run`:
//!
//! - `upstream --listen ADDR`: a fast local upstream: `/v1/chat/completions` (~1 KB OpenAI-style JSON),
//!   `/v1/stream` (200 SSE events at once), `/v1/tick?n=N&ms=M` (N events M ms apart, each stamped with its send
//!   time), `/v1/big` (1 MiB).
//! - `setup --dir D --upstream ADDR --port P`: issuer keys and JWKS, a sealed stored key, the idguard config (and
//!   one with the verified-token cache off), the master key, and ES256 / RS256 agent tokens.
//! - `sse-probe --url URL [--token T] [--runs N]`: time to the first event, and each event's delay from its send
//!   stamp, as JSON.
//! - `idle --addr ADDR --conns N --token T --path P --hold S`: open N keep-alive connections, make one request on
//!   each, and hold them idle for S seconds.
//! - `propagate --admin URL --admin-token T --probe URL[,URL...] --token T --changes N`: the fleet scenario's change
//!   propagation (`benches/load/fleet`): N times, grant and then withdraw `bench-agent`'s outbound authorization to
//!   the API-made node `probe` through one replica's admin API, and time, on every other replica, how long after the
//!   write was sent the proxied request `GET <probe URL>` starts (200) or stops being allowed; as JSON.
//! - `probe --url URL --token T --secs S`: one connection's requests back to back for S seconds: how many, how many
//!   were not 2xx or failed, and the longest time between two 2xx answers; as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

#[path = "../../tests/integration/common/keys.rs"]
mod keys;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("upstream") => rt.block_on(upstream(arg(&args, "--listen").unwrap().parse().unwrap())),
        Some("setup") => setup(
            PathBuf::from(arg(&args, "--dir").unwrap()),
            &arg(&args, "--upstream").unwrap(),
            &arg(&args, "--port").unwrap(),
        ),
        Some("sse-probe") => rt.block_on(sse_probe(
            &arg(&args, "--url").unwrap(),
            arg(&args, "--token"),
            arg(&args, "--runs").map_or(5, |r| r.parse().unwrap()),
        )),
        Some("idle") => rt.block_on(idle(
            arg(&args, "--addr").unwrap().parse().unwrap(),
            arg(&args, "--conns").unwrap().parse().unwrap(),
            &arg(&args, "--token").unwrap_or_default(),
            &arg(&args, "--path").unwrap(),
            arg(&args, "--hold").unwrap().parse().unwrap(),
        )),
        Some("propagate") => rt.block_on(propagate(
            &arg(&args, "--admin").unwrap(),
            &arg(&args, "--admin-token").unwrap(),
            &arg(&args, "--probe").unwrap(),
            &arg(&args, "--token").unwrap(),
            arg(&args, "--changes").map_or(50, |r| r.parse().unwrap()),
        )),
        Some("probe") => rt.block_on(probe(
            &arg(&args, "--url").unwrap(),
            &arg(&args, "--token").unwrap(),
            arg(&args, "--secs").unwrap().parse().unwrap(),
        )),
        _ => {
            eprintln!("usage: load-kit upstream|setup|sse-probe|idle|propagate|probe ...");
            std::process::exit(2);
        }
    }
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

type UpBody = http_body_util::Either<Full<Bytes>, StreamBody<tokio_stream_shim::Rx>>;

/// A tiny channel-backed stream, so the kit needs no extra crate.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use hyper::body::Frame;

    pub struct Rx(pub tokio::sync::mpsc::Receiver<Bytes>);

    impl futures_util::Stream for Rx {
        type Item = Result<Frame<Bytes>, std::convert::Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
        }
    }
}

async fn upstream(addr: SocketAddr) {
    let chat = Bytes::from(format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":21,"completion_tokens":180,"total_tokens":201}}}}"#,
        "All work and no play makes a benchmark dull. ".repeat(15)
    ));
    let stream: Bytes = (0..200)
        .map(|i| format!("data: {{\"id\":\"chatcmpl-bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}}}}]}}\n\n"))
        .collect::<String>()
        .into();
    let big = Bytes::from(vec![b'x'; 1024 * 1024]);
    let listener = TcpListener::bind(addr).await.unwrap();
    loop {
        let (stream_sock, _) = listener.accept().await.unwrap();
        let _ = stream_sock.set_nodelay(true);
        let (chat, stream, big) = (chat.clone(), stream.clone(), big.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (chat, stream, big) = (chat.clone(), stream.clone(), big.clone());
                async move {
                    let path = req.uri().path().to_owned();
                    let query = req.uri().query().unwrap_or("").to_owned();
                    // Drain the request body so large uploads are really transferred.
                    let _ = req.into_body().collect().await;
                    let (ctype, body): (&str, UpBody) = if path.ends_with("/stream") {
                        (
                            "text/event-stream",
                            http_body_util::Either::Left(Full::new(stream)),
                        )
                    } else if path.ends_with("/big") {
                        (
                            "application/octet-stream",
                            http_body_util::Either::Left(Full::new(big)),
                        )
                    } else if path.ends_with("/tick") {
                        let get = |k: &str, d: u64| {
                            query
                                .split('&')
                                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(d)
                        };
                        let (n, ms) = (get("n", 50), get("ms", 10));
                        let (tx, rx) = tokio::sync::mpsc::channel(4);
                        tokio::spawn(async move {
                            for i in 0..n {
                                let event =
                                    format!("data: {{\"i\":{i},\"sent_us\":{}}}\n\n", micros_now());
                                if tx.send(Bytes::from(event)).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                        });
                        (
                            "text/event-stream",
                            http_body_util::Either::Right(StreamBody::new(tokio_stream_shim::Rx(
                                rx,
                            ))),
                        )
                    } else {
                        (
                            "application/json",
                            http_body_util::Either::Left(Full::new(chat)),
                        )
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", ctype)
                            .body(body)
                            .unwrap(),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream_sock), svc)
                .await;
        });
    }
}

fn setup(dir: PathBuf, upstream: &str, port: &str) {
    std::fs::create_dir_all(&dir).unwrap();
    let es = keys::SigningKey::es256("bench-es");
    let rs = keys::SigningKey::rs256("bench-rs");
    std::fs::write(dir.join("jwks.json"), keys::jwks(&[&es, &rs])).unwrap();
    let master = idguard_config::MasterKeys::generate_encoded();
    std::fs::write(dir.join("master.key"), master.as_str()).unwrap();
    let keys = idguard_config::MasterKeys::parse(&master).unwrap();
    let sealed = keys
        .seal("bench-key", b"sk-bench-upstream-key-0123456789")
        .unwrap();
    let config = |cache: usize| {
        format!(
            r#"[listeners]
public = "127.0.0.1:{port}"
admin = "127.0.0.1:0"

[tokens]
cache_entries = {cache}

[limits]
max_body_bytes = 16777216

[reload]
watch_interval_ms = 0

[[issuers]]
issuer = "{iss}"
audience = "{aud}"
jwks_file = "jwks.json"

[[agents]]
id = "bench-agent"

[[credentials]]
id = "bench-key"
kind = "llm"
sealed = "{sealed}"

[[llm]]
id = "bench"
upstream = "http://{upstream}"
style = "bearer"
credential = "bench-key"

[[outbound]]
agent = "bench-agent"
node = "bench"

# Scenario (d): the same upstream as an enterprise service, reached with an exchanged token.
[identity]
issuer = "http://127.0.0.1:{port}"

[[enterprise]]
id = "benchsvc"
audience = "urn:bench:svc"
upstream = "http://{upstream}"
permissions = [{{ scope = "svc.read" }}]

[[outbound]]
agent = "bench-agent"
node = "benchsvc"
scopes = ["svc.read"]
"#,
            iss = keys::ISSUER,
            aud = keys::AUDIENCE,
        )
    };
    // The agent's client secret for the identity service, hashed under a fingerprint key written into the data
    // directory before idguard starts.
    let fingerprint = [11u8; 32];
    let data = dir.join("idguard-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("fingerprint.key"),
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            fingerprint,
        ),
    )
    .unwrap();
    let secret = "bench-agent-client-secret-0123456789";
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &fingerprint);
    let hash: String = aws_lc_rs::hmac::sign(&key, format!("client-secret\n{secret}").as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(dir.join("client-secret"), secret).unwrap();
    let config = |cache: usize| {
        config(cache).replace(
            "[[agents]]\nid = \"bench-agent\"\n",
            &format!("[[agents]]\nid = \"bench-agent\"\nsecrets = [{{ id = \"b1\", hash = \"{hash}\" }}]\n"),
        )
    };
    std::fs::write(dir.join("idguard.toml"), config(100_000)).unwrap();
    std::fs::write(dir.join("idguard-nocache.toml"), config(0)).unwrap();
    let mut claims = keys::claims("bench-agent", "llm.use");
    claims["exp"] = serde_json::json!(keys::now() + 24 * 3600);
    std::fs::write(dir.join("token-es256"), es.token(&claims)).unwrap();
    std::fs::write(dir.join("token-rs256"), rs.token(&claims)).unwrap();
}

async fn sse_probe(url: &str, token: Option<String>, runs: usize) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut first = Vec::new();
    let mut delays = Vec::new();
    for _ in 0..runs {
        let mut req = Request::get(url);
        if let Some(t) = &token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let start = Instant::now();
        let resp = client
            .request(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut buf = String::new();
        let mut got_first = false;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.unwrap().into_data() else {
                continue;
            };
            let arrived = micros_now();
            if !got_first {
                first.push(start.elapsed().as_micros());
                got_first = true;
            }
            buf.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if let Some(sent) = event
                    .split("\"sent_us\":")
                    .nth(1)
                    .and_then(|s| s.trim_end_matches(['}', '\n']).parse::<u128>().ok())
                {
                    delays.push(arrived.saturating_sub(sent));
                }
            }
        }
    }
    first.sort_unstable();
    delays.sort_unstable();
    let pct = |v: &[u128], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"first_event_p50_us\":{},\"event_delay_p50_us\":{},\"event_delay_p99_us\":{},\"events\":{}}}",
        pct(&first, 0.5),
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        delays.len()
    );
}

async fn idle(addr: SocketAddr, conns: usize, token: &str, path: &str, hold: u64) {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut held = Vec::with_capacity(conns);
    let mut failed = 0;
    for _ in 0..conns {
        match TcpStream::connect(addr).await {
            Ok(mut s) => {
                s.write_all(request.as_bytes()).await.unwrap();
                let mut buf = vec![0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
                held.push(s);
            }
            Err(_) => failed += 1,
        }
    }
    println!("{{\"open\":{},\"failed\":{failed}}}", held.len());
    tokio::time::sleep(Duration::from_secs(hold)).await;
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn status(client: &Client, method: &str, url: &str, token: &str, body: &str) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read to the end, so the connection is reused.
            let _ = resp.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

/// Polls `url` until `done(status)`, for at most 10 s; the time since `start`, or `None` on a timeout.
async fn until(
    client: &Client,
    url: &str,
    token: &str,
    start: Instant,
    done: impl Fn(u16) -> bool,
) -> Option<Duration> {
    while start.elapsed() < Duration::from_secs(10) {
        if done(status(client, "GET", url, token, "").await) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    None
}

async fn propagate(admin: &str, admin_token: &str, probes: &str, token: &str, changes: usize) {
    let client: Client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let probes: Vec<String> = probes.split(',').map(str::to_owned).collect();
    let grant = format!("{admin}/admin/v1/agents/bench-agent/outbound/probe");
    let mut times = Vec::new();
    let mut timeouts = 0;
    for i in 0..changes * 2 {
        let granting = i % 2 == 0;
        let start = Instant::now();
        let s = if granting {
            status(&client, "PUT", &grant, admin_token, "{}").await
        } else {
            status(&client, "DELETE", &grant, admin_token, "").await
        };
        assert!(
            s == 200 || s == 201 || s == 204,
            "the admin write answered {s}"
        );
        let waits = probes.iter().map(|p| {
            let client = client.clone();
            async move {
                until(&client, p, token, start, |s| {
                    if granting {
                        s == 200
                    } else {
                        s != 200 && s != 0
                    }
                })
                .await
            }
        });
        for took in futures_util::future::join_all(waits).await {
            match took {
                Some(t) => times.push(t.as_micros()),
                None => timeouts += 1,
            }
        }
    }
    times.sort_unstable();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"changes\":{},\"observations\":{},\"timeouts\":{timeouts},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        changes * 2,
        times.len(),
        pct(0.5),
        pct(0.99),
        times.last().copied().unwrap_or(0)
    );
}

async fn probe(url: &str, token: &str, secs: u64) {
    let client: Client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let start = Instant::now();
    let mut last_ok = Instant::now();
    let mut longest = Duration::ZERO;
    let (mut requests, mut not_ok) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(secs) {
        let s = status(&client, "POST", url, token, "{}").await;
        requests += 1;
        if (200..300).contains(&s) {
            longest = longest.max(last_ok.elapsed());
            last_ok = Instant::now();
        } else {
            not_ok += 1;
            // A refused connection returns at once: do not spin.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    longest = longest.max(last_ok.elapsed());
    println!(
        "{{\"requests\":{requests},\"not_2xx_or_failed\":{not_ok},\"longest_gap_ms\":{:.1}}}",
        longest.as_secs_f64() * 1e3
    );
}
