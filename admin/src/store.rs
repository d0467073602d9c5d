//! The embedded store: a redb database under the data directory, and an append-only audit log beside it.
//!
//! A commit is one redb write transaction: every precondition is checked inside it, the objects and the topology
//! version change together, and the idempotency record rides along. Before the transaction commits, the audit
//! records are appended to `audit.log` and fsynced; if that fails the transaction is dropped and nothing changes
//! (the audit log is never behind the data). redb commits are durable when `commit` returns, so an acknowledged
//! write survives `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use idguard_config::store::{
    AuditPage, AuditQuery, AuditRecord, IdempotentAnswer, IdentityStore, Kind, Store, StoreError,
    StoredObject, Write,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

mod audit;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// jti digest → the Unix time it may be forgotten.
const JTI: TableDefinition<&[u8], u64> = TableDefinition::new("jti");
/// jti digest → the Unix time the revocation may be forgotten.
const REVOKED: TableDefinition<&[u8], u64> = TableDefinition::new("revoked");
/// key digest → 8-byte big-endian expiry followed by the value.
const CACHE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cache");
/// Client-secret use key → the Unix time it last authenticated (see `IdentityStore::record_secret_use`).
const SECRET_USED: TableDefinition<&[u8], u64> = TableDefinition::new("secret_used");
/// Shared secrets by name (see `Store::shared_secret`).
const SHARED: TableDefinition<&str, &[u8]> = TableDefinition::new("shared");
const VERSION: &str = "topology_version";

/// The default store: `topology.redb` and `audit.log` in the data directory.
pub struct EmbeddedStore {
    db: Database,
    audit_path: PathBuf,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn key(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.as_str())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// === impl EmbeddedStore ===

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, creating the directory with mode 0700.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the directory or database cannot be opened.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(dir).map_err(unavailable)?;
        let db = Database::create(dir.join("topology.redb")).map_err(unavailable)?;
        // Create the tables once so readers never meet a missing table.
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(OBJECTS).map_err(unavailable)?;
            txn.open_table(META).map_err(unavailable)?;
            txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
            txn.open_table(JTI).map_err(unavailable)?;
            txn.open_table(REVOKED).map_err(unavailable)?;
            txn.open_table(CACHE).map_err(unavailable)?;
            txn.open_table(SECRET_USED).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(Self {
            db,
            audit_path: dir.join("audit.log"),
        })
    }

    fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        append_audit(&self.audit_path, records)
    }
}

/// Appends audit records to the log at `path` and fsyncs it. The file is opened per call on purpose: a sink that
/// disappears or breaks fails the very next write.
///
/// # Errors
/// [`StoreError::Audit`].
pub fn append_audit(path: &Path, records: &[AuditRecord]) -> Result<(), StoreError> {
    let audit = |e: std::io::Error| StoreError::Audit(e.to_string());
    let mut lines = String::new();
    for r in records {
        lines.push_str(&serde_json::to_string(r).map_err(|e| StoreError::Audit(e.to_string()))?);
        lines.push('\n');
    }
    let mut file = open_append(path).map_err(audit)?;
    file.write_all(lines.as_bytes()).map_err(audit)?;
    file.sync_data().map_err(audit)
}

/// Appends one JSON line (already serialized, carrying no secret) to the audit log at `path`, durably.
///
/// # Errors
/// [`StoreError::Audit`].
pub(crate) fn open_append_line(path: &Path, line: &str) -> Result<(), StoreError> {
    let audit = |e: std::io::Error| StoreError::Audit(e.to_string());
    let mut file = open_append(path).map_err(audit)?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(audit)?;
    file.sync_data().map_err(audit)
}

