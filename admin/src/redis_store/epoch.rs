//! The Redis store's identity: `<p>:epoch`, a JSON record `{id, created_at, replaces}`, which every replica
//! remembers (in memory and in `<data_dir>/store-epoch`), so a Redis that lost its data, or another Redis, is
//! detected and never adopted silently.
//!
//! - A replica that remembers no identity adopts the store's; when the store has none either (a first deployment,
//!   or a store written by a version without identities), it creates one with `SET NX`, so replicas starting
//!   together agree.
//! - A store whose identity is missing (`store_empty` when it also holds no objects, `store_replaced` otherwise)
//!   or differs from the remembered one (`store_replaced`) is a mismatch: [`RedisStore::load`] refuses it, so the
//!   reloader keeps the last topology; commits are refused (the commit script compares the identity atomically);
//!   the store watcher reports it in `/readyz` and `idguard_store_identity_mismatch`.
//! - An operator ends a mismatch with [`Recovery::Reseed`] (this replica's last-known-good objects are written
//!   into the empty store under the remembered identity, naming the identity they replace if a fresh replica had
//!   already created one) or [`Recovery::Accept`] (a new identity naming the remembered one it replaces). A
//!   replica whose remembered identity is the store's `replaces` adopts the store's identity and its contents.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use idguard_config::store::{Recovery, StoreError, StoreMismatch, StoredObject};
use prometheus::IntGauge;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{RedisStore, now, unavailable};
use crate::store::open_append_line;

/// The file in the data directory that remembers the store's identity.
const EPOCH_FILE: &str = "store-epoch";

/// Writes `last-known-good` objects into an empty store under the remembered identity.
const RESEED: &str = r#"
if redis.call('HLEN', KEYS[1]) > 0 then return -1 end
local record = cjson.decode(ARGV[1])
local cur = redis.call('GET', KEYS[3])
if cur then
  local id = cjson.decode(cur)['id']
  if id ~= record['id'] then record['replaces'] = id end
end
redis.call('SET', KEYS[3], cjson.encode(record))
local n = tonumber(ARGV[4])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[5 + 2 * i], ARGV[6 + 2 * i]) end
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
local want = tonumber(ARGV[3]) + 1
if version >= want then want = version + 1 end
redis.call('SET', KEYS[2], want)
redis.call('PUBLISH', ARGV[2], want)
return want
"#;

/// Adopts the store as it is under a new identity.
const ACCEPT: &str = r#"
redis.call('SET', KEYS[3], ARGV[1])
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
local want = tonumber(ARGV[3]) + 1
if version >= want then want = version + 1 end
redis.call('SET', KEYS[2], want)
redis.call('PUBLISH', ARGV[2], want)
return want
"#;

/// The store's identity record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct EpochRecord {
    /// Random, 32 hex digits.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The identity this one took over from (accept, or a reseed over a fresh replica's identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// What a load makes of the store's identity.
pub(super) enum Verdict {
    /// The store is the remembered one (or was just adopted): use its contents.
    Same,
    /// Neither the store nor this replica has an identity: create one, then read again.
    Create,
    /// Keep the last topology.
    Mismatch(StoreMismatch),
}

/// What a replica remembers of the store.
pub(super) struct Identity {
    path: PathBuf,
    state: Mutex<State>,
    gauge: IntGauge,
}

#[derive(Default)]
struct State {
    remembered: Option<String>,
    mismatch: Option<StoreMismatch>,
    /// The last successful load: its version and objects, what a reseed writes back.
    last_good: Option<(u64, Vec<StoredObject>)>,
}

/// One audit line for a recovery (the object audit records name one object; these name the store).
#[derive(Serialize)]
struct RecoveryAudit<'a> {
    at: u64,
    actor: &'a str,
    action: &'static str,
    epoch: &'a str,
    replaces: Option<&'a str>,
    objects: usize,
}

// === impl EpochRecord ===

impl EpochRecord {
    fn fresh(replaces: Option<String>) -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            created_at: now(),
            replaces,
        }
    }

    /// Parses the stored record.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`].
    pub(super) fn parse(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::corrupt("epoch", &e))
    }
}

// === impl Identity ===

