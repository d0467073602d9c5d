//! Reading the embedded store's `audit.log` back, newest first. The cursor is a record's line number (1-based),
//! so pages stay stable while new records are appended after them.

use std::path::Path;

use idguard_config::store::{
    AUDIT_PAGE_MAX, AUDIT_SCAN_MAX, AuditCursor, AuditEntry, AuditPage, AuditQuery, AuditRecord,
    StoreError,
};

/// One page of `query` from the log at `path` (no log yet: an empty page). The whole file is read: the embedded
/// store serves one process, whose log grows only with admin writes.
///
/// # Errors
/// [`StoreError::Unavailable`] when the log cannot be read, [`StoreError::Corrupt`] for a line that does not
/// decode.
pub(super) fn read(path: &Path, query: &AuditQuery) -> Result<AuditPage, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "reading the audit log: {e}"
            )));
        }
    };
    let limit = query.limit.clamp(1, AUDIT_PAGE_MAX);
    // Lines numbered from 1; a cursor continues with the line before it.
    let before = query.cursor.map_or(usize::MAX, |c| {
        usize::try_from(c.major).unwrap_or(usize::MAX)
    });
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(n, line)| *n < before && !line.is_empty())
        .collect();
    let mut page = AuditPage::default();
    for (scanned, (n, line)) in lines.iter().rev().enumerate() {
        let record: AuditRecord = serde_json::from_str(line)
            .map_err(|e| StoreError::corrupt(&format!("audit.log line {n}"), &e))?;
        let cursor = AuditCursor {
            major: *n as u64,
            minor: 0,
        };
        if query.matches(&record) {
            page.records.push(AuditEntry {
                cursor: cursor.to_string(),
                record,
            });
        }
        if page.records.len() == limit || scanned + 1 >= AUDIT_SCAN_MAX {
            // Line 1 has nothing older.
            page.next_cursor = (*n > 1).then(|| cursor.to_string());
            break;
        }
    }
    Ok(page)
}