impl Store for EmbeddedStore {
    fn version(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        Ok(meta
            .get(VERSION)
            .map_err(unavailable)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    fn load(&self) -> Result<(u64, Vec<StoredObject>), StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        let version = meta
            .get(VERSION)
            .map_err(unavailable)?
            .map(|v| v.value())
            .unwrap_or(0);
        let table = txn.open_table(OBJECTS).map_err(unavailable)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(unavailable)? {
            let (key, value) = entry.map_err(unavailable)?;
            out.push(
                serde_json::from_slice(value.value())
                    .map_err(|e| StoreError::corrupt(key.value(), &e))?,
            );
        }
        Ok((version, out))
    }

    fn commit(
        &self,
        writes: &[Write],
        audit: &[AuditRecord],
        idempotency: Option<(&str, &IdempotentAnswer)>,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        let version = {
            let mut table = txn.open_table(OBJECTS).map_err(unavailable)?;
            let now = now();
            for w in writes {
                let k = key(w.kind, &w.id);
                let current: Option<StoredObject> =
                    match table.get(k.as_str()).map_err(unavailable)? {
                        Some(v) => Some(
                            serde_json::from_slice(v.value())
                                .map_err(|e| StoreError::corrupt(&k, &e))?,
                        ),
                        None => None,
                    };
                let ok = w.expect.holds(current.as_ref().map(|c| c.version));
                if !ok {
                    return Err(StoreError::unmet(w));
                }
                match &w.body {
                    Some(body) => {
                        let object = StoredObject {
                            kind: w.kind,
                            id: w.id.clone(),
                            version: current.as_ref().map_or(1, |c| c.version + 1),
                            created_at: current.as_ref().map_or(now, |c| c.created_at),
                            updated_at: now,
                            body: body.clone(),
                        };
                        let bytes = serde_json::to_vec(&object).map_err(unavailable)?;
                        table
                            .insert(k.as_str(), bytes.as_slice())
                            .map_err(unavailable)?;
                    }
                    None => {
                        table.remove(k.as_str()).map_err(unavailable)?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(unavailable)?;
            let next = meta
                .get(VERSION)
                .map_err(unavailable)?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            meta.insert(VERSION, next).map_err(unavailable)?;
            if let Some((key, answer)) = idempotency {
                let mut idem = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
                let bytes = serde_json::to_vec(answer).map_err(unavailable)?;
                idem.insert(key, bytes.as_slice()).map_err(unavailable)?;
            }
            next
        };
        // The audit record is durable before the change is: on failure the transaction is dropped, unapplied.
        self.append_audit(audit)?;
        txn.commit().map_err(unavailable)?;
        Ok(version)
    }

    fn idempotent(&self, key: &str) -> Result<Option<IdempotentAnswer>, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
        match table.get(key).map_err(unavailable)? {
            Some(v) => {
                Ok(Some(serde_json::from_slice(v.value()).map_err(|e| {
                    StoreError::corrupt("idempotency answer", &e)
                })?))
            }
            None => Ok(None),
        }
    }

    fn audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        audit::read(&self.audit_path, query)
    }

    fn secrets_last_used(&self, use_keys: &[[u8; 32]]) -> Result<Vec<Option<u64>>, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(SECRET_USED).map_err(unavailable)?;
        use_keys
            .iter()
            .map(|k| {
                table
                    .get(k.as_slice())
                    .map(|v| v.map(|v| v.value()))
                    .map_err(unavailable)
            })
            .collect()
    }
}

impl IdentityStore for EmbeddedStore {
    fn record_secret_use(&self, use_key: &[u8; 32], at: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        {
            let mut table = txn.open_table(SECRET_USED).map_err(unavailable)?;
            // Never backwards: a late write of an older use (a slow task) keeps the newer time.
            let known = table
                .get(use_key.as_slice())
                .map_err(unavailable)?
                .map(|v| v.value());
            if known.is_none_or(|t| t < at) {
                table.insert(use_key.as_slice(), at).map_err(unavailable)?;
            }
        }
        txn.commit().map_err(unavailable)
    }

