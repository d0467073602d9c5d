//! The `idguard` binary: parse the command line and environment, set up tracing, bind the listeners, and hand
//! them to `idguard_proxy` and `idguard_admin`. All behaviour lives in the crates.

mod cli;
mod demo;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use idguard_config::{ConfigError, Loader, MasterKeys, Readiness, Reloader};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, LogFormat};

/// Overrides `[store] redis_url`.
const ENV_REDIS_URL: &str = "IDGUARD_REDIS_URL";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // One crypto provider for the whole process: aws-lc-rs, for rustls and jsonwebtoken alike.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Version => {
            println!("idguard {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => check(&config),
        Command::Export {
            config,
            data_dir,
            output,
        } => export(&config, data_dir, output.as_deref()),
        Command::Seal { id, new_key } => seal(id.as_deref(), new_key),
        Command::Serve {
            config,
            listen,
            admin_listen,
            workers,
            data_dir,
        } => runtime(workers)?.block_on(serve(&config, listen, admin_listen, data_dir)),
        Command::Demo { listen, once } => runtime(None)?.block_on(demo::run(listen, once)),
    }
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        // One worker: a current-thread runtime skips work stealing and cross-thread wake-ups entirely.
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().context("starting the runtime")
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(idguard_config::env::ENV_LOG)
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let keys = MasterKeys::from_env()
        .context("reading the master key")?
        .map(Arc::new);
    let has_keys = keys.is_some();
    match Loader::new(path, keys).load(1) {
        Ok((snapshot, _)) => {
            let problems = snapshot.credential_problems();
            let sealed_only = problems.iter().all(|p| p.message.contains("no master key"));
            // Without any master key, unopenable sealed values are expected: say so once, not per credential.
            if !problems.is_empty() && (has_keys || !sealed_only) {
                for p in &problems {
                    println!("{}: {p}", path.display());
                }
                println!("{}: {} error(s)", path.display(), problems.len());
                return Ok(ExitCode::from(1));
            }
            println!(
                "{}: ok ({} issuers, {} agents, {} nodes, {} credentials, {} outbound authorizations){}",
                path.display(),
                snapshot.issuers.len(),
                snapshot.agents.len(),
                snapshot.nodes.len(),
                snapshot.credentials.len(),
                snapshot.edges.values().map(|m| m.len()).sum::<usize>(),
                if problems.is_empty() {
                    ""
                } else {
                    "; sealed values not checked: no master key set"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid(errors)) => {
            for e in &errors.0 {
                println!("{}: {e}", path.display());
            }
            println!("{}: {} error(s)", path.display(), errors.0.len());
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn export(
    path: &Path,
    data_dir: Option<std::path::PathBuf>,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use idguard_config::store::Store as _;
    let data_dir = data_dir.unwrap_or_else(|| default_data_dir(path));
    let raw = Loader::new(path, None).file_raw()?;
    let objects = if data_dir.join("topology.redb").exists() {
        idguard_admin::store::EmbeddedStore::open(&data_dir)
            .with_context(|| {
                format!(
                    "opening the store in {} (is a server using it?)",
                    data_dir.display()
                )
            })?
            .load()?
            .1
    } else {
        Vec::new()
    };
    let text = format!(
        "# Written by `idguard export` from {} and the store in {} ({} API-managed objects).\n\n{}",
        path.display(),
        data_dir.display(),
        objects.len(),
        idguard_config::store::export(raw, &objects)?
    );
    match output {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn default_data_dir(config: &Path) -> std::path::PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("idguard-data")
}

fn seal(id: Option<&str>, new_key: bool) -> anyhow::Result<ExitCode> {
    if new_key {
        println!("{}", MasterKeys::generate_encoded().as_str());
        return Ok(ExitCode::SUCCESS);
    }
    let id = id.context("--id is required")?;
    let keys = MasterKeys::from_env()
        .context("reading the master key")?
        .context(
            "set IDGUARD_MASTER_KEY or IDGUARD_MASTER_KEY_FILE (idguard seal --new-key makes one)",
        )?;
    let mut value = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut value)
        .context("reading the value from standard input")?;
    let trimmed = value.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        anyhow::bail!(
            "standard input was empty: pipe the secret in, e.g. `printf %s \"$KEY\" | idguard seal --id ID`"
        );
    }
    println!("{}", keys.seal(id, trimmed.as_bytes())?);
    Ok(ExitCode::SUCCESS)
}

/// `idguard serve`, and the demo's proxy: load, bind, run until SIGTERM/SIGINT.
pub(crate) async fn serve(
    path: &Path,
    listen: Option<std::net::SocketAddr>,
    admin_listen: Option<std::net::SocketAddr>,
    data_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    let keys = MasterKeys::from_env()
        .context("reading the master key")?
        .map(Arc::new);
    let data_dir = data_dir.unwrap_or_else(|| default_data_dir(path));
    serve_with(
        Loader::new(path, keys),
        &data_dir,
        listen,
        admin_listen,
        None,
    )
    .await
}

/// Runs both planes with `loader`. `ready` (the demo) hears the bound public address once serving.
pub(crate) async fn serve_with(
    loader: Loader,
    data_dir: &Path,
    listen: Option<std::net::SocketAddr>,
    admin_listen: Option<std::net::SocketAddr>,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<ExitCode> {
    let registry = Registry::new();
    let readiness = Arc::new(Readiness::default());
    // The store is chosen before the first snapshot exists, from the file's [store] table.
    let store_settings = loader.file_raw().ok().map(|raw| raw.store);
    let redis_url = std::env::var(ENV_REDIS_URL)
        .ok()
        .or_else(|| store_settings.as_ref().and_then(|s| s.redis_url.clone()));
    let mut redis_store = None;
    let store: Arc<dyn idguard_config::store::Store> = match &redis_url {
        Some(url) => {
            let prefix = store_settings
                .as_ref()
                .and_then(|s| s.redis_prefix.clone())
                .unwrap_or_else(|| "idguard".into());
            let redis = Arc::new(
                idguard_admin::redis_store::RedisStore::open(url, &prefix, data_dir)
                    .map_err(|e| anyhow::anyhow!("opening the Redis store: {e}"))?,
            );
            redis_store = Some(redis.clone());
            redis
        }
        None => Arc::new(
            idguard_admin::store::EmbeddedStore::open(data_dir)
                .with_context(|| format!("opening the store in {}", data_dir.display()))?,
        ),
    };
    let token = idguard_admin::auth::AdminToken::load_or_create(data_dir)
        .context("loading the admin token")?;
    let fingerprint_key = idguard_admin::auth::load_or_create_key(data_dir, "fingerprint.key")
        .context("loading the fingerprint key")?;
    let loader = loader.with_store(store.clone());
    let (reloader, snapshots) = match Reloader::start(loader.clone(), readiness.clone(), &registry)
    {
        Ok(pair) => pair,
        Err(e) => {
            idguard_config::reload::log_config_error(&e);
            anyhow::bail!("the configuration is not valid; nothing was started");
        }
    };
    let settings = snapshots.borrow().settings.clone();
    let tls = match &settings.tls {
        Some(files) => Some(idguard_proxy::load_tls(files)?),
        None => None,
    };
    let public_addr = listen.unwrap_or(settings.public_addr);
    let admin_addr = admin_listen.unwrap_or(settings.admin_addr);
    let public = TcpListener::bind(public_addr)
        .await
        .with_context(|| format!("binding {public_addr}"))?;
    let admin = TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("binding {admin_addr}"))?;
    let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
    tracing::info!(public = %public_addr, admin = %admin_addr, tls = tls.is_some(), "listening");

    let reload = Arc::new(Notify::new());
    let identity = idguard_admin::identity::IdentityService::new(
        snapshots.clone(),
        store.clone(),
        fingerprint_key,
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
    );
    let proxy = idguard_proxy::Proxy::new(
        snapshots,
        &registry,
        readiness.clone(),
        Some(identity_plane(&identity)),
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(identity.run_key_publisher(stopped(stop_rx.clone())));
    tokio::spawn(signals(stop_tx, reload.clone(), readiness.clone()));
    if let Some(redis) = redis_store {
        let staleness = settings.redis_staleness;
        let max_staleness = settings.redis_max_staleness;
        tokio::spawn(idguard_admin::redis_store::watch(
            redis,
            reload.clone(),
            readiness.clone(),
            staleness,
            max_staleness,
            stopped(stop_rx.clone()),
        ));
    }
    tokio::spawn(reloader.run(reload, stopped(stop_rx.clone())));
    let admin_state = idguard_admin::AdminState {
        registry,
        readiness,
        api: Some(api),
    };
    let admin_task = tokio::spawn(idguard_admin::run(
        admin,
        admin_state,
        stopped(stop_rx.clone()),
    ));
    if let Some(ready) = ready {
        let _ = ready.send(public_addr);
    }
    proxy.run(public, tls, stopped(stop_rx)).await;
    let _ = admin_task.await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// What the identity service gives the data plane: its keys, revocations, exchange and public routes.
pub(crate) fn identity_plane(
    identity: &idguard_admin::identity::IdentityService,
) -> idguard_proxy::IdentityPlane {
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

#[cfg(unix)]
async fn signals(stop: watch::Sender<bool>, reload: Arc<Notify>, readiness: Arc<Readiness>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                reload.notify_one();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Readiness drops first so load balancers stop sending, then listeners close and requests drain.
    readiness.set_draining();
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop.send(true);
}
