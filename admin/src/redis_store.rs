//! The Redis store, for several replicas sharing one topology.
//!
//! Keys (all under the configured prefix `p`, as the hash tag `{p}` so that every key lives in one Redis Cluster
//! slot and one Lua script or `MULTI` may touch any of them): `{p}:objects` (a hash, field `kind/id` → the stored
//! object's JSON), `{p}:epoch` (the store's identity), `{p}:version` (the topology version), `{p}:idem:<key>`,
//! `{p}:jti:<digest>`, `{p}:revoked:<digest>`, `{p}:cache:<digest>`, `{p}:fail:<digest>:<minute>` (shared
//! failed-authentication counters), `{p}:secret-used:<digest>` (client secrets' last use), `{p}:audit` (the
//! shared audit stream, capped at `[store] audit_stream_max_len` records); channel `{p}:changed`.
//! [`RedisStore::key`] is the only place that names them. Digests are (keyed) SHA-256 hex computed by callers: no
//! raw token or id is ever a key. A commit reads the current versions, checks the preconditions, writes the audit record to the
//! local audit log (fsync), then runs one Lua script that re-checks the versions it read, applies the change,
//! increments the topology version, appends the audit records to `<p>:audit` and publishes the version —
//! atomically, so concurrent writers through different replicas cannot interleave, and the stream shows exactly
//! the changes that were applied. The local file stays the durable write-ahead copy.
//!
//! [`watch`] keeps a replica current: pub/sub delivers each new version at once, and polling the version every
//! 200 ms covers lost messages and reconnects; both go through tokio and the connection manager, which reconnects
//! by itself. On a Redis Cluster there is no subscription (pub/sub is per node there): the 200 ms poll alone
//! carries change notification.
//!
//! How connections are made — standalone or Cluster, TLS, the ACL user, timeouts, back-off — is
//! [`connect`]'s business alone. While Redis is unreachable the replica keeps serving its last topology; past `redis_staleness_ms`
//! `/readyz` reports `store_unreachable`, and past `redis_max_staleness_ms` the proxy answers 503 until Redis is
//! back (the topology may have changed without it).
//!
//! The store carries an identity (`{p}:epoch`, see `redis_store/epoch.rs`): a Redis that comes back empty, or
//! another Redis, is never adopted silently. With a master key, the keys every replica must share (the fingerprint
//! key, the identity service's signing seed) are derived from it ([`idguard_config::hashes::fleet_key`]), not kept
//! in Redis, so they survive its loss.
//!
//! Durability is Redis's: run it with `appendonly yes` (and `appendfsync always` for every acknowledged write to
//! survive a Redis crash).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use idguard_config::store::{
    AuditPage, AuditQuery, AuditRecord, IdempotentAnswer, IdentityStore, Recovery, Store,
    StoreError, StoreMismatch, StoredObject, Write,
};
use idguard_config::{MasterKeys, Readiness};
use redis::Commands;
use tokio::sync::Notify;

use crate::store::{append_audit, create_private_dir};

mod audit;
pub mod connect;
mod epoch;
mod failures;
mod secret_use;

pub use connect::RedisOptions;
use connect::{AsyncConn, Backoff, Connector};

/// How often the watcher polls the topology version.
const POLL: Duration = Duration::from_millis(200);
/// How long idempotency answers are kept.
const IDEMPOTENCY_TTL_SECS: u64 = 86_400;

// KEYS[5] is the store's identity, ARGV[6 + 3n] the one this replica remembers: a store that lost its data, or
// another store, takes no write. KEYS[4] is the shared audit stream; the records follow the identity in ARGV.
const COMMIT: &str = r#"
local n = tonumber(ARGV[1])
local epoch = redis.call('GET', KEYS[5])
if not epoch then return -2 end
if cjson.decode(epoch)['id'] ~= ARGV[6 + 3 * n] then return -3 end
for i = 0, n - 1 do
  local cur = redis.call('HGET', KEYS[1], ARGV[2 + 3 * i])
  local version = 0
  if cur then version = cjson.decode(cur)['version'] end
  if version ~= tonumber(ARGV[3 + 3 * i]) then return -1 end
end
for i = 0, n - 1 do
  local value = ARGV[4 + 3 * i]
  if value == '' then redis.call('HDEL', KEYS[1], ARGV[2 + 3 * i])
  else redis.call('HSET', KEYS[1], ARGV[2 + 3 * i], value) end
