//! Shared failed-authentication counters: `<p>:fail:<hex digest>:<window>`, one integer per key digest and
//! fixed window, incremented and given its expiry in one atomic pipeline so no counter outlives its window.

use idguard_config::store::StoreError;

use super::unavailable;

/// The counter key's name (under the prefix) for `key_digest` in `window`.
pub(super) fn name(key_digest: &[u8; 32], window: u64) -> String {
    format!("fail:{}:{window}", super::hex(key_digest))
}

/// `INCR` + `EXPIREAT` in one `MULTI`; the count after this failure.
///
/// # Errors
/// [`StoreError::Unavailable`].
pub(super) fn record(
    conn: &mut super::connect::Conn,
    key: &str,
    expires_at: u64,
) -> Result<u32, StoreError> {
    let (count,): (u64,) = redis::pipe()
        .atomic()
        .incr(key, 1)
        .cmd("EXPIREAT")
        .arg(key)
        .arg(expires_at)
        .ignore()
        .query(conn)
        .map_err(unavailable)?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// The count under `key` (0 when absent).
///
/// # Errors
/// [`StoreError::Unavailable`].
pub(super) fn count(conn: &mut super::connect::Conn, key: &str) -> Result<u32, StoreError> {
    let count: Option<u64> = redis::cmd("GET")
        .arg(key)
        .query(conn)
        .map_err(unavailable)?;
    Ok(count.map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
}
