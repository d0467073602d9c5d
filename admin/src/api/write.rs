//! The write pipeline ([`AdminApi::write`]) and its decisions. Under the write lock it reads the routing file and
//! the store once; the handler's planning step decides the change from exactly what was read (file-managed
//! refusals, preconditions, cascades); the change is applied in memory, merged into that same parse of the file,
//! validated as a whole topology, checked against the console's quotas, and only then committed — audit record
//! first — and a reload triggered. The answer waits (at most [`APPLY_WAIT`]) until this replica's snapshot holds
//! the committed version, so a write is read-your-writes on the replica that acknowledged it.
//!
//! [`apply_writes`], [`check_quotas`], [`check_bindings`] and [`redact`] decide without I/O; `write/tests.rs`
//! tables them.

use idguard_config::Snapshot;
use idguard_config::reload::RoutingFile;
use idguard_config::store::{
    self, AuditRecord, Expect, IdempotentAnswer, Kind, StoreError, StoredObject, Write,
};
use idguard_config::{ConfigError, ValidationError};
use serde_json::{Value, json};

use super::AdminApi;
use super::core::{Current, Result, now};
use crate::error::{AdminError, Internal};
use crate::usage::Usage;

/// How long a write waits for this replica to apply what it committed before answering anyway (the change is
/// stored either way; it is then applied by the next reload that succeeds).
pub(super) const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One planned change: the writes, their audit records, and the answer to remember for an `Idempotency-Key`.
#[derive(Default)]
pub(super) struct Plan {
    /// The writes, applied atomically.
    pub(super) writes: Vec<Write>,
    /// Their audit records (redacted).
    pub(super) audit: Vec<AuditRecord>,
    /// `(key, answer)` when the request carried an `Idempotency-Key`.
    pub(super) idempotency: Option<(String, IdempotentAnswer)>,
}

// === impl Plan ===

impl Plan {
    /// Creates `kind`/`id` with `value`; it must not exist.
    pub(super) fn create(kind: Kind, id: &str, value: Value) -> Self {
        Self {
            audit: vec![audit("create", kind, id, None, Some(&value))],
            writes: vec![Write {
                kind,
                id: id.into(),
                expect: Expect::Absent,
                body: Some(value),
            }],
            idempotency: None,
        }
    }

    /// Replaces the stored object `current` with `value`, expecting `expect`.
    pub(super) fn update(current: &StoredObject, expect: Expect, value: Value) -> Self {
        Self {
            audit: vec![audit(
                "update",
                current.kind,
                &current.id,
                Some(&current.body),
                Some(&value),
            )],
            writes: vec![Write {
                kind: current.kind,
                id: current.id.clone(),
                expect,
                body: Some(value),
            }],
            idempotency: None,
        }
    }

    /// Deletes the stored object `current`, expecting `expect`.
    pub(super) fn delete(current: &StoredObject, expect: Expect) -> Self {
        Self {
            audit: vec![audit(
                "delete",
                current.kind,
                &current.id,
                Some(&current.body),
                None,
            )],
            writes: vec![Write {
                kind: current.kind,
                id: current.id.clone(),
                expect,
                body: None,
            }],
            idempotency: None,
        }
    }

    /// This plan followed by `next`'s writes and audit records.
    pub(super) fn then(mut self, next: Plan) -> Self {
        self.writes.extend(next.writes);
        self.audit.extend(next.audit);
        self
    }

    /// Adds a cascaded update of `o` to `value`, expecting it unchanged since it was read.
    pub(super) fn push_update(&mut self, o: &StoredObject, value: Value) {
        let update = Plan::update(o, Expect::Version(o.version), value);
        self.writes.extend(update.writes);
        self.audit.extend(update.audit);
    }

    /// Adds a cascaded delete of `o`, whatever its version.
    pub(super) fn push_delete(&mut self, o: &StoredObject) {
        let delete = Plan::delete(o, Expect::Present);
        self.writes.extend(delete.writes);
        self.audit.extend(delete.audit);
    }

    /// This plan, remembering `answer` under an `Idempotency-Key`.
    pub(super) fn remembering(mut self, answer: Option<(String, IdempotentAnswer)>) -> Self {
        self.idempotency = answer;
        self
    }
}

// === impl AdminApi ===