end
local topology = redis.call('INCR', KEYS[2])
local answer = ARGV[2 + 3 * n]
if answer ~= '' then redis.call('SET', KEYS[3], answer, 'EX', ARGV[3 + 3 * n]) end
for i = 7 + 3 * n, #ARGV do
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5 + 3 * n], '*', 'record', ARGV[i])
end
redis.call('PUBLISH', ARGV[4 + 3 * n], topology)
return topology
"#;

/// The Redis store.
pub struct RedisStore {
    connector: Connector,
    prefix: String,
    audit_path: PathBuf,
    audit_max_len: u64,
    commit: redis::Script,
    identity: epoch::Identity,
    /// The master keys the fleet keys are derived from; `None`: shared secrets are random values kept in Redis.
    fleet: Option<Arc<MasterKeys>>,
    /// Opened to read (`idguard export`): a load never creates the store's identity.
    read_only: bool,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// === impl RedisStore ===

impl RedisStore {
    /// A store reached as `options` say, under `prefix`, auditing into `<data_dir>/audit.log`. Does not connect:
    /// a replica starts while Redis is down and catches up when it returns.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is malformed or carries a password, a TLS file cannot be read,
    /// or the data directory cannot be made.
    pub fn open(options: &RedisOptions, prefix: &str, data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(unavailable)?;
        let connector = Connector::new(options)?;
        Ok(Self {
            connector,
            prefix: prefix.to_owned(),
            audit_path: data_dir.join("audit.log"),
            audit_max_len: idguard_config::defaults::AUDIT_STREAM_MAX_LEN,
            commit: redis::Script::new(COMMIT),
            identity: epoch::Identity::open(data_dir)?,
            fleet: None,
            read_only: false,
        })
    }

    /// Keeps about `max_len` records in the shared audit stream (`[store] audit_stream_max_len`).
    #[must_use]
    pub fn with_audit_stream_max_len(mut self, max_len: u64) -> Self {
        self.audit_max_len = max_len.max(1);
        self
    }

    /// For a command that only reads (`idguard export`): loading never gives an empty store its identity.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Derives the shared secrets from `master_keys` ([`idguard_config::hashes::fleet_key`]) instead of keeping
    /// random ones in Redis.
    #[must_use]
    pub fn with_master_keys(mut self, master_keys: Option<Arc<MasterKeys>>) -> Self {
        self.fleet = master_keys;
        self
    }

    /// The client-secret fingerprint key every replica shares: derived from the master key, or (without one) a
    /// random value kept in Redis, which needs Redis now and does not survive its loss (logged as a warning).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] without a master key while Redis cannot be reached.
    pub fn fingerprint_key(&self) -> Result<[u8; 32], StoreError> {
        let name = idguard_config::hashes::FINGERPRINT_KEY_NAME;
        if self.fleet.is_none() {
            tracing::warn!(
                reason = "fleet_keys_in_redis",
                "no master key: the fingerprint key and the signing seed are kept in Redis and will not survive \
                 its loss (client secrets and issued tokens would stop working); configure a master key"
            );
        }
        let mut init = zeroize::Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(init.as_mut()).map_err(|_| unavailable("no randomness"))?;
        self.shared_secret(name, &init)
    }

    /// `idguard_store_identity_mismatch`, to register.
    pub fn identity_gauge(&self) -> prometheus::IntGauge {
        self.identity.gauge()
    }

    /// Why the store is not the one this replica remembers, if it is not.
    pub fn mismatch(&self) -> Option<StoreMismatch> {
        self.identity.mismatch()
    }

    /// The key (or channel) `name` under this store's prefix: `{<prefix>}:<name>`. The braces are a Redis
    /// Cluster hash tag: every key of one deployment hashes to the same slot, so one atomic operation may touch
    /// any of them.
    pub fn key(&self, name: &str) -> String {
        format!("{{{}}}:{name}", self.prefix)
    }

    fn conn(&self) -> Result<connect::Conn, StoreError> {
        self.connector.sync()
    }

    /// The error for a commit the Lua re-check refused: the first write whose precondition no longer holds, read
    /// again, so a create that lost a race to another replica is [`StoreError::Exists`] like a sequential
    /// duplicate, and a stale `If-Match` is [`StoreError::Precondition`].
    fn lost_race(
        &self,
        conn: &mut connect::Conn,
        writes: &[Write],
        fields: &[String],
    ) -> StoreError {
        let current: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key("objects"))
            .arg(fields)
            .query(conn)
            .unwrap_or_default();
        let version = |text: &Option<String>| {
            text.as_deref()
                .and_then(|t| serde_json::from_str::<StoredObject>(t).ok())
                .map(|o| o.version)
        };
        if let Some((w, _)) = writes
            .iter()
            .zip(&current)
            .find(|(w, cur)| !w.expect.holds(version(cur)))
        {
            return StoreError::unmet(w);
        }
        // Changed and changed back, or not readable now: a precondition failed all the same.
        writes.first().map_or_else(
            || StoreError::Unavailable("the commit was refused".into()),
            |w| StoreError::Precondition {
                kind: w.kind.as_str(),
                id: w.id.clone(),
            },
        )
    }
}

