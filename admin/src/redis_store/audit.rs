//! The shared audit stream `<p>:audit`: what the commit script appends (one entry per record, field `record` →
//! the record's JSON, capped with `MAXLEN ~`), and reading it back newest first with `XREVRANGE`.

use idguard_config::store::{
    AUDIT_PAGE_MAX, AUDIT_SCAN_MAX, AuditCursor, AuditEntry, AuditPage, AuditQuery, AuditRecord,
    StoreError,
};

use super::unavailable;

/// Entries read per `XREVRANGE` call while filling a page.
const BATCH: usize = 200;

/// The stream's field that holds a record's JSON.
pub(super) const FIELD: &str = "record";

/// The JSON of each record, as the commit script appends it.
///
/// # Errors
/// [`StoreError::Audit`] when a record cannot be serialized (nothing is applied).
pub(super) fn encode(records: &[AuditRecord]) -> Result<Vec<String>, StoreError> {
    records
        .iter()
        .map(|r| serde_json::to_string(r).map_err(|e| StoreError::Audit(e.to_string())))
        .collect()
}

/// One page of `query` from the stream at `key`, newest first. Reads in batches until the page is full, the
/// stream is exhausted, or [`AUDIT_SCAN_MAX`] entries have been looked at (then the page is shorter and the
/// cursor points where the scan stopped).
///
/// # Errors
/// [`StoreError::Unavailable`], or [`StoreError::Corrupt`] for an entry that does not decode.
pub(super) fn read(
    conn: &mut super::connect::Conn,
    key: &str,
    query: &AuditQuery,
) -> Result<AuditPage, StoreError> {
    let limit = query.limit.clamp(1, AUDIT_PAGE_MAX);
    let mut end = query
        .cursor
        .map_or_else(|| "+".to_owned(), |c| format!("({c}"));
    let mut page = AuditPage::default();
    let mut scanned = 0;
    loop {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(key)
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(BATCH)
            .query(conn)
            .map_err(unavailable)?;
        let exhausted = entries.len() < BATCH;
        for (id, fields) in entries {
            scanned += 1;
            end = format!("({id}");
            let record = decode(&id, &fields)?;
            if query.matches(&record) {
                page.records.push(AuditEntry {
                    cursor: id.clone(),
                    record,
                });
            }
            if page.records.len() == limit || scanned >= AUDIT_SCAN_MAX {
                page.next_cursor = id.parse::<AuditCursor>().ok().map(|c| c.to_string());
                return Ok(page);
            }
        }
        if exhausted {
            return Ok(page);
        }
    }
}

/// The record of the stream entry `id` (fields as a flat `field, value, …` list).
fn decode(id: &str, fields: &[String]) -> Result<AuditRecord, StoreError> {
    let json = fields
        .chunks(2)
        .find_map(|pair| match pair {
            [f, v] if f == FIELD => Some(v),
            _ => None,
        })
        .ok_or_else(|| StoreError::Corrupt(format!("audit entry {id}: no record field")))?;
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(&format!("audit entry {id}"), &e))
}
