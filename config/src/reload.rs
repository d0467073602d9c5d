//! Loading the routing file into a [`Snapshot`], and keeping it current.
//!
//! A reload builds and validates the new snapshot off the request path, then publishes it on a `watch` channel;
//! the planes swap it in atomically. A file that fails to parse or validate changes nothing: the running
//! snapshot stays, every error is logged once, and `idguard_config_last_reload_successful` drops to 0. So does an
//! empty file ([`ConfigError::Empty`]): a save caught between truncating and writing must not remove every route.
//!
//! When the master keys came from a key file, every reload reads that file again, so a new term is in force
//! without a restart. A key file that no longer reads keeps the keys in use (the topology still reloads with
//! them), is logged without anything read from it, and holds `idguard_config_last_reload_successful` at 0.
//!
//! The watcher polls the files' metadata (size, modification and change times, inode) and reads only once a
//! change has held still for [`SETTLE_POLLS`] polls in a row, so a file an editor is still writing is not read
//! half-way; a file replaced by rename (write a temporary file, then rename it over) is complete when it appears
//! and is read once.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::{Notify, watch};

use crate::error::{ConfigError, SealError, ValidationError, ValidationErrors};
use crate::files::{MAX_ROUTING_FILE_BYTES, read_text_bounded};
use crate::raw::RawConfig;
use crate::readiness::Readiness;
use crate::seal::MasterKeys;
use crate::snapshot::Snapshot;
use crate::store::{self, Kind, Store, StoreError, StoredObject};
use crate::validate::{BuildContext, validate};

mod settle;

pub use settle::SETTLE_POLLS;
use settle::{Stamps, Watch};

/// The receiving side of published snapshots.
pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;
/// The publishing side.
pub type SnapshotTx = watch::Sender<Arc<Snapshot>>;

type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Reads a routing file (and, when it has one, the store of API-managed objects) and builds snapshots.
/// Cheap to clone: the planes that build snapshots (the reloader, the admin API validating a change) share it,
/// master keys included, so a key file read again by a reload is the one the admin API seals with next.
#[derive(Clone)]
pub struct Loader {
    path: PathBuf,
    master_keys: Arc<ArcSwapOption<MasterKeys>>,
    env: Arc<EnvLookup>,
    store: Option<Arc<dyn Store>>,
    /// The public listener's bound address, set once by `serve` (see [`BuildContext::public_addr`]).
    public_addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
}

/// What [`Loader::load_fresh`] built: the snapshot, and the master keys it opened sealed values with.
pub struct Loaded {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The keys read again from their file, or those already in use.
    pub master_keys: Option<Arc<MasterKeys>>,
    /// Why the key file could not be read again, when it could not (the keys in use were kept).
    pub key_file_error: Option<SealError>,
}

/// A routing file as read once: its text and its parse.
pub struct RoutingFile {
    /// The file's text (validation errors point into it).
    pub text: String,
    /// Its objects, as parsed.
    pub raw: RawConfig,
}

// === impl Loader ===

impl Loader {
    /// A loader for `path` that opens sealed values with `master_keys` and reads `env = ...` credentials from the
    /// process environment.
    pub fn new(path: impl Into<PathBuf>, master_keys: Option<Arc<MasterKeys>>) -> Self {
        Self {
            path: path.into(),
            master_keys: Arc::new(ArcSwapOption::new(master_keys)),
            env: Arc::new(|name| std::env::var(name).ok()),
            store: None,
            public_addr: Arc::default(),
        }
    }

