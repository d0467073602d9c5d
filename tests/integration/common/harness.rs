//! The in-process harness: write a routing file into a temp dir, start the real proxy and admin servers on
//! 127.0.0.1:0 exactly as `idguard serve` wires them, and stop them on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idguard_config::MasterKeys;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::keys::{AUDIENCE, ISSUER, SigningKey, jwks, rand_hex};

pub struct Keys {
    pub es256: SigningKey,
    pub rs256: SigningKey,
    pub eddsa: SigningKey,
    /// A key the proxy does not trust (same kid as es256).
    pub rogue: SigningKey,
}

/// The issuer keys, generated once per test process (RSA generation is the slow part).
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es256: SigningKey::es256("es-1"),
        rs256: SigningKey::rs256("rs-1"),
        eddsa: SigningKey::eddsa("ed-1"),
        rogue: SigningKey::es256("es-1"),
    })
}

/// The fingerprint key of every in-process harness's data directory (client-secret hashes are keyed by it).
pub const FINGERPRINT_KEY: [u8; 32] = [7u8; 32];

/// A public address (example.com's) that test names resolve to when a test needs them to pass the SSRF rules;
/// nothing ever connects to it.
pub const PUBLIC_ADDR: &str = "93.184.216.34";

/// The admin token of every in-process harness.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A routing file under construction.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub master: String,
    pub issuer_extra: String,
    /// `reload.watch_interval_ms` (0: reload only when a test triggers it).
    pub watch_ms: u64,
    /// `upstream.connect_timeout_ms` and `upstream.response_header_timeout_ms`.
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    /// Use Redis (url, key prefix) instead of the embedded store, with this staleness bound.
    pub redis: Option<(String, String)>,
    pub redis_staleness: Duration,
    pub redis_max_staleness: Duration,
    /// The ACL user and password idguard authenticates to Redis with (the environment's, in `serve`).
    pub redis_username: Option<String>,
    pub redis_password: Option<String>,
    /// Extra lines for the `[store]` table (TLS files, `redis_cluster`, timeouts).
    pub store_extra: String,
    /// `[admin] upstream_allow_hosts` (the mocks live on 127.0.0.1).
    pub admin_allow: Vec<String>,
    /// Extra lines for the `[upstream]` table.
    pub upstream_extra: String,
    /// `[identity]` with `issuer` = the public listener's URL, plus these lines; `None`: no identity service.
    pub identity: Option<String>,
    pub fragments: Vec<String>,
    /// The clock idguard counts token lifetimes on; tests advance it instead of sleeping.
    pub clock: idguard_config::Clock,
    /// How idguard resolves upstream host names: a manual resolver, so a test decides what a name resolves to
    /// (and can change it between a write and a connection) without DNS. `api.example.com` resolves to a public
    /// address; other names fall through to the system resolver.
    pub resolver: idguard_config::Resolver,
    /// How the harness reaches the admin listener when `[listeners.admin_tls]` makes it TLS (its own `/metrics`
    /// reads); plain HTTP when `None`.
    pub admin_tls_client: Option<rustls::ClientConfig>,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let k = keys();
        std::fs::write(
            dir.path().join("jwks.json"),
            jwks(&[&k.es256, &k.rs256, &k.eddsa]),
        )
        .unwrap();
        Self {
            dir,
            master: MasterKeys::generate_encoded().to_string(),
            issuer_extra: String::new(),
            watch_ms: 0,
            connect_timeout_ms: 1000,
            response_timeout_ms: 3000,
            admin_allow: vec!["127.0.0.1".into()],
            redis: None,
            redis_staleness: Duration::from_secs(15),
            redis_max_staleness: Duration::from_secs(300),
            redis_username: None,
            redis_password: None,
            store_extra: String::new(),
            upstream_extra: String::new(),
            identity: None,
            fragments: vec![],
            clock: idguard_config::Clock::manual(),
            resolver: {
                let resolver = idguard_config::Resolver::manual();
                resolver.set("api.example.com", &[PUBLIC_ADDR.parse().unwrap()]);
                resolver
            },
            admin_tls_client: None,
        }
    }

    /// The usual topology: `agent-1` → `openai` (bearer, at `mock`), `agent-2` with no edge.
    pub fn standard(mock: &super::mock::Mock, secret: &str) -> Self {
        let mut s = Self::new();
        s.agent("agent-1").agent("agent-2");
        s.credential("cred-openai", "llm", secret);
        s.node(
            "llm",
            "openai",
            &format!("http://{}/v1", mock.addr),
            "style = \"bearer\"",
            "cred-openai",
        );
        s.edge("agent-1", "openai", &[]);
        s
    }

    /// Another replica of `self`: the same routing file, master key, store, identity settings and clock, in a
    /// directory (and data directory) of its own.
    pub fn replica_of(other: &Setup) -> Self {
        let mut s = Self::new();
        s.master = other.master.clone();
        s.fragments = other.fragments.clone();
        s.redis = other.redis.clone();
        s.redis_staleness = other.redis_staleness;
        s.redis_max_staleness = other.redis_max_staleness;
        s.redis_username = other.redis_username.clone();
        s.redis_password = other.redis_password.clone();
        s.store_extra = other.store_extra.clone();
        s.identity = other.identity.clone();
        s.issuer_extra = other.issuer_extra.clone();
        s.admin_allow = other.admin_allow.clone();
        s.upstream_extra = other.upstream_extra.clone();
        s.clock = other.clock.clone();
        s
    }

    pub fn master_keys(&self) -> MasterKeys {
        MasterKeys::parse(&self.master).unwrap()
    }

    pub fn agent(&mut self, id: &str) -> &mut Self {
        self.fragments.push(format!("[[agents]]\nid = \"{id}\"\n"));
        self
    }

    pub fn disabled_agent(&mut self, id: &str) -> &mut Self {
        self.fragments
            .push(format!("[[agents]]\nid = \"{id}\"\nenabled = false\n"));
        self
    }

    pub fn credential(&mut self, id: &str, kind: &str, secret: &str) -> &mut Self {
        let sealed = self.master_keys().seal(id, secret.as_bytes()).unwrap();
        // The fingerprint an operator keeps beside the sealed value (the admin API shows it, never opening it).
        let fingerprint = idguard_config::hashes::KeyedHasher::new(&FINGERPRINT_KEY)
            .fingerprint(secret.as_bytes());
        self.fragments.push(format!(
            "[[credentials]]\nid = \"{id}\"\nkind = \"{kind}\"\nsealed = \"{sealed}\"\nfingerprint = \"{fingerprint}\"\n"
        ));
        self
    }

    pub fn node(
        &mut self,
        kind: &str,
        id: &str,
        upstream: &str,
        style: &str,
        credential: &str,
    ) -> &mut Self {
        self.fragments.push(format!(
            "[[{kind}]]\nid = \"{id}\"\nupstream = \"{upstream}\"\n{style}\ncredential = \"{credential}\"\n"
        ));
        self
    }

    pub fn edge(&mut self, agent: &str, node: &str, scopes: &[&str]) -> &mut Self {
        let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
        self.fragments.push(format!(
            "[[outbound]]\nagent = \"{agent}\"\nnode = \"{node}\"\nscopes = [{}]\n",
            scopes.join(", ")
        ));
        self
    }

    pub fn raw(&mut self, toml: &str) -> &mut Self {
        self.fragments.push(toml.to_owned());
        self
    }

    pub fn toml(&self) -> String {
        let mut out = format!(
            "[reload]\nwatch_interval_ms = {}\n\n[upstream]\nresponse_header_timeout_ms = {}\nconnect_timeout_ms = {}\n{}\n\
             [[issuers]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"jwks.json\"\n{}\n",
            self.watch_ms,
            self.response_timeout_ms,
            self.connect_timeout_ms,
            self.upstream_extra,
            self.issuer_extra
        );
        let allow: Vec<String> = self.admin_allow.iter().map(|h| format!("{h:?}")).collect();
        out.push_str(&format!(
            "\n[admin]\nupstream_allow_hosts = [{}]\n",
            allow.join(", ")
        ));
        if let Some((url, prefix)) = &self.redis {
            out.push_str(&format!(
                "\n[store]\nredis_url = {url:?}\nredis_prefix = {prefix:?}\nredis_staleness_ms = {}\nredis_max_staleness_ms = {}\n{}\n",
                self.redis_staleness.as_millis(),
                self.redis_max_staleness.as_millis(),
                self.store_extra
            ));
        }
        if let Some(extra) = &self.identity {
            // Replicas behind one name set their own issuer; otherwise it is this listener's URL.
            if extra.contains("issuer =") {
                out.push_str(&format!("\n[identity]\n{extra}\n"));
            } else {
                out.push_str(&format!("\n[identity]\nissuer = \"{{PUBLIC}}\"\n{extra}\n"));
            }
        }
        for f in &self.fragments {
            out.push('\n');
            out.push_str(f);
        }
        out
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("idguard.toml")
    }

    pub async fn start(self) -> Harness {
        self.start_with_tls(None).await
    }

    /// Starts idguard exactly as `idguard serve` does (`idguard::Server`), on two 127.0.0.1:0 listeners, with
    /// `[listeners.tls]` pointing at `tls`'s files when given.
    pub async fn start_with_tls(mut self, tls: Option<&super::tls::ServerCert>) -> Harness {
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public_url = format!(
            "{}://{}",
            if tls.is_some() { "https" } else { "http" },
            public.local_addr().unwrap()
        );
        if let Some(cert) = tls {
            let (cert_file, key_file) = cert.write(self.dir.path(), "public");
            self.fragments.insert(
                0,
                format!("[listeners.tls]\ncert_file = {cert_file:?}\nkey_file = {key_file:?}\n"),
            );
        }
        std::fs::write(
            self.config_path(),
            self.toml().replace("{PUBLIC}", &public_url),
        )
        .unwrap();
        // The data directory of a server that has run before: a known fingerprint key, so tests can write
        // client-secret hashes into the routing file.
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Replicas of one Redis store share a fleet key instead: each gets a key file of its own, as replicas that
        // each generated one would have, so nothing passes by sharing this file.
        let key = if self.redis.is_some() {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).unwrap();
            key
        } else {
            FINGERPRINT_KEY
        };
        std::fs::write(data.join("fingerprint.key"), URL_SAFE_NO_PAD.encode(key)).unwrap();
        let server = idguard::Server::build(idguard::Options {
            config: self.config_path(),
            data_dir: Some(data),
            env: idguard::Environment {
                master_keys: Some(Arc::new(self.master_keys())),
                redis_url: None,
                redis_username: self.redis_username.clone(),
                redis_password: self.redis_password.clone().map(idguard_config::Secret::new),
                admin_token: Some(ADMIN_TOKEN.into()),
                console_url: None,
                clock: self.clock.clone(),
                resolver: self.resolver.clone(),
            },
        })
        .expect("config loads");
        let (addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
        let reload = server.reload_handle();
        let (stop, mut rx) = watch::channel(false);
        tokio::spawn(
            server.run(idguard::Listeners { public, admin }, async move {
                let _ = rx.wait_for(|s| *s).await;
            }),
        );
        Harness {
            addr,
            admin: admin_addr,
            setup: self,
            reload,
            stop,
        }
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub setup: Setup,
    reload: Arc<Notify>,
    stop: watch::Sender<bool>,
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn metrics(&self) -> String {
        let (status, _, body) = match &self.setup.admin_tls_client {
            Some(tls) => {
                let url = format!("https://localhost:{}/metrics", self.admin.port());
                super::tls::https_get(tls, &url).await
            }
            None => super::client::get(&format!("http://{}/metrics", self.admin), &[]).await,
        };
        assert_eq!(status, 200);
        body
    }

    pub async fn generation(&self) -> u64 {
        metric_value(&self.metrics().await, "idguard_config_generation") as u64
    }

    /// Writes `toml` as the routing file, triggers a reload, and waits until it has been applied (Ok with the
    /// new generation) or refused (Err).
    pub async fn reload_with(&self, toml: &str) -> Result<u64, ()> {
        self.reload_after(|path| std::fs::write(path, toml).unwrap())
            .await
    }

    /// [`Harness::reload_with`], the file replaced whole by a rename (as deployment tools write it), so no reader
    /// ever sees it half-written.
    pub async fn reload_renamed(&self, toml: &str) -> Result<u64, ()> {
        self.reload_after(|path| {
            let next = path.with_extension("next");
            std::fs::write(&next, toml).unwrap();
            std::fs::rename(&next, path).unwrap();
        })
        .await
    }

    async fn reload_after(&self, write: impl FnOnce(&std::path::Path)) -> Result<u64, ()> {
        let before = self.generation().await;
        let failures_before = failures(&self.metrics().await);
        write(&self.setup.config_path());
        self.reload.notify_one();
        for _ in 0..200 {
            let m = self.metrics().await;
            let generation = metric_value(&m, "idguard_config_generation") as u64;
            if generation > before {
                // Give the proxy's swapper a moment to rebuild its table from the published snapshot.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Ok(generation);
            }
            if failures(&m) > failures_before {
                return Err(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("reload neither applied nor failed within 2 s");
    }
}

fn failures(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("idguard_config_reloads_total{result=\"failure\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A fresh canary secret: recognizable, unique, and with a random part whose substrings tests search for.
pub fn canary(tag: &str) -> String {
    format!("CANARY-{tag}-{}", rand_hex(8))
}

/// Calls the admin API with the admin token and the `extra` headers; the body is parsed as JSON (`Null` when it is
/// not). The same request as [`AdminClient`](super::admin_client::AdminClient) sends.
pub async fn admin(
    h: &Harness,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    extra: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, serde_json::Value) {
    let api = extra
        .iter()
        .fold(super::admin_client::AdminClient::of(h), |api, (k, v)| {
            api.header(k, v)
        });
    api.call(method, path, body).await
}

/// Polls `check` every 10 ms until it holds, failing the test after `limit`; returns how long it took. For the
/// eventual-consistency points (reloads, replicas); never a speed assertion.
pub async fn within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deletes this test's keys only (never FLUSHALL: the server may be shared).
pub fn redis_cleanup(url: &str, prefix: &str) {
    if let Ok(client) = redis::Client::open(url)
        && let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1))
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{prefix}}}:*"))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// The shared Redis the replica tests use: `REDIS_URL`, default `redis://127.0.0.1:6379`. Panics, saying so and
/// how to get one, when it does not answer `PING` — instead of the bare 503 assertions a test meets later.
pub fn redis_url() -> String {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if let Err(why) = redis_answers(&url) {
        panic!("{why}");
    }
    url
}

/// `Ok` when the Redis at `url` answers `PING` within a second; else what a developer needs to know.
pub fn redis_answers(url: &str) -> Result<(), String> {
    let ping = || -> redis::RedisResult<String> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(1)))?;
        redis::cmd("PING").query(&mut conn)
    };
    // A URL with credentials is not repeated in the message.
    let shown = if url.contains('@') { "REDIS_URL" } else { url };
    match ping() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "this test needs a Redis at REDIS_URL (default redis://127.0.0.1:6379), and {shown} does not answer \
             PING ({e}): start one (`redis-server --port 6379 --save ''`), or run `.ci/run`, which installs \
             redis-server and starts it when none answers"
        )),
    }
}