impl Identity {
    /// What `data_dir` remembers (nothing when the file is absent or unreadable: then the store's identity is
    /// adopted, as by a fresh replica).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the gauge cannot be made (its name is constant and valid).
    pub(super) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(EPOCH_FILE);
        let remembered = std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let gauge = IntGauge::new(
            "idguard_store_identity_mismatch",
            "1 while the shared store is empty or not the one this replica remembers (the last topology is kept)",
        )
        .map_err(unavailable)?;
        Ok(Self {
            path,
            state: Mutex::new(State {
                remembered,
                ..State::default()
            }),
            gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The gauge `idguard_store_identity_mismatch`, to register.
    pub(super) fn gauge(&self) -> IntGauge {
        self.gauge.clone()
    }

    /// The current mismatch, if any.
    pub(super) fn mismatch(&self) -> Option<StoreMismatch> {
        self.lock().mismatch
    }

    /// The identity a commit must find in the store; `None` while none is remembered yet.
    ///
    /// # Errors
    /// [`StoreError::Mismatch`] while the store is not the remembered one.
    pub(super) fn for_write(&self) -> Result<Option<String>, StoreError> {
        let state = self.lock();
        match state.mismatch {
            Some(m) => Err(StoreError::Mismatch(m)),
            None => Ok(state.remembered.clone()),
        }
    }

    /// Judges the store's identity record (`empty`: no objects and version 0), adopting it when this replica
    /// remembers none, or the one it replaces.
    pub(super) fn judge(&self, store: Option<&EpochRecord>, empty: bool) -> Verdict {
        let mut state = self.lock();
        let verdict = match (store, state.remembered.as_deref()) {
            (None, None) => return Verdict::Create,
            (None, Some(_)) if empty => Verdict::Mismatch(StoreMismatch::Empty),
            (None, Some(_)) => Verdict::Mismatch(StoreMismatch::Replaced),
            (Some(e), Some(r)) if e.id == r => Verdict::Same,
            (Some(e), remembered) => {
                if remembered.is_none() || e.replaces.as_deref() == remembered {
                    tracing::info!(
                        reason = "store_identity_adopted",
                        epoch = %e.id,
                        replaces = e.replaces.as_deref().unwrap_or(""),
                        "adopting the store's identity"
                    );
                    self.remember(&mut state, &e.id);
                    Verdict::Same
                } else {
                    Verdict::Mismatch(StoreMismatch::Replaced)
                }
            }
        };
        if let Verdict::Mismatch(m) = verdict {
            self.set_mismatch(&mut state, Some(m));
        }
        verdict
    }

    /// Records a successful load: the store is the remembered one, and these are the last-known-good objects.
    pub(super) fn loaded(&self, version: u64, objects: &[StoredObject]) {
        let mut state = self.lock();
        self.set_mismatch(&mut state, None);
        state.last_good = Some((version, objects.to_vec()));
    }

    /// Records a mismatch a commit found.
    pub(super) fn found(&self, mismatch: StoreMismatch) {
        let mut state = self.lock();
        self.set_mismatch(&mut state, Some(mismatch));
    }

    fn set_mismatch(&self, state: &mut State, mismatch: Option<StoreMismatch>) {
        if state.mismatch != mismatch {
            match mismatch {
                Some(m) => tracing::error!(
                    reason = m.as_str(),
                    "the Redis store is not the one this replica served: keeping the last topology and refusing \
                     admin writes until an operator reseeds or accepts it (see docs/scale.md)"
                ),
                None => tracing::info!(
                    reason = "store_identity_ok",
                    "the Redis store is the one remembered"
                ),
            }
        }
        state.mismatch = mismatch;
        self.gauge.set(i64::from(mismatch.is_some()));
    }

    fn remember(&self, state: &mut State, id: &str) {
        state.remembered = Some(id.to_owned());
        // Written beside the audit log; a replica that cannot write it still remembers in memory, and after a
        // restart adopts what the store holds then (as a fresh replica does).
        let tmp = self.path.with_extension("tmp");
        if let Err(e) =
            std::fs::write(&tmp, format!("{id}\n")).and_then(|()| std::fs::rename(&tmp, &self.path))
        {
            tracing::warn!(
                reason = "store_epoch_unwritable",
                "cannot remember the store's identity on disk: {e}"
            );
        }
    }
}

// === impl RedisStore (identity) ===

impl RedisStore {
    /// Creates the store's identity if it has none (`SET NX`: the first replica wins).
    pub(super) fn create_epoch(&self, conn: &mut super::connect::Conn) -> Result<(), StoreError> {
        let record = serde_json::to_string(&EpochRecord::fresh(None)).map_err(unavailable)?;
        redis::cmd("SET")
            .arg(self.key("epoch"))
            .arg(record)
            .arg("NX")
            .query::<Option<String>>(conn)
            .map_err(unavailable)?;
        Ok(())
    }

    /// [`idguard_config::store::Store::recover`] for Redis.
    pub(super) fn recover_identity(
        &self,
        recovery: Recovery,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let (remembered, mismatch, last_good) = {
            let state = self.identity.lock();
            (
                state.remembered.clone(),
                state.mismatch,
                state.last_good.clone(),
            )
        };
        let Some(remembered) = remembered else {
            return Err(StoreError::RecoveryRefused(
                "this replica remembers no store identity; it adopts the store's by itself",
            ));
        };
        let (script, record, fields, version) = match recovery {
            Recovery::Reseed => {
                let Some((version, objects)) = last_good else {
                    return Err(StoreError::RecoveryRefused(
                        "this replica has loaded no topology from the store since it started; reseed through another replica",
                    ));
                };
                let record = EpochRecord {
                    id: remembered,
                    created_at: now(),
                    replaces: None,
                };
                let fields = objects
                    .iter()
                    .map(|o| {
                        serde_json::to_string(o)
                            .map(|v| (format!("{}/{}", o.kind.as_str(), o.id), v))
                            .map_err(unavailable)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (RESEED, record, fields, version)
            }
            Recovery::Accept => {
                if mismatch.is_none() {
                    return Err(StoreError::RecoveryRefused(
                        "the store is the one this replica remembers; there is nothing to accept",
                    ));
                }
                let version = last_good.map_or(0, |(v, _)| v);
                (
                    ACCEPT,
                    EpochRecord::fresh(Some(remembered)),
                    Vec::new(),
                    version,
                )
            }
        };
        let action = match recovery {
            Recovery::Reseed => "store_reseed",
            Recovery::Accept => "store_accept",
        };
        let audit = RecoveryAudit {
            at: now(),
            actor,
            action,
            epoch: &record.id,
            replaces: record.replaces.as_deref(),
            objects: fields.len(),
        };
        let line = serde_json::to_string(&audit).map_err(|e| StoreError::Audit(e.to_string()))?;
        open_append_line(&self.audit_path, &line)?;
        let script = redis::Script::new(script);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("objects"))
            .key(self.key("version"))
            .key(self.key("epoch"))
            .arg(serde_json::to_string(&record).map_err(unavailable)?)
            .arg(self.key("changed"))
            .arg(version)
            .arg(fields.len());
        for (field, value) in &fields {
            invocation.arg(field).arg(value);
        }
        let answer: i64 = invocation.invoke(&mut self.conn()?).map_err(unavailable)?;
        if answer < 0 {
            return Err(StoreError::RecoveryRefused(
                "the store is not empty: it holds objects; accept it instead, or empty it first",
            ));
        }
        if recovery == Recovery::Accept {
            let mut state = self.identity.lock();
            self.identity.remember(&mut state, &record.id);
        }
        tracing::warn!(reason = action, epoch = %record.id, "store identity recovered by {actor}");
        Ok(u64::try_from(answer).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, replaces: Option<&str>) -> EpochRecord {
        EpochRecord {
            id: id.into(),
            created_at: 1,
            replaces: replaces.map(str::to_owned),
        }
    }

    fn fresh_dir() -> PathBuf {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let dir =
            std::env::temp_dir().join(format!("idguard-epoch-{:x}", u64::from_le_bytes(bytes)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn same(v: &Verdict) -> bool {
        matches!(v, Verdict::Same)
    }

    #[test]
    fn a_replica_adopts_remembers_and_refuses_what_it_does_not_remember() {
        let dir = fresh_dir();
        let identity = Identity::open(&dir).unwrap();
        // Nothing anywhere: create.
        assert!(matches!(identity.judge(None, true), Verdict::Create));
        // A store with an identity is adopted and remembered on disk.
        assert!(same(&identity.judge(Some(&record("e1", None)), false)));
        assert_eq!(
            std::fs::read_to_string(dir.join(EPOCH_FILE))
                .unwrap()
                .trim(),
            "e1"
        );
        assert_eq!(identity.for_write().unwrap().as_deref(), Some("e1"));
        // Empty, then replaced: refused, reported, gauged, and writes refused.
        assert!(matches!(
            identity.judge(None, true),
            Verdict::Mismatch(StoreMismatch::Empty)
        ));
        assert_eq!(identity.gauge().get(), 1);
        assert_eq!(
            identity.for_write(),
            Err(StoreError::Mismatch(StoreMismatch::Empty))
        );
        assert!(matches!(
            identity.judge(Some(&record("e2", None)), true),
            Verdict::Mismatch(StoreMismatch::Replaced)
        ));
        assert!(matches!(
            identity.judge(None, false),
            Verdict::Mismatch(StoreMismatch::Replaced)
        ));
        // A new identity naming the remembered one is adopted (accept, or a reseed over a fresh identity).
        assert!(same(&identity.judge(Some(&record("e3", Some("e1"))), true)));
        identity.loaded(0, &[]);
        assert_eq!(identity.mismatch(), None);
        assert_eq!(identity.gauge().get(), 0);
        // Another replica opening the same data directory remembers it.
        let again = Identity::open(&dir).unwrap();
        assert!(matches!(
            again.judge(Some(&record("e1", None)), false),
            Verdict::Mismatch(StoreMismatch::Replaced)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