impl Store for RedisStore {
    fn version(&self) -> Result<u64, StoreError> {
        let v: Option<u64> = self.conn()?.get(self.key("version")).map_err(unavailable)?;
        Ok(v.unwrap_or(0))
    }

    fn load(&self) -> Result<(u64, Vec<StoredObject>), StoreError> {
        let mut conn = self.conn()?;
        let mut created = false;
        let (version, objects) = loop {
            // The identity is read in the same transaction as the contents: contents are never used without it.
            let (version, objects, epoch): (Option<u64>, HashMap<String, String>, Option<String>) =
                redis::pipe()
                    .atomic()
                    .get(self.key("version"))
                    .hgetall(self.key("objects"))
                    .get(self.key("epoch"))
                    .query(&mut conn)
                    .map_err(unavailable)?;
            let epoch = epoch
                .as_deref()
                .map(epoch::EpochRecord::parse)
                .transpose()?;
            let empty = objects.is_empty() && version.unwrap_or(0) == 0;
            match self.identity.judge(epoch.as_ref(), empty) {
                epoch::Verdict::Same => break (version, objects),
                epoch::Verdict::Mismatch(m) => return Err(StoreError::Mismatch(m)),
                // A reader (`idguard export`) never gives a store its identity: that is a serving replica's act.
                epoch::Verdict::Create if self.read_only => break (version, objects),
                epoch::Verdict::Create if !created => {
                    self.create_epoch(&mut conn)?;
                    created = true;
                }
                epoch::Verdict::Create => {
                    return Err(unavailable("the store's identity could not be created"));
                }
            }
        };
        let mut out: Vec<StoredObject> = objects
            .iter()
            .map(|(field, v)| serde_json::from_str(v).map_err(|e| StoreError::corrupt(field, &e)))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        self.identity.loaded(version.unwrap_or(0), &out);
        Ok((version.unwrap_or(0), out))
    }

    fn commit(
        &self,
        writes: &[Write],
        audit: &[AuditRecord],
        idempotency: Option<(&str, &IdempotentAnswer)>,
    ) -> Result<u64, StoreError> {
        let epoch = match self.identity.for_write()? {
            Some(epoch) => epoch,
            // Nothing remembered yet (Redis was down at start): establish the identity as a load does.
            None => {
                self.load()?;
                self.identity
                    .for_write()?
                    .ok_or_else(|| unavailable("the store's identity is not established"))?
            }
        };
        let mut conn = self.conn()?;
        let fields: Vec<String> = writes
            .iter()
            .map(|w| format!("{}/{}", w.kind.as_str(), w.id))
            .collect();
        let current: Vec<Option<String>> = if fields.is_empty() {
            Vec::new()
        } else {
            redis::cmd("HMGET")
                .arg(self.key("objects"))
                .arg(&fields)
                .query(&mut conn)
                .map_err(unavailable)?
        };
        let now = now();
        let mut invocation = self.commit.prepare_invoke();
        let idem_key = idempotency.map_or_else(
            || self.key("idem:-"),
            |(k, _)| self.key(&format!("idem:{k}")),
        );
        invocation
            .key(self.key("objects"))
            .key(self.key("version"))
            .key(idem_key)
            .key(self.key("audit"))
            .key(self.key("epoch"));
        invocation.arg(writes.len());
        for ((w, field), cur) in writes.iter().zip(&fields).zip(&current) {
            let cur: Option<StoredObject> = cur
                .as_deref()
                .map(|text| serde_json::from_str(text).map_err(|e| StoreError::corrupt(field, &e)))
                .transpose()?;
            let ok = w.expect.holds(cur.as_ref().map(|c| c.version));
            if !ok {
                return Err(StoreError::unmet(w));
            }
            let value = match &w.body {
                Some(body) => serde_json::to_string(&StoredObject {
                    kind: w.kind,
                    id: w.id.clone(),
                    version: cur.as_ref().map_or(1, |c| c.version + 1),
                    created_at: cur.as_ref().map_or(now, |c| c.created_at),
                    updated_at: now,
                    body: body.clone(),
                })
                .map_err(unavailable)?,
                None => String::new(),
            };
            invocation
                .arg(field)
                .arg(cur.as_ref().map_or(0, |c| c.version))
                .arg(value);
        }
        let answer = match idempotency {
            Some((_, a)) => serde_json::to_string(a).map_err(unavailable)?,
            None => String::new(),
        };
        invocation
            .arg(answer)
            .arg(IDEMPOTENCY_TTL_SECS)
            .arg(self.key("changed"))
            .arg(self.audit_max_len)
            .arg(epoch)
            .arg(audit::encode(audit)?);
        // The audit record is durable before the change exists anywhere.
        append_audit(&self.audit_path, audit)?;
        let version: i64 = invocation.invoke(&mut conn).map_err(unavailable)?;
        if version == -2 || version == -3 {
            let mismatch = if version == -2 {
                StoreMismatch::Empty
            } else {
                StoreMismatch::Replaced
            };
            self.identity.found(mismatch);
            return Err(StoreError::Mismatch(mismatch));
        }
        if version < 0 {
            // Another replica changed one of these objects between our read and our write.
            return Err(self.lost_race(&mut conn, writes, &fields));
        }
        Ok(u64::try_from(version).unwrap_or(0))
    }

