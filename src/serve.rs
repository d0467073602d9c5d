//! `idguard serve`: build every plane from a routing file and the environment, then run them on listeners the
//! caller has bound. The binary, `idguard demo` and the integration tests all start idguard through
//! [`Server`], so a test runs exactly what `idguard serve` runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use idguard_config::env::{
    ENV_ADMIN_TOKEN, ENV_CONSOLE_URL, ENV_REDIS_PASSWORD, ENV_REDIS_PASSWORD_FILE, ENV_REDIS_URL,
    ENV_REDIS_USERNAME,
};
use idguard_config::hashes::KeyedHasher;
use idguard_config::store::{IdentityStore, Store};
use idguard_config::{
    Clock, Loader, MasterKeys, Readiness, Reloader, Resolver, Secret, SnapshotRx,
};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

/// Worker threads of the control-plane runtime (admin API, `/metrics`, `/readyz`, reloader, store watcher, key
/// publisher); its store calls run on its blocking pool.
const CONTROL_WORKERS: usize = 2;
/// How long, at shutdown, the control plane waits for blocking store calls still in flight (each is bounded by
/// the store's 500 ms timeouts).
const CONTROL_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What `serve` takes from the environment, read once by the binary (tests build it directly, so parallel tests
/// never touch the process environment).
#[derive(Debug, Default)]
pub struct Environment {
    /// `IDGUARD_MASTER_KEY` / `IDGUARD_MASTER_KEY_FILE`.
    pub master_keys: Option<Arc<MasterKeys>>,
    /// `IDGUARD_REDIS_URL`, overriding `[store] redis_url`.
    pub redis_url: Option<String>,
    /// `IDGUARD_REDIS_USERNAME`: the ACL user idguard authenticates to Redis as.
    pub redis_username: Option<String>,
    /// `IDGUARD_REDIS_PASSWORD`, or the content of `IDGUARD_REDIS_PASSWORD_FILE` (trailing newline dropped).
    pub redis_password: Option<Secret>,
    /// `IDGUARD_ADMIN_TOKEN`; without it the token is read from (or generated into) the data directory.
    pub admin_token: Option<String>,
    /// `IDGUARD_CONSOLE_URL`: where browsers reach the admin listener (default `http://<admin address>`).
    pub console_url: Option<String>,
    /// The clock token lifetimes are counted on: the system clock, or a manual one in tests.
    pub clock: Clock,
    /// How upstream host names are resolved, when an upstream is written through the admin API and when the
    /// proxy connects: the system resolver, or a manual one in tests (DNS rebinding without DNS).
    pub resolver: Resolver,
}

/// Everything `serve` needs besides the listeners.
#[derive(Debug)]
pub struct Options {
    /// The routing file.
    pub config: PathBuf,
    /// The data directory (store, audit log, keys); default `idguard-data` beside the routing file.
    pub data_dir: Option<PathBuf>,
    /// What the environment says.
    pub env: Environment,
}

/// The two listeners, already bound.
#[derive(Debug)]
pub struct Listeners {
    /// Agents and client applications: the proxy and the identity service.
    pub public: TcpListener,
    /// Operators and Prometheus: `/admin/v1`, `/metrics`, `/healthz`, `/readyz`.
    pub admin: TcpListener,
}

/// Every plane, built and ready to run.
pub struct Server {
    registry: Registry,
    readiness: Arc<Readiness>,
    reload: Arc<Notify>,
    reloader: Reloader,
    /// What builds snapshots (shared with the reloader and the admin API): told the public listener's bound
    /// address at start.
    loader: Loader,
    snapshots: SnapshotRx,
    redis: Option<Arc<idguard_admin::redis_store::RedisStore>>,
    identity: idguard_identity::IdentityService,
    api: idguard_admin::api::AdminApi,
    console: idguard_admin::console::Console,
    console_url: Option<String>,
    proxy: idguard_proxy::Proxy,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The admin listener's TLS, when `[listeners.admin_tls]` is set (its files re-read at every reload).
    admin_tls: Option<idguard_admin::tls::AdminTlsConfig>,
    usage: idguard_admin::usage::UsageMetrics,
}

// === impl Environment ===

impl Environment {
    /// Reads the process environment.
    ///
    /// # Errors
    /// When the master key is set but malformed or its file unreadable, or the Redis password file is
    /// unreadable.
    pub fn from_process() -> anyhow::Result<Self> {
        Ok(Self {
            master_keys: MasterKeys::from_env()
                .context("reading the master key")?
                .map(Arc::new),
            redis_url: std::env::var(ENV_REDIS_URL).ok().filter(|v| !v.is_empty()),
            redis_username: std::env::var(ENV_REDIS_USERNAME)
                .ok()
                .filter(|v| !v.is_empty()),
            redis_password: redis_password_from_env()?,
            admin_token: std::env::var(ENV_ADMIN_TOKEN).ok(),
            console_url: std::env::var(ENV_CONSOLE_URL)
                .ok()
                .filter(|v| !v.is_empty()),
            clock: Clock::system(),
            resolver: Resolver::system(),
        })
    }
}

// === impl Listeners ===

impl Listeners {
    /// Binds both addresses.
    ///
    /// # Errors
    /// The address that could not be bound.
    pub async fn bind(public: SocketAddr, admin: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            public: TcpListener::bind(public)
                .await
                .with_context(|| format!("binding {public}"))?,
            admin: TcpListener::bind(admin)
                .await
                .with_context(|| format!("binding {admin}"))?,
        })
    }
}

