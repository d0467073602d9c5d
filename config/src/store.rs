//! The durable half of the topology: objects created through the admin API, kept in a [`Store`] (the embedded
//! database by default; Redis for several replicas later). Each object is stored as the same raw type the
//! routing file uses, so the file and the API meet in one model: [`merge`] appends stored objects to the file's
//! [`RawConfig`] and one `validate()` judges both. Objects declared in the file are file-managed; the API refuses
//! to change them.

use serde::{Deserialize, Serialize};

use crate::error::{ValidationError, ValidationErrors};
#[cfg(test)]
mod tests;

use crate::raw::{
    RawAgent, RawClient, RawConfig, RawCredential, RawEdge, RawGroup, RawInbound, RawNode,
    RawOrganization, RawService, RawUser,
};

mod audit;

pub use self::audit::{
    AUDIT_PAGE_MAX, AUDIT_SCAN_MAX, AuditCursor, AuditEntry, AuditPage, AuditQuery,
};

/// The kinds of object the API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An agent (`[[agents]]`).
    Agent,
    /// A stored credential (`[[credentials]]`), sealed.
    Credential,
    /// An LLM node (`[[llm]]`).
    Llm,
    /// An external-service node (`[[external]]`).
    External,
    /// An enterprise service (`[[enterprise]]`).
    Enterprise,
    /// A directory user (`[[users]]`).
    User,
    /// A directory group (`[[groups]]`).
    Group,
    /// An organizational unit (`[[organizations]]`).
    Organization,
    /// A client application (`[[clients]]`).
    Client,
    /// An inbound authorization (`[[inbound]]`), id `client/agent`.
    Inbound,
    /// An outbound authorization (`[[outbound]]`), id `agent/node`.
    Outbound,
    /// An admin-API operator: a named principal with a role and its bearer tokens' keyed hashes. Not part of the
    /// topology (no routing-file section; [`merge`] skips it): stored here so every replica shares operators and a
    /// revocation propagates like any write.
    Operator,
}

impl Kind {
    /// The name used in keys, audit records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Credential => "credential",
            Kind::Llm => "llm",
            Kind::External => "external",
            Kind::Enterprise => "enterprise",
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Organization => "organization",
            Kind::Client => "client",
            Kind::Inbound => "inbound",
            Kind::Outbound => "outbound",
            Kind::Operator => "operator",
        }
    }
}

/// The stored-record format this build writes and the newest it reads. Every record carries it as `format`
/// (records written before it existed have none and read as 1). Raise it only when a record changes in a way an
/// older build would misread; a build then refuses, rather than misreads or overwrites, a record of a newer format
/// (see docs/scale.md, "Rolling upgrades").
pub const STORED_FORMAT: u32 = 1;

/// One stored object: its kind and id, a version that increases with every change, and its definition as the
/// raw type's JSON.
///
/// Decoding refuses a record whose `format` is newer than [`STORED_FORMAT`]: every store decodes the current
/// record before a commit, so such a record is never overwritten by an older build, and a load that meets one
/// fails (the replica keeps its running topology and reports `store_unreadable` in `/readyz`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireObject", into = "WireObject")]
pub struct StoredObject {
    /// Kind.
    pub kind: Kind,
    /// Id (for outbound edges, `agent/node`).
    pub id: String,
    /// Starts at 1; +1 per change. `If-Match` compares against it.
    pub version: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
    /// The raw definition (`RawAgent`, `RawCredential`, `RawNode`, `RawService` or `RawEdge` as JSON).
    pub body: serde_json::Value,
}

/// [`StoredObject`] as stored: the same fields plus the record format.
#[derive(Serialize, Deserialize)]
struct WireObject {
    #[serde(default = "first_format")]
    format: u32,
    kind: Kind,
    id: String,
    version: u64,
    created_at: u64,
    updated_at: u64,
    body: serde_json::Value,
}

fn first_format() -> u32 {
    1
}

/// A record in a stored format newer than this build reads. The message has no `": "`, so [`error_class`] keeps
/// it whole.
#[derive(Debug, thiserror::Error)]
#[error(
    "record in stored format {0}, newer than this idguard reads (up to {STORED_FORMAT}); upgrade this replica"
)]
pub struct NewerFormat(u32);

impl TryFrom<WireObject> for StoredObject {
    type Error = NewerFormat;

