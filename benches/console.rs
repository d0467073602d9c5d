//! Server time to render the console's agents list and an agent's diagram, through the real admin listener (the
//! whole path: session, the admin API run in-process, the page), in a topology of 1,000 agents, 200 nodes and
//! 10,000 directory users; the diagram is of an agent with 50 clients on its left and 50 nodes on its right.
//!
//! Run: `cargo bench --bench console`. Besides criterion's figures it prints p50 / p99 / max over
//! [`SAMPLES`] sequential requests per page, each timed from the request's first byte to the response's last
//! over loopback (so a little more than the server's own time). The figures are in docs/console.md.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

#[path = "../tests/integration/common/keys.rs"]
mod keys;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idguard::{Environment, Listeners, Options, Server};
use idguard_config::MasterKeys;

const AGENTS: usize = 1_000;
const NODES: usize = 200;
const USERS: usize = 10_000;
/// Clients on the measured agent's left, nodes on its right.
const SIDE: usize = 50;
/// Timed requests per page for the percentiles.
const SAMPLES: usize = 1_000;

/// The routing file: every agent calls one node; `agent-0000` calls 50 and is called by 50 clients.
fn routing_file(master: &MasterKeys) -> String {
    let mut f = String::from(
        "[reload]\nwatch_interval_ms = 0\n\n[[issuers]]\nissuer = \"https://issuer.example\"\n\
         audience = \"idguard\"\njwks_file = \"jwks.json\"\n\n",
    );
    for i in 0..NODES {
        let kind = if i % 2 == 0 { "llm" } else { "external" };
        let sealed = master.seal(&format!("cred-{i:03}"), b"bench-key").unwrap();
        let _ = writeln!(
            f,
            "[[credentials]]\nid = \"cred-{i:03}\"\nkind = \"{kind}\"\nsealed = \"{sealed}\"\n\n\
             [[{kind}]]\nid = \"node-{i:03}\"\nname = \"Node {i}\"\nupstream = \"http://127.0.0.1:9/v1\"\n\
             style = \"bearer\"\ncredential = \"cred-{i:03}\"\n"
        );
    }
    for i in 0..AGENTS {
        let _ = writeln!(
            f,
            "[[agents]]\nid = \"agent-{i:04}\"\nname = \"Agent {i}\"\n\n[[outbound]]\nagent = \"agent-{i:04}\"\n\
             node = \"node-{:03}\"\nscopes = [\"llm.use\"]\n",
            i % NODES
        );
    }
    for i in 1..SIDE {
        let _ = writeln!(
            f,
            "[[outbound]]\nagent = \"agent-0000\"\nnode = \"node-{i:03}\"\nscopes = [\"llm.use\", \"llm.admin\"]\n"
        );
    }
    for i in 0..SIDE {
        let _ = writeln!(
            f,
            "[[clients]]\nid = \"client-{i:02}\"\nname = \"Client {i}\"\n\n[[inbound]]\nclient = \"client-{i:02}\"\n\
             agent = \"agent-0000\"\nscopes = [\"agent.access\"]\n"
        );
    }
    for i in 0..USERS {
        let _ = writeln!(f, "[[users]]\nid = \"user-{i:05}\"\n");
    }
    f
}

struct Running {
    admin: std::net::SocketAddr,
    cookie: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKeys::parse(MasterKeys::generate_encoded().as_ref()).unwrap();
        std::fs::write(
            dir.path().join("jwks.json"),
            keys::jwks(&[&keys::SigningKey::es256("bench")]),
        )
        .unwrap();
        let config = dir.path().join("idguard.toml");
        std::fs::write(&config, routing_file(&master)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let env = Environment {
            master_keys: Some(Arc::new(master)),
            admin_token: Some("bench-admin-token-0123456789".into()),
            ..Environment::default()
        };
        let (admin, link) = runtime.block_on(async {
            let server = Server::build(Options {
                config,
                data_dir: Some(dir.path().join("data")),
                env,
            })
            .unwrap();
            let listeners = Listeners::bind(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
            .unwrap();
            let admin = listeners.admin.local_addr().unwrap();
            let link = server.console().one_time_link("/console/agents").unwrap();
            tokio::spawn(server.run(listeners, std::future::pending()));
            (admin, link)
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        let cookie = runtime.block_on(async {
            // The admin listener starts on the control plane's thread: wait for it.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let req = hyper::Request::get(format!("http://{admin}{link}"))
                    .body(Empty::new())
                    .unwrap();
                if let Ok(resp) = client.request(req).await {
                    let cookie = resp
                        .headers()
                        .get_all("set-cookie")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find(|v| v.starts_with("idg_console="))
                        .map(|v| v.split(';').next().unwrap().to_owned());
                    break cookie.expect("the one-time link opened a session");
                }
                assert!(
                    Instant::now() < deadline,
                    "the admin listener did not start"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Running {
            admin,
            cookie,
            client,
            runtime,
            _dir: dir,
        }
    }

    /// One page: its status, its size, and how long it took.
    fn get(&self, path: &str) -> (u16, usize, Duration) {
        self.runtime.block_on(async {
            let req = hyper::Request::get(format!("http://{}{path}", self.admin))
                .header("cookie", &self.cookie)
                .body(Empty::new())
                .unwrap();
            let start = Instant::now();
            let resp = self.client.request(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body.len(), start.elapsed())
        })
    }

    fn percentiles(&self, name: &str, path: &str) {
        let (status, size, _) = self.get(path);
        assert_eq!(status, 200, "{path}");
        let mut times: Vec<Duration> = (0..SAMPLES).map(|_| self.get(path).2).collect();
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "{name}: {size} bytes; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {SAMPLES} requests",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
    }
}

fn pages(c: &mut Criterion) {
    let running = Running::start();
    let list = "/console/agents?q=agent-09";
    let diagram = "/console/agents/agent-0000";
    running.percentiles("agents list (search, first page)", list);
    running.percentiles("agents list (first page)", "/console/agents");
    running.percentiles("diagram (50 + 50)", diagram);
    let mut g = c.benchmark_group("console");
    g.bench_function("agents_list", |b| b.iter(|| running.get("/console/agents")));
    g.bench_function("agents_search", |b| b.iter(|| running.get(list)));
    g.bench_function("diagram_50_50", |b| b.iter(|| running.get(diagram)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = pages
}
criterion_main!(benches);