// === impl Server ===

impl Server {
    /// Opens the store (embedded, or Redis from the environment or `[store] redis_url`), loads and validates the
    /// topology, and builds the identity service, the admin API and the proxy. Nothing listens yet.
    ///
    /// # Errors
    /// A store that cannot be opened, an invalid configuration (every error is logged first), unreadable TLS
    /// files, or metrics that cannot be registered.
    pub fn build(options: Options) -> anyhow::Result<Self> {
        let Options {
            config,
            data_dir,
            env,
        } = options;
        // One crypto provider for every TLS client and server in the process, Redis's included (a no-op when the
        // binary installed it already).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let data_dir = data_dir.unwrap_or_else(|| default_data_dir(&config));
        let loader = Loader::new(&config, env.master_keys);
        let registry = Registry::new();
        let readiness = Arc::new(Readiness::default());
        // Nothing is created — data directory, store, admin token — for a routing file that cannot be used.
        precheck(&loader, env.redis_url.as_deref(), &data_dir)?;
        let redis_auth = (env.redis_username, env.redis_password);
        let (store, identity_store, redis) =
            open_stores(&loader, env.redis_url, redis_auth, &data_dir)?;
        if let Some(redis) = &redis {
            registry.register(Box::new(redis.identity_gauge()))?;
        }
        let loader = loader.with_store(store.clone());
        let (reloader, snapshots) =
            match Reloader::start(loader.clone(), readiness.clone(), &registry) {
                Ok(pair) => pair,
                Err(e) => {
                    idguard_config::reload::log_config_error(&e);
                    anyhow::bail!("the configuration is not valid; nothing was started");
                }
            };
        // Only now that the topology is known valid: the admin token and the fingerprint key.
        let token =
            idguard_admin::auth::AdminToken::load_or_create(&data_dir, env.admin_token.as_deref())
                .context("loading the admin token")?;
        // One replica keeps its key in its data directory; replicas of one Redis store share a fleet key.
        let fingerprint_key = match &redis {
            Some(redis) => redis
                .fingerprint_key()
                .map_err(|e| anyhow::anyhow!("reading the shared fingerprint key: {e}"))?,
            None => idguard_admin::auth::load_or_create_key(&data_dir, "fingerprint.key")
                .context("loading the fingerprint key")?,
        };
        let usage = idguard_admin::usage::UsageMetrics::new(&registry)?;
        let tls = match &snapshots.borrow().settings.tls {
            Some(files) => Some(idguard_proxy::load_tls(files)?),
            None => None,
        };
        let admin_tls = match &snapshots.borrow().settings.admin_tls {
            Some(settings) => Some(idguard_admin::tls::AdminTlsConfig::load(settings)?),
            None => None,
        };
        let reload = Arc::new(Notify::new());
        let identity = idguard_identity::IdentityService::new(
            snapshots.clone(),
            identity_store,
            KeyedHasher::new(&fingerprint_key),
            env.clock.clone(),
            readiness.clone(),
            &registry,
        )
        .context("starting the identity service")?;
        let api = idguard_admin::api::AdminApi::new(
            store,
            loader.clone(),
            snapshots.clone(),
            reload.clone(),
            token,
            fingerprint_key,
            env.resolver.clone(),
            env.clock.clone(),
        );
        let proxy = idguard_proxy::Proxy::new(
            snapshots.clone(),
            &registry,
            readiness.clone(),
            Some(identity_plane(&identity)),
            env.clock,
            &env.resolver,
        )?;
        api.wait_for_data_plane(proxy.applied());
        // The console redeems its sign-in codes in-process with the identity service (see `ConsoleCodes`).
        let console = idguard_admin::console::Console::new(api.clone(), Arc::new(identity.clone()));
        Ok(Self {
            registry,
            readiness,
            reload,
            reloader,
            loader,
            snapshots,
            redis,
            identity,
            api,
            console,
            console_url: env.console_url,
            proxy,
            tls,
            admin_tls,
            usage,
        })
    }

