//! Reading the audit log back: a query (newest first, a cursor, a limit and a few filters) and one page of
//! answers. Every store answers it from where its audit records are shared — the Redis stream `<p>:audit` for
//! several replicas, the local `audit.log` for the embedded store — so any replica shows every replica's writes.

use serde::{Deserialize, Serialize};

use super::{AuditRecord, Kind};

/// The most records one page may hold.
pub const AUDIT_PAGE_MAX: usize = 1_000;

/// How many records one query may read past the filters before it returns a shorter page (with a cursor to go
/// on): a filter that matches nothing must not scan a whole log in one request.
pub const AUDIT_SCAN_MAX: usize = 10_000;

/// Which audit records to return, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// At most this many records (1..=[`AUDIT_PAGE_MAX`]).
    pub limit: usize,
    /// Continue after this record: the `next_cursor` of the previous page.
    pub cursor: Option<AuditCursor>,
    /// Only records of this kind.
    pub kind: Option<Kind>,
    /// Only records of this object id.
    pub id: Option<String>,
    /// Only this action (`create`, `update`, `delete`, `reseal`).
    pub action: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only records at or after this Unix second.
    pub since: Option<u64>,
    /// Only records at or before this Unix second.
    pub until: Option<u64>,
}

/// A record's position in the log, written `<major>-<minor>`: a Redis stream entry id (milliseconds and
/// sequence), or for the embedded store the record's line number in `audit.log` and 0. Callers treat it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    /// Stream milliseconds, or the line number.
    pub major: u64,
    /// Stream sequence, or 0.
    pub minor: u64,
}

/// One audit record and where it sits in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The record's position (`<major>-<minor>`): pass it as a cursor to continue after it.
    pub cursor: String,
    /// The record, as written (already redacted).
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// One page of audit records, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditPage {
    /// The matching records.
    pub records: Vec<AuditEntry>,
    /// Where the next (older) page starts; `None` when the log has nothing older.
    pub next_cursor: Option<String>,
}

// === impl AuditCursor ===

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.major, self.minor)
    }
}

impl std::str::FromStr for AuditCursor {
    type Err = ();

    /// `<major>-<minor>`, both decimal.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.split_once('-').ok_or(())?;
        let digits = |v: &str| {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                v.parse::<u64>().map_err(|_| ())
            } else {
                Err(())
            }
        };
        Ok(Self {
            major: digits(major)?,
            minor: digits(minor)?,
        })
    }
}

// === impl AuditQuery ===

impl AuditQuery {
    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        self.kind.is_none_or(|k| k == record.kind)
            && self.id.as_ref().is_none_or(|id| *id == record.id)
            && self.action.as_ref().is_none_or(|a| *a == record.action)
            && self.actor.as_ref().is_none_or(|a| *a == record.actor)
            && self.since.is_none_or(|s| record.at >= s)
            && self.until.is_none_or(|u| record.at <= u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, id: &str, action: &str, at: u64) -> AuditRecord {
        AuditRecord {
            at,
            actor: "admin".into(),
            auth: None,
            request_id: None,
            action: action.into(),
            kind,
            id: id.into(),
            before: None,
            after: None,
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c: AuditCursor = "1700000000000-3".parse().unwrap();
        assert_eq!((c.major, c.minor), (1_700_000_000_000, 3));
        assert_eq!(c.to_string(), "1700000000000-3");
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "a-1",
            "1-+2",
            "1-2-3",
            "99999999999999999999-0",
        ] {
            assert!(bad.parse::<AuditCursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_filter_narrows() {
        let r = record(Kind::Agent, "a", "create", 100);
        assert!(AuditQuery::default().matches(&r));
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            q.matches(&r)
        };
        assert!(q(|q| q.kind = Some(Kind::Agent)));
        assert!(!q(|q| q.kind = Some(Kind::Client)));
        assert!(!q(|q| q.id = Some("b".into())));
        assert!(!q(|q| q.action = Some("delete".into())));
        assert!(!q(|q| q.actor = Some("operator".into())));
        assert!(q(|q| q.since = Some(100)));
        assert!(!q(|q| q.since = Some(101)));
        assert!(q(|q| q.until = Some(100)));
        assert!(!q(|q| q.until = Some(99)));
    }
}
