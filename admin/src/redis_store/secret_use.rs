//! Client secrets' last use: `<p>:secret-used:<hex use key>` → Unix seconds, written by the identity service
//! (throttled, off the grant's path) and read by the admin API's secret listings. The key is a keyed digest
//! ([`idguard_config::hashes::KeyedHasher::client_secret_use_key`]): it names neither the client nor the secret.
//! No expiry: a secret used once a year must still show when.

use idguard_config::store::StoreError;

use super::unavailable;

/// Sets the time unless the key already holds a later one (replicas' clocks and late tasks never move it back).
const RECORD: &str = r"
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
if known < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
";

/// The key's name (under the prefix).
pub(super) fn name(use_key: &[u8; 32]) -> String {
    format!("secret-used:{}", super::hex(use_key))
}

/// Records `at` under `key` (a full key, prefix included), keeping a later time already there.
///
/// # Errors
/// [`StoreError::Unavailable`].
pub(super) fn record(
    conn: &mut super::connect::Conn,
    key: &str,
    at: u64,
) -> Result<(), StoreError> {
    redis::Script::new(RECORD)
        .key(key)
        .arg(at)
        .invoke::<i64>(conn)
        .map(drop)
        .map_err(unavailable)
}

/// The times under `keys` (full keys), in order; `None` where nothing was recorded (or the value is not a time).
///
/// # Errors
/// [`StoreError::Unavailable`].
pub(super) fn read(
    conn: &mut super::connect::Conn,
    keys: &[String],
) -> Result<Vec<Option<u64>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(keys)
        .query(conn)
        .map_err(unavailable)?;
    Ok(values
        .into_iter()
        .map(|v| v.and_then(|v| v.parse().ok()))
        .collect())
}