    fn idempotent(&self, key: &str) -> Result<Option<IdempotentAnswer>, StoreError> {
        let v: Option<String> = self
            .conn()?
            .get(self.key(&format!("idem:{key}")))
            .map_err(unavailable)?;
        v.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::corrupt("idempotency answer", &e))
        })
        .transpose()
    }

    fn audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        audit::read(&mut self.conn()?, &self.key("audit"), query)
    }

    fn recover(&self, recovery: Recovery, actor: &str) -> Result<u64, StoreError> {
        self.recover_identity(recovery, actor)
    }

    fn secrets_last_used(&self, use_keys: &[[u8; 32]]) -> Result<Vec<Option<u64>>, StoreError> {
        let keys: Vec<String> = use_keys
            .iter()
            .map(|k| self.key(&secret_use::name(k)))
            .collect();
        secret_use::read(&mut self.conn()?, &keys)
    }
}

impl IdentityStore for RedisStore {
    fn record_secret_use(&self, use_key: &[u8; 32], at: u64) -> Result<(), StoreError> {
        let key = self.key(&secret_use::name(use_key));
        secret_use::record(&mut self.conn()?, &key, at)
    }

    fn record_failure(
        &self,
        key_digest: &[u8; 32],
        window: u64,
        expires_at: u64,
    ) -> Result<u32, StoreError> {
        let key = self.key(&failures::name(key_digest, window));
        failures::record(&mut self.conn()?, &key, expires_at)
    }

    fn failures(&self, key_digest: &[u8; 32], window: u64) -> Result<u32, StoreError> {
        let key = self.key(&failures::name(key_digest, window));
        failures::count(&mut self.conn()?, &key)
    }

    fn shared_secret(&self, name: &str, init: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        if let Some(master) = &self.fleet {
            // Derived, not stored: the same on every replica, with or without Redis.
            let key = idguard_config::hashes::fleet_key(master, &self.prefix, name)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            return Ok(*key);
        }
        let key = self.key(&format!("shared:{name}"));
        let mut conn = self.conn()?;
        // SET NX then GET: whichever replica wrote first, everyone reads the same value.
        redis::cmd("SET")
            .arg(&key)
            .arg(init.as_slice())
            .arg("NX")
            .query::<Option<String>>(&mut conn)
            .map_err(unavailable)?;
        let stored: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query(&mut conn)
            .map_err(unavailable)?;
        <[u8; 32]>::try_from(stored.as_slice())
            .map_err(|_| StoreError::Unavailable(format!("{key} does not hold 32 bytes")))
    }