impl AdminApi {
    /// Runs one write. `plan` decides the change from what the routing file and the store hold (read once, under
    /// the write lock) and returns it with what the answer needs; the change is then validated as a whole topology
    /// and committed. Returns what `plan` returned.
    ///
    /// # Errors
    /// Whatever `plan` refuses; [`AdminError::Precondition`], [`AdminError::Invalid`] or [`AdminError::Quota`]
    /// (nothing stored); [`AdminError::AuditUnavailable`] (nothing stored); [`AdminError::StoreUnavailable`];
    /// [`AdminError::Internal`] for an unreadable routing file or a corrupt stored object.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        plan: impl FnOnce(&AdminApi, Current<'_>) -> Result<(Plan, T)> + Send + 'static,
    ) -> Result<T> {
        // The audit records name who asked: the caller `access::authorize` authenticated for this request.
        let caller = super::access::Caller::current().ok_or(Internal::NoCaller)?;
        let (out, version) = self
            .blocking(move |this| this.write_blocking(&caller, plan))
            .await?;
        self.await_applied(version).await;
        Ok(out)
    }

    /// Waits until the snapshot in force holds store version `version` (the reload the commit triggered), at
    /// most [`APPLY_WAIT`]: the next request to this replica — proxy, identity service or API — sees the write.
    async fn await_applied(&self, version: u64) {
        let applied = match self.inner.applied.get() {
            // The data plane's routing table, built from the snapshot after it is published: the last step.
            Some(rx) => {
                let mut rx = rx.clone();
                tokio::time::timeout(APPLY_WAIT, rx.wait_for(|v| *v >= version))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
            None => {
                let mut snapshots = self.inner.snapshots.clone();
                tokio::time::timeout(
                    APPLY_WAIT,
                    snapshots.wait_for(|s| s.store_version >= version),
                )
                .await
                .is_ok_and(|r| r.is_ok())
            }
        };
        if !applied {
            tracing::warn!(
                reason = "write_not_yet_applied",
                version,
                "a committed change is not in force on this replica yet; answering anyway"
            );
        }
    }

    /// The write under the lock; returns what `plan` returned and the store version the commit made.
    fn write_blocking<T>(
        &self,
        caller: &super::access::Caller,
        plan: impl FnOnce(&AdminApi, Current<'_>) -> Result<(Plan, T)>,
    ) -> Result<(T, u64)> {
        let inner = &self.inner;
        let _guard = inner
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One read of each: the planning step's file-managed checks and the validation below judge the same
        // parse of the file, so a file edited mid-request cannot slip between them.
        let file = self.file()?;
        let stored = self.stored()?;
        let (mut plan, out) = plan(
            self,
            Current {
                file: &file.raw,
                stored: &stored,
            },
        )?;
        attribute(&mut plan.audit, caller);
        let objects = apply_writes(stored, &plan.writes)?;
        let candidate = self
            .build(file, &objects)
            .map_err(|e| located_in_request(e, &plan.writes))?;
        check_quotas(&plan, Usage::of(&candidate))?;
        check_bindings(&plan, &candidate)?;
        let idempotency = plan.idempotency.as_ref().map(|(k, a)| (k.as_str(), a));
        let version = inner
            .store
            .commit(&plan.writes, &plan.audit, idempotency)
            .map_err(store_error)?;
        inner.reload.notify_one();
        Ok((out, version))
    }

    /// The topology `file` and `objects` make together, judged by the same `validate()` as the file alone.
    ///
    /// # Errors
    /// [`AdminError::Invalid`] with every problem; [`Internal::Corrupt`] when a stored object does not fit its type.
    pub(super) fn build(&self, file: RoutingFile, objects: &[StoredObject]) -> Result<Snapshot> {
        let RoutingFile { text, mut raw } = file;
        let counts = store::FileCounts::of(&raw);
        store::merge(&mut raw, objects).map_err(|errors| corrupt_in_merge(objects, &errors.0))?;
        match self.inner.loader.validate_merged(raw, &text, 0) {
            Ok(snapshot) => Ok(snapshot),
            Err(ConfigError::Invalid(mut errors)) => {
                store::name_stored(&mut errors.0, &counts, objects);
                Err(AdminError::Invalid(errors.0))
            }
            Err(e) => Err(Internal::Config(e.to_string()).into()),
        }
    }
}

/// A validation refusal as the caller sees it: an error in an object this request sends is located by the field
/// of that body (`llm.style`, `agents.name`), the way every other field refusal of the API is, instead of by
/// the object's id in the merged topology (`llm[id=gpt].style`, see [`store::name_stored`]). Errors in other
/// objects keep their id (stored) or index and line (the routing file's). Other errors pass unchanged.
pub(super) fn located_in_request(e: AdminError, writes: &[Write]) -> AdminError {
    let AdminError::Invalid(mut errors) = e else {
        return e;
    };
    for e in &mut errors {
        let sent = writes.iter().filter(|w| w.body.is_some()).find_map(|w| {
            let section = store::section(w.kind)?;
            let tail = e.path.strip_prefix(&format!("{section}[id={}]", w.id))?;
            // Only a whole object name: `llm[id=a]` must not match inside `llm[id=a]b…`.
            (tail.is_empty() || tail.starts_with('.') || tail.starts_with('['))
                .then(|| format!("{section}{tail}"))
        });
        if let Some(path) = sent {
            e.path = path;
        }
    }
    AdminError::Invalid(errors)
}

/// The internal error for the objects `merge` could not fit: the first one, named `kind/id` like the store names
/// a record, with only the class of its error.
fn corrupt_in_merge(objects: &[StoredObject], errors: &[ValidationError]) -> AdminError {
    let Some(e) = errors.first() else {
        return Internal::Corrupt("a stored object".into()).into();
    };
    let record = objects
        .iter()
        .find(|o| e.path == format!("store.{}[{}]", o.kind.as_str(), o.id))
        .map_or_else(
            || e.path.clone(),
            |o| format!("{}/{}", o.kind.as_str(), o.id),
        );
    // merge says "stored object does not fit its type: <serde's message>"; the class is in serde's part.
    let message = e.message.split_once(": ").map_or("", |(_, serde)| serde);
    AdminError::corrupt(&record, message)
}

/// `objects` after `writes`, in order, each write's precondition checked against the object as the earlier writes
/// left it (so a plan that contradicts itself, or a store changed since the planning read, is refused whole).
///
/// # Errors
/// [`AdminError::Precondition`].
pub(super) fn apply_writes(
    mut objects: Vec<StoredObject>,
    writes: &[Write],
) -> Result<Vec<StoredObject>> {
    for w in writes {
        let at = objects
            .iter()
            .position(|o| o.kind == w.kind && o.id == w.id);
        if !w.expect.holds(at.map(|i| objects[i].version)) {
            return Err(AdminError::Precondition);
        }
        match (&w.body, at) {
            (Some(body), Some(i)) => objects[i].body = body.clone(),
            (Some(body), None) => objects.push(StoredObject {
                kind: w.kind,
                id: w.id.clone(),
                version: 1,
                created_at: 0,
                updated_at: 0,
                body: body.clone(),
            }),
            (None, Some(i)) => {
                objects.remove(i);
            }
            (None, None) => {}
        }
    }
    Ok(objects)
}

/// The console's quotas, checked on the whole candidate topology and only when the change creates that kind: a
/// topology already over a quota (the file grew) keeps working, but nothing more of that kind is created.
///
/// # Errors
/// [`AdminError::Quota`].
pub(super) fn check_quotas(plan: &Plan, usage: Usage) -> Result<()> {
    let licensed = [Kind::Agent, Kind::Enterprise, Kind::Client].map(|k| created(&plan.writes, k));
    let licensed: u64 = licensed.iter().sum();
    if licensed > 0 && usage.licensed() > usage.licenses {
        // The message states what is in use without this change: the file may hold more than the quota.
        let in_use = usage.licensed() - licensed;
        let total = usage.licenses;
        return Err(AdminError::Quota(format!(
            "M2M application license quota exhausted: {in_use} of {total} in use \
             (each agent, client application and enterprise service uses one)"
        )));
    }
    let credentials = created(&plan.writes, Kind::Credential);
    if credentials > 0 && usage.credentials > usage.max_credentials {
        let in_use = usage.credentials - credentials;
        let total = usage.max_credentials;
        return Err(AdminError::Quota(format!(
            "stored credential limit reached: {in_use} of {total} stored"
        )));
    }
    Ok(())
}

/// A node or service created through the API may use only a credential bound to hosts (corpus J04): validation
/// has already checked that the hosts include its destination; a credential without `hosts` (a routing-file one,
/// meant for the file's nodes, or one stored before credentials had hosts) is refused here, so the admin token
/// alone cannot send a stored key to a host of its choosing. Objects already stored keep working.
///
/// # Errors
/// [`AdminError::Invalid`] naming the credential field of the created object.
pub(super) fn check_bindings(plan: &Plan, candidate: &Snapshot) -> Result<()> {
    for w in plan.writes.iter().filter(|w| w.expect == Expect::Absent) {
        let (field, credential) = match w.kind {
            Kind::Llm | Kind::External => (
                format!("{}.credential", w.kind.as_str()),
                candidate.nodes.get(w.id.as_str()).map(|n| &n.credential),
            ),
            Kind::Enterprise => (
                "enterprise.exchange.credential".to_owned(),
                candidate
                    .services
                    .get(w.id.as_str())
                    .and_then(|s| s.exchange.as_ref())
                    .and_then(|x| x.credential.as_ref()),
            ),
            Kind::Agent
            | Kind::Credential
            | Kind::User
            | Kind::Group
            | Kind::Organization
            | Kind::Client
            | Kind::Inbound
            | Kind::Outbound
            | Kind::Operator => continue,
        };
        let Some(id) = credential else { continue };
        if candidate
            .credentials
            .get(id)
            .is_some_and(|c| c.hosts.is_none())
        {
            return Err(AdminError::Invalid(vec![ValidationError {
                path: field,
                line: None,
                message: format!(
                    "credential {id:?} is not bound to any host: what the admin API creates may only use a \
                     credential whose hosts include its destination"
                ),
            }]));
        }
    }
    Ok(())
}

/// How many objects of `kind` `writes` create.
fn created(writes: &[Write], kind: Kind) -> u64 {
    writes
        .iter()
        .filter(|w| w.kind == kind && w.expect == Expect::Absent)
        .count() as u64
}

/// Names `caller` as the author of every record in `audit`.
pub(super) fn attribute(audit: &mut [AuditRecord], caller: &super::access::Caller) {
    for r in audit {
        r.actor.clone_from(&caller.actor);
        r.auth = Some(caller.auth);
        r.request_id = Some(caller.request_id.clone());
    }
}

/// An audit record; bodies are redacted. The pipeline names its author ([`attribute`]).
fn audit(
    action: &str,
    kind: Kind,
    id: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> AuditRecord {
    AuditRecord {
        at: now(),
        actor: "admin".into(),
        auth: None,
        request_id: None,
        action: action.into(),
        kind,
        id: id.into(),
        before: before.map(|b| redact(kind, b.clone())),
        after: after.map(|a| redact(kind, a.clone())),
    }
}

/// Audit bodies never hold a credential value, not even sealed, nor a password hash, nor an operator token's hash.
pub(crate) fn redact(kind: Kind, mut body: Value) -> Value {
    if kind == Kind::Operator
        && let Some(tokens) = body.get_mut("tokens").and_then(Value::as_array_mut)
    {
        for t in tokens.iter_mut().filter_map(Value::as_object_mut) {
            if t.contains_key("hash") {
                t.insert("hash".into(), json!("[redacted]"));
            }
        }
    }
    let fields: &[&str] = match kind {
        Kind::User => &["password_hash"],
        Kind::Credential => &["sealed", "value"],
        Kind::Agent
        | Kind::Llm
        | Kind::External
        | Kind::Enterprise
        | Kind::Group
        | Kind::Organization
        | Kind::Client
        | Kind::Inbound
        | Kind::Outbound
        | Kind::Operator => &[],
    };
    if let Some(map) = body.as_object_mut() {
        for field in fields {
            if map.contains_key(*field) {
                map.insert((*field).into(), json!("[redacted]"));
            }
        }
        // A replaced credential value kept for rollback is as secret as the one in force.
        if kind == Kind::Credential
            && let Some(previous) = map.get_mut("previous").and_then(Value::as_object_mut)
            && previous.contains_key("sealed")
        {
            previous.insert("sealed".into(), json!("[redacted]"));
        }
    }
    body
}

/// The admin error for a store failure; store and audit failures are logged here, once.
pub(super) fn store_error(e: StoreError) -> AdminError {
    match e {
        StoreError::Precondition { .. } => AdminError::Precondition,
        // A create that lost a race (to another replica) answers like a sequential duplicate.
        StoreError::Exists { kind, id } => AdminError::Exists { kind, id },
        StoreError::Audit(why) => {
            tracing::error!(reason = "audit_unavailable", "{why}");
            AdminError::AuditUnavailable
        }
        StoreError::Unavailable(why) => {
            tracing::error!(reason = "store_unavailable", "{why}");
            AdminError::StoreUnavailable
        }
        // Not the store being down: retrying will not help. Logged with the request by `log_internal_errors`.
        StoreError::Corrupt(why) => Internal::Corrupt(why).into(),
        // Logged by the store when it first finds the mismatch, not once per refused request.
        StoreError::Mismatch(m) => AdminError::StoreMismatch(m),
        StoreError::RecoveryRefused(why) => AdminError::RecoveryRefused(why),
    }
}

#[cfg(test)]
mod tests;