    /// The web console (for `idguard demo`'s one-time sign-in link).
    pub fn console(&self) -> idguard_admin::console::Console {
        self.console.clone()
    }

    /// The addresses the routing file asks for, each replaced by its override when given.
    pub fn addresses(
        &self,
        public: Option<SocketAddr>,
        admin: Option<SocketAddr>,
    ) -> (SocketAddr, SocketAddr) {
        let settings = &self.snapshots.borrow().settings;
        (
            public.unwrap_or(settings.public_addr),
            admin.unwrap_or(settings.admin_addr),
        )
    }

    /// Notifying this reloads the routing file and the store (what SIGHUP does).
    pub fn reload_handle(&self) -> Arc<Notify> {
        self.reload.clone()
    }

    /// Serves both listeners until `shutdown` completes, then reports not-ready (so load balancers stop
    /// sending), closes the listeners and drains in-flight requests.
    ///
    /// The proxy (with the identity service's public routes) runs on the caller's runtime, the data plane's.
    /// Everything else — the admin listener (`/admin/v1`, `/metrics`, `/healthz`, `/readyz`), the reloader, the
    /// Redis watcher and the identity key publisher — runs on a control-plane runtime of its own, on its own OS
    /// threads (`ControlPlane`): a store call that waits for a slow or hung Redis holds a control-plane thread,
    /// never one that serves proxied requests. Returns once both have stopped.
    ///
    /// # Errors
    /// A listener whose address cannot be read, or a control-plane runtime that cannot be started (then nothing
    /// is served).
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            registry,
            readiness,
            reload,
            mut reloader,
            loader,
            snapshots,
            redis,
            identity,
            api,
            console,
            console_url,
            proxy,
            tls,
            admin_tls,
            usage,
        } = self;
        let public_addr = listeners.public.local_addr()?;
        // An omitted or `auto` `[identity] issuer` names the port the public listener got: snapshots from now on
        // know it, and the first one, built before the bind, is built again before anything is served.
        loader.set_public_addr(public_addr);
        if snapshots
            .borrow()
            .identity
            .as_ref()
            .is_some_and(|i| i.issuer_derived)
        {
            reloader
                .reload()
                .await
                .context("deriving [identity] issuer from the bound public listener")?;
        }
        let admin_addr = listeners.admin.local_addr()?;
        console.set_base_url(
            &console_url.unwrap_or_else(|| console_base_url(admin_addr, admin_tls.is_some())),
        );
        if let Some(redirect_uri) = console.redirect_uri() {
            identity.set_console_redirect_uri(redirect_uri);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = redis.map(|store| {
            let settings = snapshots.borrow().settings.clone();
            idguard_admin::redis_store::watch(
                store,
                reload.clone(),
                readiness.clone(),
                settings.redis_staleness,
                settings.redis_max_staleness,
                stopped(stop_rx.clone()),
            )
        });
        // The diagram's per-edge traffic, sampled from the proxy's counter off the data plane.
        let traffic = {
            let (console, registry, stop) =
                (console.clone(), registry.clone(), stopped(stop_rx.clone()));
            async move { console.watch_traffic(registry, stop).await }
        };
        let control = ControlPlane {
            // Taken off the data plane's reactor; the control-plane runtime registers it with its own.
            admin: listeners
                .admin
                .into_std()
                .context("moving the admin listener to the control plane")?,
            state: idguard_admin::AdminState {
                registry,
                readiness: readiness.clone(),
                api: Some(api),
                console: Some(console),
            },
            admin_tls: admin_tls.clone(),
            reloader: {
                // The quota gauges and the admin listener's certificate follow every snapshot the reloader swaps
                // in, on the same runtime.
                let reloads = reloader.run(reload, stopped(stop_rx.clone()));
                let gauges =
                    idguard_admin::usage::watch(snapshots.clone(), usage, stopped(stop_rx.clone()));
                let certificates = {
                    let (snapshots, stop) = (snapshots.clone(), stopped(stop_rx.clone()));
                    async move {
                        if let Some(tls) = admin_tls {
                            idguard_admin::tls::follow(tls, snapshots, stop).await;
                        }
                    }
                };
                async move {
                    tokio::join!(reloads, gauges, certificates, traffic);
                }
            },
            watcher,
            key_publisher: identity.run_key_publisher(stopped(stop_rx.clone())),
            stop: stop_rx.clone(),
        }
        .start()
        .await?;
        tracing::info!(
            public = %public_addr,
            admin = %admin_addr,
            tls = tls.is_some(),
            admin_tls = control.admin_tls,
            "listening"
        );
        tokio::spawn(async move {
            shutdown.await;
            readiness.set_draining();
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        });
        proxy.run(listeners.public, tls, stopped(stop_rx)).await;
        control.join().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The control plane's work, moved onto a runtime of its own so that nothing it waits for (the store above
/// all) can hold a thread the data plane serves requests on.
struct ControlPlane<R, W, K> {
    /// The admin listener, already bound, not yet registered with any runtime.
    admin: std::net::TcpListener,
    state: idguard_admin::AdminState,
    /// The admin listener's TLS; plain HTTP without it.
    admin_tls: Option<idguard_admin::tls::AdminTlsConfig>,
    /// `Reloader::run`, joined with `usage::watch` (the quota gauges), `tls::follow` (the admin certificate) and
    /// `Console::watch_traffic` (the diagram's edge traffic).
    reloader: R,
    /// `redis_store::watch`, with a Redis store.
    watcher: Option<W>,
    /// `IdentityService::run_key_publisher`.
    key_publisher: K,
    /// Becomes `true` at shutdown (or its sender is dropped).
    stop: watch::Receiver<bool>,
}

/// The running control plane: its thread, and word when the thread's work is done.
struct ControlThread {
    thread: std::thread::JoinHandle<()>,
    done: oneshot::Receiver<()>,
    /// Whether the admin listener serves TLS.
    admin_tls: bool,
}

// === impl ControlPlane ===

impl<R, W, K> ControlPlane<R, W, K>
where
    R: Future<Output = ()> + Send + 'static,
    W: Future<Output = ()> + Send + 'static,
    K: Future<Output = ()> + Send + 'static,
{
    /// Starts the control-plane thread and waits until its runtime is up and serving the admin listener.
    ///
    /// # Errors
    /// The thread or the runtime could not be started, or the listener not registered with it.
    async fn start(self) -> anyhow::Result<ControlThread> {
        let (started_tx, started_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (done_tx, done) = oneshot::channel();
        let admin_tls = self.admin_tls.is_some();
        let thread = std::thread::Builder::new()
            .name("idguard-control".into())
            .spawn(move || {
                // The runtime is built, run and dropped on this thread, never inside an async context.
                let runtime = match control_runtime() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(self.serve(started_tx));
                // Whatever is still running is a blocking store call, bounded by the store's own timeouts;
                // never wait longer than that for it.
                runtime.shutdown_timeout(CONTROL_SHUTDOWN_GRACE);
                let _ = done_tx.send(());
            })
            .context("starting the control-plane thread")?;
        match started_rx.await {
            Ok(Ok(())) => Ok(ControlThread {
                thread,
                done,
                admin_tls,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(anyhow::anyhow!(
                "the control-plane thread stopped while starting"
            )),
        }
    }

    /// Runs every control-plane task until `stop`; the admin listener drains its in-flight requests first.
    async fn serve(self, started: oneshot::Sender<anyhow::Result<()>>) {
        let Self {
            admin,
            state,
            admin_tls,
            reloader,
            watcher,
            key_publisher,
            stop,
        } = self;
        let admin = match TcpListener::from_std(admin) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = started.send(Err(
                    anyhow::Error::new(e).context("serving the admin listener")
                ));
                return;
            }
        };
        let mut tasks = vec![tokio::spawn(reloader), tokio::spawn(key_publisher)];
        tasks.extend(watcher.map(tokio::spawn));
        let _ = started.send(Ok(()));
        match admin_tls {
            Some(tls) => {
                idguard_admin::tls::serve(admin, idguard_admin::router(state), tls, stopped(stop))
                    .await;
            }
            None => {
                if let Err(e) = idguard_admin::run(admin, state, stopped(stop)).await {
                    tracing::error!("the admin listener failed: {e}");
                }
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

// === impl ControlThread ===

impl ControlThread {
    /// Waits (without blocking the caller's thread) until the control plane has stopped and its thread ended.
    async fn join(self) {
        let _ = self.done.await;
        // The thread has finished its work; joining it is immediate, but still a blocking call.
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// The control plane's runtime: a few threads of its own, so one admin request waiting for the store delays
/// neither `/readyz` nor the reloader, and none of them delays the data plane.
fn control_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONTROL_WORKERS)
        .thread_name("idguard-control")
        .enable_all()
        .build()
        .context("starting the control-plane runtime")
}

/// Refuses, before anything is opened or created, a routing file that cannot be read or parsed; and, the first
/// time (an embedded store whose data directory does not exist yet, so no stored object can join the file), one
/// that does not validate. Every error is logged, as a failed start logs them.
///
/// # Errors
/// The configuration is not valid; nothing was created.
fn precheck(loader: &Loader, redis_url: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    let result = loader.read_file().and_then(|file| {
        let embedded = redis_url.is_none() && file.raw.store.redis_url.is_none();
        if embedded && !data_dir.exists() {
            loader.load(0).map(drop)
        } else {
            Ok(())
        }
    });
    if let Err(e) = result {
        idguard_config::reload::log_config_error(&e);
        anyhow::bail!("the configuration is not valid; nothing was started or created");
    }
    Ok(())
}

/// The store (and the identity service's view of the same one): Redis when the environment or the file's `[store]`
/// table names it, the embedded database in `data_dir` otherwise. Chosen before the first snapshot exists.
#[allow(clippy::type_complexity)]
fn open_stores(
    loader: &Loader,
    redis_url: Option<String>,
    (username, password): (Option<String>, Option<Secret>),
    data_dir: &Path,
) -> anyhow::Result<(
    Arc<dyn Store>,
    Arc<dyn IdentityStore>,
    Option<Arc<idguard_admin::redis_store::RedisStore>>,
)> {
    let store_settings = loader.file_raw().ok().map(|raw| raw.store);
    let redis_url = redis_url.or_else(|| store_settings.as_ref().and_then(|s| s.redis_url.clone()));
    Ok(match &redis_url {
        Some(url) => {
            let redis = Arc::new(
                open_redis(
                    loader.path(),
                    store_settings.as_ref(),
                    url,
                    (username, password),
                    data_dir,
                )?
                .with_master_keys(loader.master_keys()),
            );
            (redis.clone(), redis.clone(), Some(redis))
        }
        None => {
            let embedded = Arc::new(
                idguard_admin::store::EmbeddedStore::open(data_dir)
                    .with_context(|| format!("opening the store in {}", data_dir.display()))?,
            );
            (embedded.clone(), embedded, None)
        }
    })
}

/// The Redis store at `url` (the environment's or the routing file's), with `[store]`'s connection settings
/// (validated as the snapshot validates them) and the environment's ACL user and password.
///
/// # Errors
/// Invalid `[store]` connection settings (logged like any configuration error), a URL carrying a password,
/// unreadable TLS files, or a data directory that cannot be made.
pub(crate) fn open_redis(
    config: &Path,
    store: Option<&idguard_config::raw::RawStore>,
    url: &str,
    (username, password): (Option<String>, Option<Secret>),
    data_dir: &Path,
) -> anyhow::Result<idguard_admin::redis_store::RedisStore> {
    let default_store = idguard_config::raw::RawStore::default();
    let raw = store.unwrap_or(&default_store);
    let prefix = raw
        .redis_prefix
        .as_deref()
        .unwrap_or(idguard_config::defaults::REDIS_PREFIX);
    let base_dir = config.parent().unwrap_or(Path::new("."));
    let connection = match idguard_config::validate::redis_connection(raw, base_dir) {
        Ok(c) => c,
        Err(errors) => {
            idguard_config::reload::log_config_error(&idguard_config::ConfigError::Invalid(errors));
            anyhow::bail!("the configuration is not valid; nothing was started");
        }
    };
    let options = idguard_admin::redis_store::RedisOptions {
        url: url.to_owned(),
        cluster: connection.cluster,
        username,
        password,
        ca_file: connection.ca_file,
        client_cert: connection
            .client_cert
            .map(|files| (files.cert_file, files.key_file)),
        connect_timeout: connection.connect_timeout,
        response_timeout: connection.response_timeout,
    };
    Ok(
        idguard_admin::redis_store::RedisStore::open(&options, prefix, data_dir)
            .map_err(|e| anyhow::anyhow!("opening the Redis store: {e}"))?
            .with_audit_stream_max_len(
                raw.audit_stream_max_len
                    .unwrap_or(idguard_config::defaults::AUDIT_STREAM_MAX_LEN),
            ),
    )
}

/// The Redis password from `IDGUARD_REDIS_PASSWORD`, else from the file `IDGUARD_REDIS_PASSWORD_FILE` names
/// (read with the bounded reader; one trailing newline dropped).
fn redis_password_from_env() -> anyhow::Result<Option<Secret>> {
    if let Ok(value) = std::env::var(ENV_REDIS_PASSWORD)
        && !value.is_empty()
    {
        return Ok(Some(Secret::new(value)));
    }
    let Ok(path) = std::env::var(ENV_REDIS_PASSWORD_FILE) else {
        return Ok(None);
    };
    let mut text = idguard_config::files::read_text_bounded(
        Path::new(&path),
        idguard_config::files::MAX_KEY_FILE_BYTES,
    )
    .with_context(|| format!("reading {ENV_REDIS_PASSWORD_FILE} ({path})"))?;
    // Truncating keeps the one buffer the secret then owns (no copy of the password is left behind).
    let keep = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(keep);
    Ok(Some(Secret::new(text)))
}

/// `idguard-data` beside the routing file.
pub fn default_data_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("idguard-data")
}

/// `http://<admin address>` (`https://` when the admin listener serves TLS, so the console's cookies are `Secure`),
/// an unspecified address (`0.0.0.0`, `::`) read as the loopback one a browser on this host would use.
fn console_base_url(admin: SocketAddr, tls: bool) -> String {
    let ip = match admin.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, admin.port()))
}

/// What the identity service gives the data plane: its keys, revocations, exchange and public routes.
fn identity_plane(identity: &idguard_identity::IdentityService) -> idguard_proxy::IdentityPlane {
    idguard_proxy::IdentityPlane {
        keys: identity.local_keys(),
        revocations: identity.revocations(),
        exchanger: Arc::new(identity.clone()),
        routes: identity.public_service(),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Completes on SIGTERM or SIGINT; each SIGHUP in the meantime notifies `reload`.
pub async fn shutdown_signal(reload: Arc<Notify>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop idguard with SIGKILL");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                reload.notify_one();
            }
            _ = term.recv() => return,
            _ = int.recv() => return,
        }
    }
}