    fn try_from(w: WireObject) -> Result<Self, NewerFormat> {
        if w.format > STORED_FORMAT {
            return Err(NewerFormat(w.format));
        }
        Ok(StoredObject {
            kind: w.kind,
            id: w.id,
            version: w.version,
            created_at: w.created_at,
            updated_at: w.updated_at,
            body: w.body,
        })
    }
}

impl From<StoredObject> for WireObject {
    fn from(o: StoredObject) -> Self {
        WireObject {
            format: STORED_FORMAT,
            kind: o.kind,
            id: o.id,
            version: o.version,
            created_at: o.created_at,
            updated_at: o.updated_at,
            body: o.body,
        }
    }
}

/// What a write expects of the object's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it is.
    Any,
    /// It must not exist (create).
    Absent,
    /// It must exist at this version (`If-Match`).
    Version(u64),
    /// It must exist.
    Present,
}

impl Expect {
    /// Whether the precondition holds for an object currently at `version` (`None`: absent).
    pub fn holds(self, version: Option<u64>) -> bool {
        match (self, version) {
            (Expect::Any, _) => true,
            (Expect::Absent, v) => v.is_none(),
            (Expect::Present, v) => v.is_some(),
            (Expect::Version(want), Some(v)) => v == want,
            (Expect::Version(_), None) => false,
        }
    }
}

/// One change in a commit: put `body`, or delete when `body` is `None`.
#[derive(Debug, Clone)]
pub struct Write {
    /// Kind.
    pub kind: Kind,
    /// Id.
    pub id: String,
    /// Precondition.
    pub expect: Expect,
    /// New definition, or `None` to delete.
    pub body: Option<serde_json::Value>,
}

/// How the author of an audit record authenticated to the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// The break-glass admin token (actor `admin`).
    AdminToken,
    /// An operator's own bearer token (actor: the operator's id).
    OperatorToken,
    /// A console session of a directory user bound to an operator, signed in through the identity service's
    /// authorization-code flow (actor: the operator's id).
    ConsoleSession,
    /// A console session opened with the break-glass admin token, or the demo's one-time link (actor `admin`).
    ConsoleAdminToken,
}

/// An audit record, written before the change is acknowledged. Bodies carry no secret: the caller redacts them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: u64,
    /// Who: `admin` for the admin token, an operator's id for an operator token, `idguard` for what the binary
    /// does by itself (`reseal` for `idguard reseal`).
    pub actor: String,
    /// How the actor authenticated; absent for records written outside the admin API and before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMethod>,
    /// The admin API request that wrote it (`x-request-id`); absent outside the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `create`, `update`, `delete`.
    pub action: String,
    /// Kind.
    pub kind: Kind,
    /// Id.
    pub id: String,
    /// The object before, redacted.
    pub before: Option<serde_json::Value>,
    /// The object after, redacted.
    pub after: Option<serde_json::Value>,
}

/// A remembered answer to a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentAnswer {
    /// SHA-256 (hex) of the request that produced it; a different request under the same key is refused.
    pub request_hash: String,
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: String,
}

/// How a shared store differs from the one a replica remembers (see `docs/scale.md`, "When Redis loses its data").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMismatch {
    /// The store has no identity and no objects: it lost its data.
    Empty,
    /// The store carries another identity (or objects without one): it is not the store this replica served.
    Replaced,
}

// === impl StoreMismatch ===

impl StoreMismatch {
    /// The machine-readable reason (`/readyz`, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreMismatch::Empty => "store_empty",
            StoreMismatch::Replaced => "store_replaced",
        }
    }
}

/// An operator's answer to a [`StoreMismatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Write this replica's last-known-good objects into the (empty) store, under the remembered identity.
    Reseed,
    /// Adopt the store as it is, under a new identity that names the one it replaces.
    Accept,
}