    fn shared_secret(&self, name: &str, init: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        let value = {
            let mut table = txn.open_table(SHARED).map_err(unavailable)?;
            let existing = table
                .get(name)
                .map_err(unavailable)?
                .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
            match existing {
                Some(v) => v,
                None => {
                    table.insert(name, init.as_slice()).map_err(unavailable)?;
                    *init
                }
            }
        };
        txn.commit().map_err(unavailable)?;
        Ok(value)
    }

    fn claim_jti(&self, jti_digest: &[u8; 32], expires_at: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        let first = {
            let mut table = txn.open_table(JTI).map_err(unavailable)?;
            let now = now();
            let seen = table
                .get(jti_digest.as_slice())
                .map_err(unavailable)?
                .is_some_and(|v| v.value() >= now);
            if !seen {
                table
                    .insert(jti_digest.as_slice(), expires_at)
                    .map_err(unavailable)?;
            }
            // Forget expired entries a few at a time so the set stays bounded by the live tokens.
            let expired: Vec<Vec<u8>> = table
                .iter()
                .map_err(unavailable)?
                .filter_map(Result::ok)
                .filter(|(_, v)| v.value() < now)
                .take(64)
                .map(|(k, _)| k.value().to_vec())
                .collect();
            for k in expired {
                table.remove(k.as_slice()).map_err(unavailable)?;
            }
            !seen
        };
        txn.commit().map_err(unavailable)?;
        Ok(first)
    }

    fn revoke(&self, jti_digest: &[u8; 32], expires_at: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(unavailable)?;
        txn.open_table(REVOKED)
            .map_err(unavailable)?
            .insert(jti_digest.as_slice(), expires_at)
            .map_err(unavailable)?;
        txn.commit().map_err(unavailable)
    }

    fn is_revoked(&self, jti_digest: &[u8; 32]) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(REVOKED).map_err(unavailable)?;
        Ok(table
            .get(jti_digest.as_slice())
            .map_err(unavailable)?
            .is_some_and(|v| v.value() >= now()))
    }

    fn cache_put(
        &self,
        key_digest: &[u8; 32],
        value: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let mut entry = expires_at.to_be_bytes().to_vec();
        entry.extend_from_slice(value);
        let txn = self.db.begin_write().map_err(unavailable)?;
        txn.open_table(CACHE)
            .map_err(unavailable)?
            .insert(key_digest.as_slice(), entry.as_slice())
            .map_err(unavailable)?;
        txn.commit().map_err(unavailable)
    }

    fn cache_get(&self, key_digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(CACHE).map_err(unavailable)?;
        let Some(entry) = table.get(key_digest.as_slice()).map_err(unavailable)? else {
            return Ok(None);
        };
        let bytes = entry.value();
        if bytes.len() < 8 {
            return Ok(None);
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&bytes[..8]);
        Ok((u64::from_be_bytes(exp) > now()).then(|| bytes[8..].to_vec()))
    }
}

