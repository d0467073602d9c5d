//! Re-wrapping every stored credential under the newest master-key term (`idguard reseal`), the step between
//! adding a term to the key file and removing the old one.
//!
//! Each credential is its own commit through the store's versioned write: `Expect::Version` of the record as read
//! (the admin API's `If-Match`), with its audit record written first. A credential changed or deleted in between
//! fails that precondition and is read again and retried, so a concurrent writer's change is never overwritten; a
//! run interrupted at any point leaves every credential either on its old term or on the new one, both of which
//! open, and the next run finishes the job. A credential already on the newest term is left alone, so running it
//! again re-wraps nothing.

use idguard_config::MasterKeys;
use idguard_config::seal::inspect;
use idguard_config::store::{AuditRecord, Expect, Kind, Store, StoreError, StoredObject, Write};
use serde_json::Value;

use crate::api::redact;

/// How many times one credential is read again after a concurrent change before the run gives up on it.
const ATTEMPTS: usize = 5;

/// What a run did, by credential id. Ids are not secret; no sealed value is kept.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The term every credential is now sealed under.
    pub term: u32,
    /// Re-wrapped under [`Report::term`] by this run.
    pub rewrapped: Vec<String>,
    /// Already on [`Report::term`], or holding no sealed value: left as they were.
    pub left: Vec<String>,
    /// Not re-wrapped, with the reason (a value that does not open, or one that kept changing under the run).
    pub failed: Vec<(String, String)>,
}

enum Outcome {
    Rewrapped,
    Left,
    /// Deleted while the run was at it: nothing left to re-wrap.
    Gone,
    Failed(String),
}

/// Re-wraps every stored credential not yet on `keys`' newest term; `actor` names the run in the audit log.
///
/// # Errors
/// [`StoreError`] when the store cannot be read or written (or the audit log cannot be written): the credentials
/// committed before it stay re-wrapped, the rest are untouched.
pub fn reseal(store: &dyn Store, keys: &MasterKeys, actor: &str) -> Result<Report, StoreError> {
    let mut report = Report {
        term: keys.current_term(),
        ..Report::default()
    };
    let (_, objects) = store.load()?;
    for object in objects.iter().filter(|o| o.kind == Kind::Credential) {
        match reseal_one(store, keys, actor, object)? {
            Outcome::Rewrapped => report.rewrapped.push(object.id.clone()),
            Outcome::Left => report.left.push(object.id.clone()),
            Outcome::Gone => {}
            Outcome::Failed(why) => report.failed.push((object.id.clone(), why)),
        }
    }
    Ok(report)
}

/// One credential, read again after each concurrent change.
fn reseal_one(
    store: &dyn Store,
    keys: &MasterKeys,
    actor: &str,
    first: &StoredObject,
) -> Result<Outcome, StoreError> {
    let mut current = first.clone();
    for _ in 0..ATTEMPTS {
        let Some(sealed) = current.body.get("sealed").and_then(Value::as_str) else {
            return Ok(Outcome::Left);
        };
        // A replaced value kept for rollback (`previous.sealed`) is re-wrapped with the one in force: once the old
        // term is retired it could no longer be switched back to otherwise.
        let previous = current
            .body
            .get("previous")
            .and_then(|p| p.get("sealed"))
            .and_then(Value::as_str);
        let rewrap = |sealed: &str| -> Result<Option<String>, String> {
            match inspect(sealed) {
                Ok(term) if term == keys.current_term() => Ok(None),
                Ok(_) => keys
                    .rewrap(&current.id, sealed)
                    .map(Some)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        let (main, prev) = match (rewrap(sealed), previous.map(rewrap).transpose()) {
            (Ok(main), Ok(prev)) => (main, prev.flatten()),
            (Err(e), _) | (_, Err(e)) => return Ok(Outcome::Failed(e)),
        };
        if main.is_none() && prev.is_none() {
            return Ok(Outcome::Left);
        }
        let mut body = current.body.clone();
        if let Some(v) = main {
            body["sealed"] = Value::String(v);
        }
        if let Some(v) = prev {
            body["previous"]["sealed"] = Value::String(v);
        }
        let write = Write {
            kind: Kind::Credential,
            id: current.id.clone(),
            expect: Expect::Version(current.version),
            body: Some(body.clone()),
        };
        let audit = AuditRecord {
            at: now(),
            actor: actor.into(),
            auth: None,
            request_id: None,
            action: "reseal".into(),
            kind: Kind::Credential,
            id: current.id.clone(),
            before: Some(redact(Kind::Credential, current.body.clone())),
            after: Some(redact(Kind::Credential, body)),
        };
        match store.commit(&[write], &[audit], None) {
            Ok(_) => return Ok(Outcome::Rewrapped),
            Err(StoreError::Precondition { .. }) => {
                // Changed or deleted since it was read: read it again and decide afresh.
                let (_, objects) = store.load()?;
                match objects
                    .into_iter()
                    .find(|o| o.kind == Kind::Credential && o.id == current.id)
                {
                    Some(o) => current = o,
                    None => return Ok(Outcome::Gone),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Outcome::Failed(format!(
        "it changed under every one of {ATTEMPTS} attempts"
    )))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