/// Store failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A precondition failed: the object changed (or appeared, or vanished) since the caller read it.
    #[error(
        "{kind} {id:?} is not in the expected state (stale version, or already exists, or missing)"
    )]
    Precondition {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
    },
    /// A create (an [`Expect::Absent`] write) found the object already there — possibly created a moment ago
    /// by another replica. Nothing was applied; the API answers it like any duplicate create.
    #[error("{kind} {id:?} exists already")]
    Exists {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
    },
    /// The audit log could not be written, so nothing was applied.
    #[error("the audit log cannot be written: {0}")]
    Audit(String),
    /// The store itself failed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store answered, but a record it holds cannot be decoded: retrying will not help.
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    /// The store is not the one this replica remembers; nothing is read from it or written to it until an
    /// operator restores it or accepts it.
    #[error("the store is not the one this replica served ({})", .0.as_str())]
    Mismatch(StoreMismatch),
    /// A [`Recovery`] was refused: the message says why (the store is not empty, nothing to restore, …).
    #[error("{0}")]
    RecoveryRefused(&'static str),
}

// === impl StoreError ===

impl StoreError {
    /// The error for `write` finding the object at `version` (`None`: absent) when its precondition does not
    /// hold: [`StoreError::Exists`] for a create, [`StoreError::Precondition`] otherwise.
    pub fn unmet(write: &Write) -> Self {
        let (kind, id) = (write.kind.as_str(), write.id.clone());
        match write.expect {
            Expect::Absent => StoreError::Exists { kind, id },
            Expect::Any | Expect::Version(_) | Expect::Present => {
                StoreError::Precondition { kind, id }
            }
        }
    }

    /// A record (`kind/id`, or another key) that does not decode; only the error's class is kept.
    pub fn corrupt(record: &str, error: &serde_json::Error) -> Self {
        StoreError::Corrupt(format!("{record}: {}", error_class(&error.to_string())))
    }
}

/// Where API-managed objects live: the topology half of a store, used by the admin API and the reload.
pub trait Store: Send + Sync {
    /// The topology version: +1 per commit, never decreasing.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn version(&self) -> Result<u64, StoreError>;

    /// Every stored object, in (kind, id) order, with the version.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn load(&self) -> Result<(u64, Vec<StoredObject>), StoreError>;

    /// Applies `writes` atomically after checking every precondition and writing `audit` durably; records
    /// `idempotency` in the same transaction. Returns the new topology version.
    ///
    /// # Errors
    /// [`StoreError::Precondition`] or, for a create, [`StoreError::Exists`] (nothing applied),
    /// [`StoreError::Audit`] (nothing applied), or
    /// [`StoreError::Unavailable`].
    fn commit(
        &self,
        writes: &[Write],
        audit: &[AuditRecord],
        idempotency: Option<(&str, &IdempotentAnswer)>,
    ) -> Result<u64, StoreError>;

    /// The answer remembered for an `Idempotency-Key`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn idempotent(&self, key: &str) -> Result<Option<IdempotentAnswer>, StoreError>;

    /// Audit records, newest first, from where every replica's records meet (see [`AuditQuery`]). Records are
    /// shown as written: they never carried a secret.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (also when the local log cannot be read), or [`StoreError::Corrupt`] for a
    /// record that does not decode.
    fn audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
    /// Recovers from a [`StoreMismatch`] as `actor` asks, auditing it; returns the new topology version. Only a
    /// shared store has an identity to lose; the default refuses.
    ///
    /// # Errors
    /// [`StoreError::RecoveryRefused`], [`StoreError::Audit`] or [`StoreError::Unavailable`].
    fn recover(&self, recovery: Recovery, actor: &str) -> Result<u64, StoreError> {
        let _ = (recovery, actor);
        Err(StoreError::RecoveryRefused(
            "this store has no identity to recover (the embedded store)",
        ))
    }

    /// When each client secret was last used to authenticate, as [`IdentityStore::record_secret_use`] recorded
    /// it (any replica's), in the order of `use_keys` (each
    /// [`crate::hashes::KeyedHasher::client_secret_use_key`]); `None` for a secret never recorded.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn secrets_last_used(&self, use_keys: &[[u8; 32]]) -> Result<Vec<Option<u64>>, StoreError>;
}

/// The identity service's shared state: replay records, revocations, single-use codes and the signing seed.
/// Keys are SHA-256 digests computed by the caller, never raw tokens; every entry carries the Unix time after
/// which it may be forgotten. Callers fail closed on `Err`.
///
/// Kept apart from [`Store`] so the identity service names only what it uses; both stores implement both.
pub trait IdentityStore: Send + Sync {
    /// Records a `jti` as used until `expires_at`. `Ok(true)` the first time, `Ok(false)` on a replay.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]: replay protection cannot be checked, so the caller must refuse.
    fn claim_jti(&self, jti_digest: &[u8; 32], expires_at: u64) -> Result<bool, StoreError>;