/// Creates `dir` (and parents) with mode 0700 where it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use idguard_config::store::Expect;

    use super::*;

    fn obj(id: &str) -> Write {
        Write {
            kind: Kind::Agent,
            id: id.into(),
            expect: Expect::Absent,
            body: Some(serde_json::json!({"id": id})),
        }
    }

    fn audit(id: &str) -> AuditRecord {
        AuditRecord {
            at: 0,
            actor: "admin".into(),
            auth: None,
            request_id: None,
            action: "create".into(),
            kind: Kind::Agent,
            id: id.into(),
            before: None,
            after: None,
        }
    }

    #[test]
    fn the_audit_log_reads_back_newest_first_by_pages() {
        use idguard_config::store::AuditQuery;
        let dir = std::env::temp_dir().join(format!("idguard-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = EmbeddedStore::open(&dir).unwrap();
        let empty = store
            .audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(empty.records.is_empty() && empty.next_cursor.is_none());
        for id in ["a", "b", "c"] {
            store.commit(&[obj(id)], &[audit(id)], None).unwrap();
        }
        let page = |cursor, id: Option<&str>| {
            store
                .audit(&AuditQuery {
                    limit: 2,
                    cursor,
                    id: id.map(str::to_owned),
                    ..AuditQuery::default()
                })
                .unwrap()
        };
        let first = page(None, None);
        let names: Vec<&str> = first.records.iter().map(|r| r.record.id.as_str()).collect();
        assert_eq!(names, ["c", "b"]);
        let cursor = first.next_cursor.unwrap().parse().unwrap();
        let second = page(Some(cursor), None);
        let names: Vec<&str> = second
            .records
            .iter()
            .map(|r| r.record.id.as_str())
            .collect();
        assert_eq!(names, ["a"]);
        assert_eq!(second.next_cursor, None);
        let only = page(None, Some("b"));
        assert_eq!(only.records.len(), 1);
        assert_eq!(only.records[0].cursor, "2-0");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn commits_are_versioned_checked_and_audited() {
        let dir = std::env::temp_dir().join(format!("idguard-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = EmbeddedStore::open(&dir).unwrap();
        assert_eq!(store.version().unwrap(), 0);
        assert_eq!(store.commit(&[obj("a")], &[audit("a")], None).unwrap(), 1);
        // A second create of the same id is refused as existing (the API's 409) and changes nothing.
        let err = store
            .commit(&[obj("b"), obj("a")], &[audit("b")], None)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Exists { ref id, .. } if id == "a"),
            "{err:?}"
        );
        let (version, objects) = store.load().unwrap();
        assert_eq!((version, objects.len()), (1, 1));
        // If-Match against the current version succeeds, a stale one fails.
        let update = |v| Write {
            kind: Kind::Agent,
            id: "a".into(),
            expect: Expect::Version(v),
            body: Some(serde_json::json!({"id":"a","name":"x"})),
        };
        assert_eq!(store.commit(&[update(1)], &[audit("a")], None).unwrap(), 2);
        assert!(matches!(
            store.commit(&[update(1)], &[audit("a")], None),
            Err(StoreError::Precondition { .. })
        ));
        assert_eq!(store.load().unwrap().1[0].version, 2);
        // With the audit sink broken, nothing is applied.
        std::fs::remove_file(dir.join("audit.log")).unwrap();
        std::fs::create_dir(dir.join("audit.log")).unwrap();
        let err = store.commit(&[obj("c")], &[audit("c")], None).unwrap_err();
        assert!(matches!(err, StoreError::Audit(_)));
        assert_eq!(store.load().unwrap(), (2, store.load().unwrap().1));
        assert_eq!(store.load().unwrap().1.len(), 1);
        // Shared identity state: a jti is claimed once; revocations and cache entries hold until they expire.
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let later = now() + 60;
        assert!(store.claim_jti(&a, later).unwrap());
        assert!(!store.claim_jti(&a, later).unwrap(), "a replayed jti");
        assert!(store.claim_jti(&b, now() - 1).unwrap());
        assert!(
            store.claim_jti(&b, later).unwrap(),
            "an expired claim is forgotten"
        );
        assert!(!store.is_revoked(&a).unwrap());
        store.revoke(&a, later).unwrap();
        assert!(store.is_revoked(&a).unwrap());
        store.revoke(&b, now() - 1).unwrap();
        assert!(
            !store.is_revoked(&b).unwrap(),
            "a revocation past the token's expiry no longer matters"
        );
        store.cache_put(&a, b"sealed-token", later).unwrap();
        assert_eq!(
            store.cache_get(&a).unwrap().as_deref(),
            Some(&b"sealed-token"[..])
        );
        store.cache_put(&b, b"old", now()).unwrap();
        assert_eq!(store.cache_get(&b).unwrap(), None);
        // Reopening sees everything acknowledged.
        drop(store);
        let store = EmbeddedStore::open(&dir).unwrap();
        assert_eq!(store.version().unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
