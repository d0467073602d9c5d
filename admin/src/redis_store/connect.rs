//! The one place that builds Redis clients: standalone or Cluster, plain or `rediss://` (the platform's roots plus
//! an optional extra CA, and an optional client certificate), with the ACL username and password from the
//! environment, the configured timeouts, and a bounded back-off between failed connection attempts.
//!
//! The password lives in a [`Secret`] here and, unavoidably, inside the redis crate's connection info; it is
//! never put in a URL, and every error that leaves this module has it replaced by `[redacted]`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use idguard_config::Secret;
use idguard_config::files::{MAX_TLS_FILE_BYTES, read_bounded};
use idguard_config::store::StoreError;
use redis::{ConnectionLike, IntoConnectionInfo, RedisResult, Value};

/// The first wait after a failed connection attempt; it doubles with each further failure.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two connection attempts: short enough that a replica is back within about a second
/// of Redis (or a promoted Cluster replica) answering again.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How to reach Redis: everything [`super::RedisStore::open`] needs besides the key prefix.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://` or `rediss://` URL; for a Cluster, seed nodes separated by commas. Never carries a password.
    pub url: String,
    /// The URL names seed nodes of a Redis Cluster.
    pub cluster: bool,
    /// The ACL user (`None`: Redis's `default` user).
    pub username: Option<String>,
    /// The ACL password.
    pub password: Option<Secret>,
    /// PEM CA the server may chain to, in addition to the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and private key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// How long connecting (TCP, TLS, AUTH) may take.
    pub connect_timeout: Duration,
    /// How long one call may wait for its answer.
    pub response_timeout: Duration,
}

/// Builds connections to one Redis deployment and paces reconnection attempts.
pub(crate) struct Connector {
    clients: Clients,
    password: Option<Secret>,
    connect_timeout: Duration,
    response_timeout: Duration,
    sync_backoff: Mutex<Backoff>,
}

#[derive(Clone)]
enum Clients {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A synchronous connection, standalone or Cluster (which follows `MOVED` and `ASK` by itself).
pub(crate) enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

/// An asynchronous connection for the watcher: a connection manager (reconnects by itself) or a Cluster
/// connection (refreshes its slot map by itself).
pub(crate) enum AsyncConn {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// Exponential back-off between failed connection attempts, bounded by [`BACKOFF_MAX`].
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    /// Why the last attempt failed (already scrubbed of the password).
    last_error: Option<String>,
}

// === impl RedisOptions ===

impl RedisOptions {
    /// A standalone Redis at `url`: no ACL user, no extra TLS material, 500 ms timeouts (the `[store]` defaults).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
        }
    }
}

// === impl Connector ===