    /// Revokes a token (by the digest of its `jti`) until it would have expired anyway.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn revoke(&self, jti_digest: &[u8; 32], expires_at: u64) -> Result<(), StoreError>;

    /// Revocations recorded since `since` (Unix seconds, inclusive): `(jti digest, expires_at, recorded_at)`.
    /// Replicas poll this to refuse, within a second, tokens another replica revoked. A single-process store
    /// has nothing to share and returns none.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn revocations_since(&self, since: u64) -> Result<Vec<([u8; 32], u64, u64)>, StoreError> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Whether a token is revoked.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn is_revoked(&self, jti_digest: &[u8; 32]) -> Result<bool, StoreError>;

    /// Caches a value (an exchanged token, sealed by the caller) under a hashed key until `expires_at`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn cache_put(
        &self,
        key_digest: &[u8; 32],
        value: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError>;

    /// A named 32-byte secret every replica shares (the identity service's signing seed, the fingerprint key):
    /// the stored value, or `init` stored now if there was none. The first writer wins, so replicas that start
    /// together agree.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn shared_secret(&self, name: &str, init: &[u8; 32]) -> Result<[u8; 32], StoreError>;

    /// Counts one failed authentication under `key_digest` (a SHA-256 digest of what is limited, never a raw id)
    /// in the fixed window `window` (minutes since the epoch), kept until `expires_at`; returns the window's count
    /// so far. A single-process store has nothing to share and keeps no count (`Ok(0)`): the caller's local
    /// limiter is the whole limit there.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]: the caller falls back to its local count (failing closed for everyone on a
    /// store outage would be a lockout anyone can cause).
    fn record_failure(
        &self,
        key_digest: &[u8; 32],
        window: u64,
        expires_at: u64,
    ) -> Result<u32, StoreError> {
        let _ = (key_digest, window, expires_at);
        Ok(0)
    }

    /// The failed authentications counted under `key_digest` in `window` by every replica (`Ok(0)` for a
    /// single-process store).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn failures(&self, key_digest: &[u8; 32], window: u64) -> Result<u32, StoreError> {
        let _ = (key_digest, window);
        Ok(0)
    }

    /// A cached value that has not expired.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn cache_get(&self, key_digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records that the client secret under `use_key` ([`crate::hashes::KeyedHasher::client_secret_use_key`])
    /// authenticated at `at` (Unix seconds), for the admin API's `last_used` ([`Store::secrets_last_used`]). Kept
    /// for as long as the store lives: a secret used once a year still shows when. The caller throttles and
    /// never waits on it: a failure loses one timestamp, not a grant.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn record_secret_use(&self, use_key: &[u8; 32], at: u64) -> Result<(), StoreError>;
}

/// The class of a deserialization error (`invalid type`, ``missing field `id` ``, …) without the value serde
/// quotes after the first `": "`: what may be logged about a record that can hold a sealed value or a hash.
pub fn error_class(message: &str) -> &str {
    message.split_once(": ").map_or(message, |(class, _)| class)
}

