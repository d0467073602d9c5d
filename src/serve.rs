//! `idguard serve`: build every plane from a routing file and the environment, then run them on listeners the
//! caller has bound. The binary, `idguard demo` and the integration tests all start idguard through
//! [`Server`], so a test runs exactly what `idguard serve` runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use idguard_config::env::{ENV_ADMIN_TOKEN, ENV_REDIS_URL};
use idguard_config::hashes::KeyedHasher;
use idguard_config::store::{IdentityStore, Store};
use idguard_config::{Clock, Loader, MasterKeys, Readiness, Reloader, Resolver, SnapshotRx};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// What `serve` takes from the environment, read once by the binary (tests build it directly, so parallel tests
/// never touch the process environment).
#[derive(Debug, Default)]
pub struct Environment {
    /// `IDGUARD_MASTER_KEY` / `IDGUARD_MASTER_KEY_FILE`.
    pub master_keys: Option<Arc<MasterKeys>>,
    /// `IDGUARD_REDIS_URL`, overriding `[store] redis_url`.
    pub redis_url: Option<String>,
    /// `IDGUARD_ADMIN_TOKEN`; without it the token is read from (or generated into) the data directory.
    pub admin_token: Option<String>,
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
    snapshots: SnapshotRx,
    redis: Option<Arc<idguard_admin::redis_store::RedisStore>>,
    identity: idguard_identity::IdentityService,
    api: idguard_admin::api::AdminApi,
    proxy: idguard_proxy::Proxy,
    tls: Option<Arc<rustls::ServerConfig>>,
}

// === impl Environment ===

impl Environment {
    /// Reads the process environment.
    ///
    /// # Errors
    /// When the master key is set but malformed or its file unreadable.
    pub fn from_process() -> anyhow::Result<Self> {
        Ok(Self {
            master_keys: MasterKeys::from_env()
                .context("reading the master key")?
                .map(Arc::new),
            redis_url: std::env::var(ENV_REDIS_URL).ok().filter(|v| !v.is_empty()),
            admin_token: std::env::var(ENV_ADMIN_TOKEN).ok(),
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
        let data_dir = data_dir.unwrap_or_else(|| default_data_dir(&config));
        let loader = Loader::new(&config, env.master_keys);
        let registry = Registry::new();
        let readiness = Arc::new(Readiness::default());
        let (store, identity_store, redis) = open_stores(&loader, env.redis_url, &data_dir)?;
        let token =
            idguard_admin::auth::AdminToken::load_or_create(&data_dir, env.admin_token.as_deref())
                .context("loading the admin token")?;
        let fingerprint_key = idguard_admin::auth::load_or_create_key(&data_dir, "fingerprint.key")
            .context("loading the fingerprint key")?;
        let loader = loader.with_store(store.clone());
        let (reloader, snapshots) =
            match Reloader::start(loader.clone(), readiness.clone(), &registry) {
                Ok(pair) => pair,
                Err(e) => {
                    idguard_config::reload::log_config_error(&e);
                    anyhow::bail!("the configuration is not valid; nothing was started");
                }
            };
        let tls = match &snapshots.borrow().settings.tls {
            Some(files) => Some(idguard_proxy::load_tls(files)?),
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
            loader,
            snapshots.clone(),
            reload.clone(),
            token,
            fingerprint_key,
            env.resolver.clone(),
        );
        let proxy = idguard_proxy::Proxy::new(
            snapshots.clone(),
            &registry,
            readiness.clone(),
            Some(identity_plane(&identity)),
            env.clock,
            &env.resolver,
        )?;
        Ok(Self {
            registry,
            readiness,
            reload,
            reloader,
            snapshots,
            redis,
            identity,
            api,
            proxy,
            tls,
        })
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
    /// # Errors
    /// A listener whose address cannot be read.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            registry,
            readiness,
            reload,
            reloader,
            snapshots,
            redis,
            identity,
            api,
            proxy,
            tls,
        } = self;
        let public_addr = listeners.public.local_addr()?;
        let admin_addr = listeners.admin.local_addr()?;
        tracing::info!(public = %public_addr, admin = %admin_addr, tls = tls.is_some(), "listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(identity.run_key_publisher(stopped(stop_rx.clone())));
        if let Some(redis) = redis {
            let settings = snapshots.borrow().settings.clone();
            tokio::spawn(idguard_admin::redis_store::watch(
                redis,
                reload.clone(),
                readiness.clone(),
                settings.redis_staleness,
                settings.redis_max_staleness,
                stopped(stop_rx.clone()),
            ));
        }
        tokio::spawn(reloader.run(reload, stopped(stop_rx.clone())));
        let admin_state = idguard_admin::AdminState {
            registry,
            readiness: readiness.clone(),
            api: Some(api),
        };
        let admin_task = tokio::spawn(idguard_admin::run(
            listeners.admin,
            admin_state,
            stopped(stop_rx.clone()),
        ));
        tokio::spawn(async move {
            shutdown.await;
            readiness.set_draining();
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        });
        proxy.run(listeners.public, tls, stopped(stop_rx)).await;
        let _ = admin_task.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The store (and the identity service's view of the same one): Redis when the environment or the file's `[store]`
/// table names it, the embedded database in `data_dir` otherwise. Chosen before the first snapshot exists.
#[allow(clippy::type_complexity)]
fn open_stores(
    loader: &Loader,
    redis_url: Option<String>,
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
            let prefix = store_settings
                .as_ref()
                .and_then(|s| s.redis_prefix.as_deref())
                .unwrap_or(idguard_config::defaults::REDIS_PREFIX);
            let redis = Arc::new(
                idguard_admin::redis_store::RedisStore::open(url, prefix, data_dir)
                    .map_err(|e| anyhow::anyhow!("opening the Redis store: {e}"))?,
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

/// `idguard-data` beside the routing file.
pub fn default_data_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("idguard-data")
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