    fn claim_jti(&self, jti_digest: &[u8; 32], expires_at: u64) -> Result<bool, StoreError> {
        if expires_at <= now() {
            return Ok(true);
        }
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(&format!("jti:{}", hex(jti_digest))))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(expires_at)
            .query(&mut self.conn()?)
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    fn revoke(&self, jti_digest: &[u8; 32], expires_at: u64) -> Result<(), StoreError> {
        if expires_at <= now() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let now = now();
        // The key answers `is_revoked`; the log lets other replicas' proxies learn of it within a second.
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.key(&format!("revoked:{}", hex(jti_digest))))
            .arg(1)
            .arg("EXAT")
            .arg(expires_at)
            .ignore()
            .cmd("ZADD")
            .arg(self.key("revocations"))
            .arg(now)
            .arg(format!("{}:{expires_at}", hex(jti_digest)))
            .ignore()
            // Entries older than a day are of no use to a replica that polls every second.
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.key("revocations"))
            .arg("-inf")
            .arg(now.saturating_sub(86_400))
            .ignore()
            .query::<()>(&mut conn)
            .map_err(unavailable)
    }

    fn revocations_since(&self, since: u64) -> Result<Vec<([u8; 32], u64, u64)>, StoreError> {
        let entries: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("revocations"))
            .arg(since)
            .arg("+inf")
            .arg("WITHSCORES")
            .query(&mut self.conn()?)
            .map_err(unavailable)?;
        Ok(entries
            .into_iter()
            .filter_map(|(member, at)| {
                let (digest, exp) = member.split_once(':')?;
                let bytes: Vec<u8> = (0..digest.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(digest.get(i..i + 2)?, 16).ok())
                    .collect();
                Some((<[u8; 32]>::try_from(bytes).ok()?, exp.parse().ok()?, at))
            })
            .collect())
    }

    fn is_revoked(&self, jti_digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.conn()?
            .exists(self.key(&format!("revoked:{}", hex(jti_digest))))
            .map_err(unavailable)
    }

    fn cache_put(
        &self,
        key_digest: &[u8; 32],
        value: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        if expires_at <= now() {
            return Ok(());
        }
        redis::cmd("SET")
            .arg(self.key(&format!("cache:{}", hex(key_digest))))
            .arg(value)
            .arg("EXAT")
            .arg(expires_at)
            .query::<()>(&mut self.conn()?)
            .map_err(unavailable)
    }

    fn cache_get(&self, key_digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn()?
            .get(self.key(&format!("cache:{}", hex(key_digest))))
            .map_err(unavailable)
    }
}

/// Keeps a replica current with the Redis store: notifies `reload` on every new topology version (pub/sub at
/// once on a standalone Redis, polling every 200 ms as the safety net and, on a Cluster, as the only channel) and
/// reports readiness, until `shutdown` completes. Failed connection attempts back off (bounded), so an
/// unreachable Redis is not hammered.
pub async fn watch(
    store: Arc<RedisStore>,
    reload: Arc<Notify>,
    readiness: Arc<Readiness>,
    staleness: Duration,
    max_staleness: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let subscriber = (!store.connector.is_cluster()).then(|| {
        tokio::spawn(subscribe(
            store.clone(),
            store.key("changed"),
            reload.clone(),
        ))
    });
    let mut get_version = redis::cmd("GET");
    get_version.arg(store.key("version"));
    let timeout = store.connector.response_timeout();
    let mut conn: Option<AsyncConn> = None;
    let mut backoff = Backoff::default();
    let mut last_seen: Option<u64> = None;
    let mut last_ok = Instant::now();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(POLL) => {}
        }
        if conn.is_none() && backoff.may_attempt() {
            match store.connector.connect_async().await {
                Ok(c) => {
                    backoff.succeeded();
                    conn = Some(c);
                }
                Err(e) => {
                    backoff.failed();
                    tracing::debug!(error = %e, "connecting to Redis failed");
                }
            }
        }
        let polled: Option<Option<u64>> = match conn.as_mut() {
            None => None,
            Some(c) => c.query(&get_version, timeout).await,
        };
        match polled {
            Some(version) => {
                let version = version.unwrap_or(0);
                if last_ok.elapsed() > staleness {
                    tracing::info!(reason = "store_reachable", "Redis is reachable again");
                }
                last_ok = Instant::now();
                readiness.set_store_unreachable(false);
                readiness.set_topology_expired(false);
                // What the last load (or commit) found of the store's identity.
                readiness.set_store_mismatch(store.mismatch());
                if last_seen != Some(version) {
                    last_seen = Some(version);
                    reload.notify_one();
                }
            }
            None => {
                if last_ok.elapsed() > staleness {
                    readiness.set_store_unreachable(true);
                }
                if last_ok.elapsed() > max_staleness {
                    readiness.set_topology_expired(true);
                }
            }
        }
    }
    if let Some(subscriber) = subscriber {
        subscriber.abort();
    }
}

async fn subscribe(store: Arc<RedisStore>, channel: String, reload: Arc<Notify>) {
    let mut backoff = Backoff::default();
    loop {
        if let Some(mut pubsub) = store.connector.pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            backoff.succeeded();
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                reload.notify_one();
            }
        } else {
            backoff.failed();
        }
        // Disconnected or never connected: try again after the back-off (and never more than five times a
        // second).
        tokio::time::sleep(POLL).await;
        while !backoff.may_attempt() {
            tokio::time::sleep(POLL).await;
        }
    }
}