/// Appends stored objects to `raw`, recording each in [`RawConfig::api_managed`]. A body that does not fit its raw
/// type is reported with the path `store.<kind>[<id>]`.
///
/// # Errors
/// Every object that does not deserialize.
pub fn merge(raw: &mut RawConfig, objects: &[StoredObject]) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    for o in objects {
        let body = o.body.clone();
        let result = match o.kind {
            Kind::Agent => serde_json::from_value::<RawAgent>(body).map(|v| raw.agents.push(v)),
            Kind::Credential => {
                serde_json::from_value::<RawCredential>(body).map(|v| raw.credentials.push(v))
            }
            Kind::Llm => serde_json::from_value::<RawNode>(body).map(|v| raw.llm.push(v)),
            Kind::External => serde_json::from_value::<RawNode>(body).map(|v| raw.external.push(v)),
            Kind::Enterprise => {
                serde_json::from_value::<RawService>(body).map(|v| raw.enterprise.push(v))
            }
            Kind::Outbound => serde_json::from_value::<RawEdge>(body).map(|v| raw.outbound.push(v)),
            Kind::User => serde_json::from_value::<RawUser>(body).map(|v| raw.users.push(v)),
            Kind::Group => serde_json::from_value::<RawGroup>(body).map(|v| raw.groups.push(v)),
            Kind::Organization => {
                serde_json::from_value::<RawOrganization>(body).map(|v| raw.organizations.push(v))
            }
            Kind::Client => serde_json::from_value::<RawClient>(body).map(|v| raw.clients.push(v)),
            Kind::Inbound => {
                serde_json::from_value::<RawInbound>(body).map(|v| raw.inbound.push(v))
            }
            // Operators are the admin API's principals, not topology: the proxy, validation and export never see
            // them.
            Kind::Operator => continue,
        };
        match result {
            Ok(()) => {
                raw.api_managed.insert((o.kind, o.id.clone()));
            }
            Err(e) => errors.push(ValidationError {
                path: format!("store.{}[{}]", o.kind.as_str(), o.id),
                line: None,
                message: format!("stored object does not fit its type: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// The whole topology — the file's objects and the stored ones — as one routing file that `idguard check`
/// accepts and `idguard serve` reproduces. Sealed values are kept as they are (they stay bound to their ids);
/// relative paths stay as written, so write the export beside the original file.
///
/// # Errors
/// [`crate::ConfigError::Invalid`] when a stored object does not fit its type, or [`crate::ConfigError::Parse`] when the
/// result cannot be written as TOML.
pub fn export(mut raw: RawConfig, objects: &[StoredObject]) -> Result<String, crate::ConfigError> {
    merge(&mut raw, objects).map_err(crate::ConfigError::Invalid)?;
    toml::to_string(&raw).map_err(|e| crate::ConfigError::Parse {
        path: "export".into(),
        message: e.to_string(),
    })
}

/// The routing-file section (`[[agents]]`, `[[llm]]`, …) that holds objects of `kind`, as validation paths name
/// it; `None` for operators, which are not topology.
pub fn section(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Agent => "agents",
        Kind::Credential => "credentials",
        Kind::Llm => "llm",
        Kind::External => "external",
        Kind::Enterprise => "enterprise",
        Kind::User => "users",
        Kind::Group => "groups",
        Kind::Organization => "organizations",
        Kind::Client => "clients",
        Kind::Inbound => "inbound",
        Kind::Outbound => "outbound",
        Kind::Operator => return None,
    })
}

/// How many objects each section of a routing file declares, taken before [`merge`] appends the stored ones: a
/// merged index at or past it is a stored object's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts(Vec<(&'static str, usize)>);

// === impl FileCounts ===

impl FileCounts {
    /// The counts of `raw`, the file's objects alone.
    pub fn of(raw: &RawConfig) -> Self {
        Self(vec![
            ("agents", raw.agents.len()),
            ("credentials", raw.credentials.len()),
            ("llm", raw.llm.len()),
            ("external", raw.external.len()),
            ("enterprise", raw.enterprise.len()),
            ("users", raw.users.len()),
            ("groups", raw.groups.len()),
            ("organizations", raw.organizations.len()),
            ("clients", raw.clients.len()),
            ("inbound", raw.inbound.len()),
            ("outbound", raw.outbound.len()),
        ])
    }

    fn get(&self, section: &str) -> Option<usize> {
        self.0.iter().find(|(s, _)| *s == section).map(|(_, n)| *n)
    }
}

/// Renames the errors [`merge`]d stored objects caused from their merged index (`llm[3].style`, which no file
/// and no request shows) to their id (`llm[id=gpt].style`), without a line: the object is in the store, not the
/// file. Errors in the file's own objects keep their index and line. `objects` are those merged, in order.
pub fn name_stored(errors: &mut [ValidationError], counts: &FileCounts, objects: &[StoredObject]) {
    for e in errors {
        let Some((head, rest)) = e.path.split_once('[') else {
            continue;
        };
        let Some((index, tail)) = rest.split_once(']') else {
            continue;
        };
        let (Some(in_file), Ok(index)) = (counts.get(head), index.parse::<usize>()) else {
            continue;
        };
        let Some(nth) = index.checked_sub(in_file) else {
            continue;
        };
        let stored = objects
            .iter()
            .filter(|o| section(o.kind) == Some(head))
            .nth(nth);
        if let Some(o) = stored {
            e.path = format!("{head}[id={}]{tail}", o.id);
            e.line = None;
        }
    }
}