    /// Records the public listener's bound address (once; later calls are ignored): every snapshot built from now
    /// on, by this loader and its clones, derives an `auto` `[identity] issuer` from it.
    pub fn set_public_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.public_addr.set(addr);
    }

    /// Replaces the environment lookup (tests).
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// Adds the store whose objects join the file's in every snapshot.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// The master keys in use, if any: those given at start, or the last read again from their file by a reload
    /// that succeeded.
    pub fn master_keys(&self) -> Option<Arc<MasterKeys>> {
        self.master_keys.load_full()
    }

    /// Parses the file alone (the file-managed objects).
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Empty`] or [`ConfigError::Parse`].
    pub fn file_raw(&self) -> Result<RawConfig, ConfigError> {
        self.read_file().map(|file| file.raw)
    }

    /// Reads and parses the file once, keeping its text for the line numbers of validation errors: how the admin
    /// API sees the file-managed objects and validates a change against the very same parse.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Empty`] or [`ConfigError::Parse`].
    pub fn read_file(&self) -> Result<RoutingFile, ConfigError> {
        let text = self.read()?;
        let raw = self.parse(&text)?;
        Ok(RoutingFile { text, raw })
    }

    /// Validates `raw` — a file's objects from [`Loader::read_file`], with stored objects already merged in —
    /// into a snapshot with the given generation; errors carry line numbers from `text`, the file's text.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn validate_merged(
        &self,
        raw: RawConfig,
        text: &str,
        generation: u64,
    ) -> Result<Snapshot, ConfigError> {
        self.validate_with(raw, text, generation, self.master_keys().as_deref())
    }

    fn validate_with(
        &self,
        raw: RawConfig,
        text: &str,
        generation: u64,
        master_keys: Option<&MasterKeys>,
    ) -> Result<Snapshot, ConfigError> {
        let base_dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let ctx = BuildContext {
            base_dir,
            master_keys,
            env: &*self.env,
            generation,
            public_addr: self.public_addr.get().copied(),
        };
        // The file's own credentials come first in the merged list (stored ones are appended), so their index is
        // their `[[credentials]]` table's: what `locate` needs to put a line on a value that will not open.
        let in_file: Vec<(String, String)> = raw
            .credentials
            .iter()
            .enumerate()
            .filter(|(_, c)| !raw.api_managed.contains(&(Kind::Credential, c.id.clone())))
            .map(|(i, c)| {
                let key = if c.env.is_some() { "env" } else { "sealed" };
                (c.id.clone(), format!("credentials[{i}].{key}"))
            })
            .collect();
        let mut snapshot = validate(raw, &ctx).map_err(|mut errs| {
            for e in &mut errs.0 {
                e.line = locate(text, &e.path);
            }
            ConfigError::Invalid(errs)
        })?;
        for (id, path) in in_file {
            if let Some(c) = snapshot.credentials.get_mut(id.as_str()) {
                c.line = locate(text, &path);
            }
        }
        Ok(snapshot)
    }

    /// Builds a snapshot from the file plus exactly `objects` (instead of the store's).
    ///
    /// # Errors
    /// [`ConfigError`] with every problem found.
    pub fn build_with(
        &self,
        objects: &[StoredObject],
        generation: u64,
    ) -> Result<Snapshot, ConfigError> {
        let text = self.read()?;
        self.build(&text, objects, generation, self.master_keys().as_deref())
    }

    /// The file's text, read only if it is a regular file of at most [`MAX_ROUTING_FILE_BYTES`].
    fn read(&self) -> Result<String, ConfigError> {
        read_text_bounded(&self.path, MAX_ROUTING_FILE_BYTES).map_err(|source| ConfigError::Read {
            path: self.path.display().to_string(),
            source,
        })
    }

    /// Parses the file's text, refusing an empty file.
    fn parse(&self, text: &str) -> Result<RawConfig, ConfigError> {
        let origin = self.path.display().to_string();
        let raw = parse(text, &origin)?;
        if !raw.allow_empty && declares_nothing(text) {
            return Err(ConfigError::Empty { path: origin });
        }
        Ok(raw)
    }

    fn build(
        &self,
        text: &str,
        objects: &[StoredObject],
        generation: u64,
        master_keys: Option<&MasterKeys>,
    ) -> Result<Snapshot, ConfigError> {
        let mut raw = self.parse(text)?;
        let counts = store::FileCounts::of(&raw);
        store::merge(&mut raw, objects).map_err(ConfigError::Invalid)?;
        self.validate_with(raw, text, generation, master_keys)
            .map_err(|e| match e {
                ConfigError::Invalid(mut errors) => {
                    store::name_stored(&mut errors.0, &counts, objects);
                    ConfigError::Invalid(errors)
                }
                other => other,
            })
    }

    /// The file this loader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads, parses and validates the file into a snapshot with the given generation. Also returns a hash of
    /// the file's bytes so watchers can tell whether it changed.
    ///
    /// # Errors
    /// [`ConfigError`] with every problem found.
    pub fn load(&self, generation: u64) -> Result<(Snapshot, u64), ConfigError> {
        self.load_with(generation, self.master_keys().as_deref())
    }

    /// Like [`Loader::load`], but first reads the master keys again when they came from a key file; the keys are
    /// returned for the caller to put in use ([`Loader::use_master_keys`]) once the snapshot is in force. A key
    /// file that does not read is reported in [`Loaded::key_file_error`] and the keys in use build the snapshot.
    ///
    /// # Errors
    /// What [`Loader::load`] returns.
    pub fn load_fresh(&self, generation: u64) -> Result<Loaded, ConfigError> {
        let current = self.master_keys();
        let (master_keys, key_file_error) = match current.as_ref().and_then(|k| k.file()) {
            Some(file) => match MasterKeys::from_file(file) {
                Ok(keys) => (Some(Arc::new(keys)), None),
                Err(e) => (current, Some(e)),
            },
            None => (current, None),
        };
        let (snapshot, _) = self.load_with(generation, master_keys.as_deref())?;
        Ok(Loaded {
            snapshot,
            master_keys,
            key_file_error,
        })
    }

    /// Puts `keys` in use for everything built or sealed from now on.
    pub fn use_master_keys(&self, keys: Option<Arc<MasterKeys>>) {
        self.master_keys.store(keys);
    }

    fn load_with(
        &self,
        generation: u64,
        master_keys: Option<&MasterKeys>,
    ) -> Result<(Snapshot, u64), ConfigError> {
        let text = self.read()?;
        let hash = hash_bytes(text.as_bytes());
        let (store_version, objects) = match &self.store {
            Some(store) => store.load().map_err(|e| match e {
                StoreError::Corrupt(why) => ConfigError::StoreRecord(why),
                other => ConfigError::Store(other.to_string()),
            })?,
            None => (0, Vec::new()),
        };
        let mut snapshot = self.build(&text, &objects, generation, master_keys)?;
        snapshot.store_version = store_version;
        Ok((snapshot, hash))
    }
}