impl Connector {
    /// Builds the clients (no connection yet) and reads the TLS files.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] for a malformed URL, a password inside it, TLS files with a non-`rediss://`
    /// URL, or unreadable TLS files. The messages never contain the password.
    pub(crate) fn new(options: &RedisOptions) -> Result<Self, StoreError> {
        let password = options.password.clone();
        let scrub = |e: &dyn std::fmt::Display| scrubbed(e, password.as_ref());
        let mut infos = Vec::new();
        for url in options
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            if idguard_config::validate::url_has_password(url) {
                return Err(StoreError::Unavailable(
                    "the Redis URL must not carry a password: set IDGUARD_REDIS_PASSWORD or \
                     IDGUARD_REDIS_PASSWORD_FILE"
                        .into(),
                ));
            }
            let mut info = url
                .into_connection_info()
                .map_err(|e| scrub(&format!("the Redis URL is not valid: {e}")))?;
            if let Some(username) = &options.username {
                info.redis.username = Some(username.clone());
            }
            if let Some(password) = &options.password {
                info.redis.password = Some(password.expose().to_owned());
            }
            infos.push(info);
        }
        if infos.is_empty() {
            return Err(StoreError::Unavailable("the Redis URL is empty".into()));
        }
        let tls = matches!(infos[0].addr, redis::ConnectionAddr::TcpTls { .. });
        let certs = tls_certificates(options)?;
        if certs.is_some() && !tls {
            return Err(StoreError::Unavailable(
                "redis_ca_file and redis_client_cert_file need a rediss:// URL".into(),
            ));
        }
        let clients = if options.cluster {
            let mut builder = redis::cluster::ClusterClient::builder(infos)
                .connection_timeout(options.connect_timeout)
                .response_timeout(options.response_timeout)
                // A few quick retries ride out a moved slot or a failover in progress; more would only hold
                // a request past its budget.
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(200)
                .retry_wait_formula(20, 2);
            if let Some(username) = &options.username {
                builder = builder.username(username.clone());
            }
            if let Some(password) = &options.password {
                builder = builder.password(password.expose().to_owned());
            }
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            Clients::Cluster(builder.build().map_err(|e| scrub(&e))?)
        } else {
            if infos.len() > 1 {
                return Err(StoreError::Unavailable(
                    "several Redis URLs need [store] redis_cluster = true".into(),
                ));
            }
            let info = infos.remove(0);
            let client = match certs {
                Some(certs) => redis::Client::build_with_tls(info, certs),
                None => redis::Client::open(info),
            };
            Clients::Single(client.map_err(|e| scrub(&e))?)
        };
        Ok(Self {
            clients,
            password,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            sync_backoff: Mutex::new(Backoff::default()),
        })
    }

    /// Whether this is a Redis Cluster (no pub/sub: the version poll carries change notification).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.clients, Clients::Cluster(_))
    }

    /// The response timeout.
    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// A new synchronous connection with the configured timeouts. While attempts keep failing, attempts are
    /// spaced by the back-off and calls in between fail at once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], without the password.
    pub(crate) fn sync(&self) -> Result<Conn, StoreError> {
        {
            let backoff = self
                .sync_backoff
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !backoff.may_attempt() {
                return Err(StoreError::Unavailable(format!(
                    "Redis is unreachable (last attempt: {}); waiting before the next one",
                    backoff.last_error.as_deref().unwrap_or("failed")
                )));
            }
        }
        let result = self.connect_sync();
        let mut backoff = self
            .sync_backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(conn) => {
                backoff.succeeded();
                Ok(conn)
            }
            Err(e) => {
                let e = self.scrub(&e);
                backoff.failed();
                backoff.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn connect_sync(&self) -> RedisResult<Conn> {
        match &self.clients {
            Clients::Single(client) => {
                let conn = client.get_connection_with_timeout(self.connect_timeout)?;
                conn.set_read_timeout(Some(self.response_timeout))?;
                conn.set_write_timeout(Some(self.response_timeout))?;
                Ok(Conn::Single(conn))
            }
            Clients::Cluster(client) => {
                let conn = client.get_connection()?;
                conn.set_read_timeout(Some(self.response_timeout))?;
                conn.set_write_timeout(Some(self.response_timeout))?;
                Ok(Conn::Cluster(Box::new(conn)))
            }
        }
    }

    /// A new asynchronous connection for the watcher (the caller paces attempts with its own [`Backoff`]).
    pub(crate) async fn connect_async(&self) -> Result<AsyncConn, StoreError> {
        let budget = self.connect_timeout * 2;
        let attempt = async {
            match &self.clients {
                Clients::Single(client) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(self.connect_timeout)
                        .set_response_timeout(self.response_timeout)
                        .set_number_of_retries(1);
                    client
                        .get_connection_manager_with_config(config)
                        .await
                        .map(AsyncConn::Single)
                }
                Clients::Cluster(client) => {
                    client.get_async_connection().await.map(AsyncConn::Cluster)
                }
            }
        };
        match tokio::time::timeout(budget, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.scrub(&e)),
            Err(_) => Err(StoreError::Unavailable(
                "connecting to Redis timed out".into(),
            )),
        }
    }

    /// A pub/sub connection (standalone only).
    pub(crate) async fn pubsub(&self) -> Option<redis::aio::PubSub> {
        match &self.clients {
            Clients::Single(client) => {
                tokio::time::timeout(self.connect_timeout * 2, client.get_async_pubsub())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Clients::Cluster(_) => None,
        }
    }

    /// `e` as a store error, with the password (if any) replaced by `[redacted]`.
    pub(crate) fn scrub(&self, e: &dyn std::fmt::Display) -> StoreError {
        scrubbed(e, self.password.as_ref())
    }
}

