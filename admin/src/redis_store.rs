//! The Redis store, for several replicas sharing one topology.
//!
//! Keys (all under the configured prefix): `<p>:objects` (a hash, field `kind/id` → the stored object's JSON),
//! `<p>:version` (the topology version), `<p>:idem:<key>`, `<p>:jti:<digest>`, `<p>:revoked:<digest>`,
//! `<p>:cache:<digest>`; channel `<p>:changed`. Digests are SHA-256 hex computed by callers: no raw token is
//! ever a key. A commit reads the current versions, checks the preconditions, writes the audit record to the
//! local audit log (fsync), then runs one Lua script that re-checks the versions it read, applies the change,
//! increments the topology version and publishes it — atomically, so concurrent writers through different
//! replicas cannot interleave.
//!
//! [`watch`] keeps a replica current: pub/sub delivers each new version at once, and polling the version every
//! 200 ms covers lost messages and reconnects; both go through tokio and the connection manager, which reconnects
//! by itself. While Redis is unreachable the replica keeps serving its last topology; past `redis_staleness_ms`
//! `/readyz` reports `store_unreachable`, and past `redis_max_staleness_ms` the proxy answers 503 until Redis is
//! back (the topology may have changed without it).
//!
//! Durability is Redis's: run it with `appendonly yes` (and `appendfsync always` for every acknowledged write to
//! survive a Redis crash).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use idguard_config::Readiness;
use idguard_config::store::{
    AuditRecord, IdempotentAnswer, IdentityStore, Store, StoreError, StoredObject, Write,
};
use redis::Commands;
use tokio::sync::Notify;

use crate::store::{append_audit, create_private_dir};

/// How long one Redis call may take before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the watcher polls the topology version.
const POLL: Duration = Duration::from_millis(200);
/// How long idempotency answers are kept.
const IDEMPOTENCY_TTL_SECS: u64 = 86_400;

const COMMIT: &str = r#"
local n = tonumber(ARGV[1])
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
redis.call('PUBLISH', ARGV[4 + 3 * n], topology)
return topology
"#;

/// The Redis store.
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    audit_path: PathBuf,
    commit: redis::Script,
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
    /// A store at `url` under `prefix`, auditing into `<data_dir>/audit.log`. Does not connect: a replica starts
    /// while Redis is down and catches up when it returns.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is malformed or the data directory cannot be made.
    pub fn open(url: &str, prefix: &str, data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(unavailable)?;
        let client = redis::Client::open(url).map_err(unavailable)?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            audit_path: data_dir.join("audit.log"),
            commit: redis::Script::new(COMMIT),
        })
    }

    /// The client, for [`watch`].
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// The key (or channel) `name` under this store's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn conn(&self) -> Result<redis::Connection, StoreError> {
        let conn = self
            .client
            .get_connection_with_timeout(CALL_TIMEOUT)
            .map_err(unavailable)?;
        conn.set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(unavailable)?;
        conn.set_write_timeout(Some(CALL_TIMEOUT))
            .map_err(unavailable)?;
        Ok(conn)
    }

    /// The error for a commit the Lua re-check refused: the first write whose precondition no longer holds, read
    /// again, so a create that lost a race to another replica is [`StoreError::Exists`] like a sequential
    /// duplicate, and a stale `If-Match` is [`StoreError::Precondition`].
    fn lost_race(
        &self,
        conn: &mut redis::Connection,
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
        let (version, objects): (Option<u64>, HashMap<String, String>) = redis::pipe()
            .atomic()
            .get(self.key("version"))
            .hgetall(self.key("objects"))
            .query(&mut conn)
            .map_err(unavailable)?;
        let mut out: Vec<StoredObject> = objects
            .iter()
            .map(|(field, v)| serde_json::from_str(v).map_err(|e| StoreError::corrupt(field, &e)))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Ok((version.unwrap_or(0), out))
    }

    fn commit(
        &self,
        writes: &[Write],
        audit: &[AuditRecord],
        idempotency: Option<(&str, &IdempotentAnswer)>,
    ) -> Result<u64, StoreError> {
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
            .key(idem_key);
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
            .arg(self.key("changed"));
        // The audit record is durable before the change exists anywhere.
        append_audit(&self.audit_path, audit)?;
        let version: i64 = invocation.invoke(&mut conn).map_err(unavailable)?;
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
}

impl IdentityStore for RedisStore {
    fn shared_secret(&self, name: &str, init: &[u8; 32]) -> Result<[u8; 32], StoreError> {
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
/// once, polling every 200 ms as the safety net) and reports readiness, until `shutdown` completes.
pub async fn watch(
    store: Arc<RedisStore>,
    reload: Arc<Notify>,
    readiness: Arc<Readiness>,
    staleness: Duration,
    max_staleness: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let subscriber = tokio::spawn(subscribe(
        store.client(),
        store.key("changed"),
        reload.clone(),
    ));
    let version_key = store.key("version");
    let client = store.client();
    let mut manager: Option<redis::aio::ConnectionManager> = None;
    let mut last_seen: Option<u64> = None;
    let mut last_ok = Instant::now();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(POLL) => {}
        }
        if manager.is_none() {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(CALL_TIMEOUT)
                .set_response_timeout(CALL_TIMEOUT)
                .set_number_of_retries(1);
            manager = tokio::time::timeout(
                CALL_TIMEOUT * 2,
                client.get_connection_manager_with_config(config),
            )
            .await
            .ok()
            .and_then(Result::ok);
        }
        let polled = match manager.as_mut() {
            None => None,
            Some(m) => {
                let r: Result<Option<u64>, _> = tokio::time::timeout(
                    CALL_TIMEOUT,
                    redis::cmd("GET").arg(&version_key).query_async(m),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::IoError,
                        "timeout",
                    )))
                });
                r.ok()
            }
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
    subscriber.abort();
}

async fn subscribe(client: redis::Client, channel: String, reload: Arc<Notify>) {
    loop {
        if let Ok(Ok(mut pubsub)) =
            tokio::time::timeout(CALL_TIMEOUT, client.get_async_pubsub()).await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                reload.notify_one();
            }
        }
        // Disconnected or never connected: try again shortly (at most five attempts a second).
        tokio::time::sleep(POLL).await;
    }
}