/// Whether routing-file text declares nothing: only blank lines, comments, and at most `allow_empty`.
fn declares_nothing(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line.starts_with("allow_empty"))
}

/// Parses TOML text into the raw types. `origin` names the file in messages.
///
/// # Errors
/// [`ConfigError::Parse`] with the parser's message (it carries line and column).
pub fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        message: e.to_string(),
    })
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Finds the line of a validation path such as `llm[2].credential` or `listeners.public` in TOML written in the
/// usual `[table]` / `[[array]]` form. `None` when the file uses another form (inline tables, dotted keys).
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let mut parts = path.split('.');
    let head = parts.next()?;
    let key = parts.next();
    let (table, index) = match head.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (head, None),
    };
    let header = match index {
        Some(_) => format!("[[{table}]]"),
        None => format!("[{table}]"),
    };
    let wanted = index.unwrap_or(0);
    let mut seen = 0usize;
    let mut start = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim() == header {
            if seen == wanted {
                start = Some(n);
                break;
            }
            seen += 1;
        }
    }
    let start = start?;
    let Some(key) = key.map(|k| k.split('[').next().unwrap_or(k)) else {
        return Some(start + 1);
    };
    for (n, line) in text.lines().enumerate().skip(start + 1) {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(n + 1);
        }
    }
    Some(start + 1)
}