fn scrubbed(e: &dyn std::fmt::Display, password: Option<&Secret>) -> StoreError {
    let text = e.to_string();
    StoreError::Unavailable(match password.map(Secret::expose) {
        Some(p) if !p.is_empty() => text.replace(p, "[redacted]"),
        _ => text,
    })
}

/// The TLS material the options name, or `None` when they name none (the platform's roots still apply to a
/// `rediss://` URL then).
fn tls_certificates(options: &RedisOptions) -> Result<Option<redis::TlsCertificates>, StoreError> {
    if options.ca_file.is_none() && options.client_cert.is_none() {
        return Ok(None);
    }
    let read = |p: &Path, what: &str| {
        read_bounded(p, MAX_TLS_FILE_BYTES)
            .map_err(|e| StoreError::Unavailable(format!("reading {what} {}: {e}", p.display())))
    };
    // The redis crate replaces the platform's roots with `root_cert` when one is given: hand it the platform's
    // roots and the extra CA together, so a private CA is trusted in addition to, not instead of, the platform.
    let root_cert = match options.ca_file.as_deref() {
        Some(p) => {
            let mut bundle = platform_roots_pem();
            bundle.extend_from_slice(&read(p, "redis_ca_file")?);
            Some(bundle)
        }
        None => None,
    };
    let client_tls = match &options.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert, "redis_client_cert_file")?,
            client_key: read(key, "redis_client_key_file")?,
        }),
        None => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// The platform's trusted roots (what `rustls-native-certs` finds: on Debian, `/etc/ssl/certs`), as PEM. Roots that
/// cannot be read are skipped: the extra CA still applies.
fn platform_roots_pem() -> Vec<u8> {
    use base64::Engine as _;
    let found = rustls_native_certs::load_native_certs();
    let mut pem = Vec::new();
    for cert in found.certs {
        let body = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

// === impl Conn ===

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Self::Single(c) => c.check_connection(),
            Self::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Self::Single(c) => c.is_open(),
            Self::Cluster(c) => c.is_open(),
        }
    }
}

// === impl AsyncConn ===

impl AsyncConn {
    /// Runs `cmd` within `timeout`.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Option<T> {
        let call = async {
            match self {
                Self::Single(c) => cmd.query_async(c).await,
                Self::Cluster(c) => cmd.query_async(c).await,
            }
        };
        tokio::time::timeout(timeout, call).await.ok()?.ok()
    }
}

// === impl Backoff ===

impl Backoff {
    /// Whether an attempt may be made now.
    pub(crate) fn may_attempt(&self) -> bool {
        self.next_attempt.is_none_or(|at| Instant::now() >= at)
    }

    /// An attempt failed: wait twice as long as last time (at least [`BACKOFF_MIN`], at most [`BACKOFF_MAX`]).
    pub(crate) fn failed(&mut self) {
        let wait = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(10))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        self.next_attempt = Some(Instant::now() + wait);
    }

    /// An attempt succeeded: the next failure starts from [`BACKOFF_MIN`] again.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
        self.last_error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound_and_resets() {
        let mut b = Backoff::default();
        assert!(b.may_attempt());
        b.failed();
        assert!(!b.may_attempt());
        for _ in 0..20 {
            b.failed();
        }
        let wait = b.next_attempt.unwrap_or_else(Instant::now) - Instant::now();
        assert!(wait <= BACKOFF_MAX, "{wait:?}");
        b.succeeded();
        assert!(b.may_attempt());
    }

    #[test]
    fn errors_never_carry_the_password() {
        let password = Secret::new("hunter2-very-secret".into());
        let e = scrubbed(
            &"AUTH failed for redis://u:hunter2-very-secret@h",
            Some(&password),
        );
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let options = RedisOptions::new("redis://user:hunter2@127.0.0.1:6379");
        let Err(e) = Connector::new(&options) else {
            panic!("a URL with a password was accepted");
        };
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("IDGUARD_REDIS_PASSWORD"), "{text}");
    }
}