/// Publishes snapshots: the initial one, then one per successful reload.
pub struct Reloader {
    loader: Loader,
    tx: SnapshotTx,
    readiness: Arc<Readiness>,
    metrics: ReloadMetrics,
    watch: Watch,
}

struct ReloadMetrics {
    reloads: IntCounterVec,
    generation: IntGauge,
    last_ok: IntGauge,
    last_ok_time: IntGauge,
}

// === impl Reloader ===

impl Reloader {
    /// Loads the file once (generation 1) and sets up publishing. Registers the reload metrics in `registry`.
    ///
    /// # Errors
    /// The first load's [`ConfigError`]: `serve` refuses to start on a bad file.
    pub fn start(
        loader: Loader,
        readiness: Arc<Readiness>,
        registry: &Registry,
    ) -> Result<(Self, SnapshotRx), ConfigError> {
        let read = stamps(&loader);
        let snapshot = match loader.load_fresh(1) {
            // At start the keys were just read from the same file; one that fails now fails `serve` there.
            Ok(loaded) => {
                loader.use_master_keys(loaded.master_keys);
                loaded.snapshot
            }
            Err(ConfigError::Store(why)) => {
                // The shared store is down at start: serve the routing file alone (a subset of the topology, so
                // it can only refuse more), report not ready, and catch up when the store answers.
                tracing::error!(
                    reason = "store_unreachable",
                    "cannot read the store at start ({why}); serving the routing file alone"
                );
                readiness.set_store_unreachable(true);
                readiness.set_store_topology_missing(true);
                loader.build_with(&[], 1)?
            }
            Err(ConfigError::StoreRecord(why)) => {
                // A newer replica wrote a record this build cannot read: serve the file alone, not ready, and never
                // write over that record (every commit decodes the current record first, and fails the same way).
                tracing::error!(
                    reason = "store_unreadable",
                    "the store holds a record this idguard cannot read ({why}); serving the routing file alone"
                );
                readiness.set_store_unreadable(true);
                loader.build_with(&[], 1)?
            }
            Err(e) => return Err(e),
        };
        let metrics = ReloadMetrics::new(registry);
        metrics.generation.set(1);
        metrics.last_ok.set(1);
        metrics.last_ok_time.set(now_secs());
        metrics.reloads.with_label_values(&["success"]).inc();
        readiness.set_config(snapshot.is_sealed());
        log_credential_problems(&snapshot);
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        Ok((
            Self {
                loader,
                tx,
                readiness,
                metrics,
                watch: Watch::new(read),
            },
            rx,
        ))
    }

    /// Another receiver of published snapshots.
    pub fn subscribe(&self) -> SnapshotRx {
        self.tx.subscribe()
    }

    /// Rebuilds from the file (and the key file, when the master keys came from one) now. On success publishes the
    /// new snapshot, puts the keys it was built with in use, and returns its generation; on failure keeps the
    /// running snapshot and keys, logs every error and returns them.
    ///
    /// # Errors
    /// The [`ConfigError`] that kept the file from loading.
    pub fn reload_now(&mut self) -> Result<u64, ConfigError> {
        let next_generation = self.tx.borrow().generation + 1;
        self.watch.read_as(stamps(&self.loader));
        let loaded = self.loader.load_fresh(next_generation);
        self.apply(loaded)
    }

    /// Like [`Reloader::reload_now`], but the load — file and store I/O, which for Redis may wait on the network —
    /// runs on the blocking pool, so the runtime thread (the proxy's only one with `--workers 1`) never waits.
    ///
    /// # Errors
    /// The [`ConfigError`] that kept the file from loading.
    pub async fn reload(&mut self) -> Result<u64, ConfigError> {
        let next_generation = self.tx.borrow().generation + 1;
        // Stamped before reading: a write that lands during the load changes the stamp, so it is read again.
        self.watch.read_as(stamps(&self.loader));
        let loader = self.loader.clone();
        let loaded = tokio::task::spawn_blocking(move || loader.load_fresh(next_generation))
            .await
            .unwrap_or_else(|e| Err(ConfigError::Store(format!("the load task failed: {e}"))));
        self.apply(loaded)
    }

    fn apply(&mut self, loaded: Result<Loaded, ConfigError>) -> Result<u64, ConfigError> {
        match &loaded {
            Ok(_) => self.readiness.set_store_unreadable(false),
            Err(ConfigError::StoreRecord(_)) => self.readiness.set_store_unreadable(true),
            // Other failures say nothing about the store's records: the flag keeps what the last load found.
            Err(_) => {}
        }
        let current = self.tx.borrow().clone();
        let next_generation = current.generation + 1;
        match loaded {
            Ok(Loaded { snapshot, .. }) if snapshot.store_version < current.store_version => {
                // A lagging or restored Redis replica: applying it would undo changes already in force.
                tracing::error!(
                    reason = "topology_version_regression",
                    running = current.store_version,
                    offered = snapshot.store_version,
                    "the store offers an older topology version; keeping the running one"
                );
                self.metrics.last_ok.set(0);
                Err(ConfigError::Store("topology version regression".into()))
            }
            Ok(Loaded {
                snapshot,
                master_keys,
                key_file_error,
            }) => {
                if snapshot.settings.public_addr != current.settings.public_addr
                    || snapshot.settings.admin_addr != current.settings.admin_addr
                    || snapshot.settings.tls != current.settings.tls
                    || snapshot.settings.admin_tls.is_some() != current.settings.admin_tls.is_some()
                {
                    // The admin listener's certificate files are read again at every reload; only turning its
                    // TLS on or off waits for a restart.
                    tracing::warn!(
                        reason = "listener_change_ignored",
                        "listener addresses, the public listener's TLS files, or whether the admin listener \
                         serves TLS changed; they apply at the next restart"
                    );
                }
                self.use_master_keys(master_keys);
                self.readiness.set_config(snapshot.is_sealed());
                // A load that succeeded read the store (when there is one): the topology is whole again.
                self.readiness.set_store_topology_missing(false);
                log_credential_problems(&snapshot);
                self.metrics
                    .generation
                    .set(i64::try_from(next_generation).unwrap_or(i64::MAX));
                self.metrics.last_ok_time.set(now_secs());
                self.metrics.reloads.with_label_values(&["success"]).inc();
                if let Some(e) = key_file_error {
                    // The key file on disk is not in force: say so on the gauge operators alert on.
                    self.metrics.last_ok.set(0);
                    tracing::error!(
                        reason = "master_keys_unreadable",
                        "the master-key file cannot be used ({e}); the keys in use stay"
                    );
                } else {
                    self.metrics.last_ok.set(1);
                }
                self.tx.send_replace(Arc::new(snapshot));
                tracing::info!(
                    generation = next_generation,
                    reason = "config_reloaded",
                    "configuration reloaded"
                );
                Ok(next_generation)
            }
            Err(err) => {
                self.metrics.last_ok.set(0);
                self.metrics.reloads.with_label_values(&["failure"]).inc();
                log_config_error(&err);
                tracing::error!(
                    generation = current.generation,
                    reason = "config_reload_failed",
                    "configuration reload failed; the running configuration stays in force"
                );
                Err(err)
            }
        }
    }

    /// Puts the keys a reload read in use, saying so when their terms changed (never anything about the keys
    /// themselves).
    fn use_master_keys(&self, keys: Option<Arc<MasterKeys>>) {
        let before = self.loader.master_keys();
        let terms = |k: &Option<Arc<MasterKeys>>| k.as_ref().map(|k| (k.terms(), k.current_term()));
        if terms(&before) != terms(&keys)
            && let Some(keys) = &keys
        {
            tracing::info!(
                terms = ?keys.terms(),
                sealing_term = keys.current_term(),
                reason = "master_keys_reloaded",
                "master keys read again from their file"
            );
        }
        self.loader.use_master_keys(keys);
    }

    /// Watches the routing file and the key file (polling their metadata at the snapshot's
    /// `reload.watch_interval_ms`) and reloads once a change has settled, or whenever `trigger` is notified
    /// (SIGHUP, an admin API write), until `shutdown` completes.
    pub async fn run(mut self, trigger: Arc<Notify>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let interval = self
                .tx
                .borrow()
                .settings
                .watch_interval
                .unwrap_or(Duration::from_secs(3600));
            let watching = self.tx.borrow().settings.watch_interval.is_some();
            tokio::select! {
                () = &mut shutdown => return,
                () = trigger.notified() => {
                    let _ = self.reload().await;
                }
                () = tokio::time::sleep(interval), if watching => {
                    if self.watch.poll(stamps(&self.loader)) {
                        let _ = self.reload().await;
                    }
                }
            }
        }
    }
}

/// The stamps of the loader's routing file and of the key file its master keys came from.
fn stamps(loader: &Loader) -> Stamps {
    let keys = loader.master_keys();
    settle::stamps(loader.path(), keys.as_ref().and_then(|k| k.file()))
}

/// Logs every error of a failed load, one line each, with its location.
pub fn log_config_error(err: &ConfigError) {
    match err {
        ConfigError::Invalid(ValidationErrors(list)) => {
            for ValidationError {
                path,
                line,
                message,
            } in list
            {
                // `line` is recorded as a plain number, and left out when unknown (never `Some(32)`).
                tracing::error!(field = %path, line = *line, reason = "config_invalid", "{message}");
            }
        }
        other => tracing::error!(reason = "config_invalid", "{other}"),
    }
}

fn log_credential_problems(snapshot: &Snapshot) {
    for problem in snapshot.credential_problems() {
        // The line only when there is one: a stored credential has none, and `line` then is simply absent.
        match problem.line {
            Some(line) => tracing::error!(
                field = %problem.path,
                line,
                reason = "credential_unavailable",
                "{}; requests that need it get 502",
                problem.message
            ),
            None => tracing::error!(
                field = %problem.path,
                reason = "credential_unavailable",
                "{}; requests that need it get 502",
                problem.message
            ),
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// === impl ReloadMetrics ===

impl ReloadMetrics {
    // Metric constructors fail only on malformed names or label sets; ours are literals, so a failure is a
    // programming error caught by every test run.
    #[allow(clippy::expect_used)]
    fn new(registry: &Registry) -> Self {
        let reloads = IntCounterVec::new(
            Opts::new(
                "idguard_config_reloads_total",
                "Configuration loads by result (success, failure).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let generation = IntGauge::new(
            "idguard_config_generation",
            "Generation of the configuration in force.",
        )
        .expect("valid metric");
        let last_ok = IntGauge::new(
            "idguard_config_last_reload_successful",
            "1 when the last reload attempt succeeded, 0 when the running configuration is older than the file.",
        )
        .expect("valid metric");
        let last_ok_time = IntGauge::new(
            "idguard_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load.",
        )
        .expect("valid metric");
        for c in [
            Box::new(reloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(generation.clone()),
            Box::new(last_ok.clone()),
            Box::new(last_ok_time.clone()),
        ] {
            // Fails only when a second Reloader registers on the same registry; its metrics then go unexported.
            if let Err(e) = registry.register(c) {
                tracing::warn!("metric registration failed: {e}");
            }
        }
        Self {
            reloads,
            generation,
            last_ok,
            last_ok_time,
        }
    }
}
