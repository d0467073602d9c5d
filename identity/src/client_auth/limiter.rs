//! The failure limiter of client authentication and sign-in: failures per (id, source address) per minute, with
//! a ceiling per id over every address, in fixed memory. The local first line: `shared_limiter` adds the counts
//! replicas share through the store.

use std::net::IpAddr;
use std::sync::Mutex;

/// Failed authentications per client id, per minute, in a fixed table of counters indexed by a keyed hash of the
/// id. Unknown ids are counted like known ones (a different answer for them would tell the two apart), so the table
/// must not grow with what attackers send: its size is fixed, and a collision can only make limiting stricter for
/// the two ids that share a slot — which an attacker cannot aim for without the hash key.
pub struct Limiter {
    hasher: std::collections::hash_map::RandomState,
    pub(super) slots: Mutex<Vec<(u64, u32)>>,
}

/// Counter slots (1 MiB).
pub(super) const LIMITER_SLOTS: usize = 1 << 16;

/// A client id's failures per minute over every address may reach this many times the per-address limit.
pub(super) const GLOBAL_FACTOR: u32 = 10;

impl Default for Limiter {
    fn default() -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            slots: Mutex::new(vec![(0, 0); LIMITER_SLOTS]),
        }
    }
}

// === impl Limiter ===

impl Limiter {
    fn slot(&self, id: &str) -> usize {
        use std::hash::BuildHasher;
        // The modulo keeps the value below LIMITER_SLOTS, so the conversion cannot truncate.
        usize::try_from(self.hasher.hash_one(id) % LIMITER_SLOTS as u64).unwrap_or(0)
    }

    /// `Err(retry_after)` when `id` has used up this minute's failures from `peer` (`limit`), or from every
    /// address together (`limit` × [`GLOBAL_FACTOR`]): a stranger failing from one address locks only that
    /// address out, while a guess spread over many addresses still meets a ceiling.
    pub(crate) fn check(
        &self,
        id: &str,
        peer: Option<IpAddr>,
        limit: u32,
        now: u64,
    ) -> Result<(), u64> {
        self.check_key(&pair_key(id, peer), limit, now)?;
        self.check_key(id, limit.saturating_mul(GLOBAL_FACTOR), now)
    }

    /// Counts one failure for `id` from `peer` (and towards its ceiling over every address).
    pub(crate) fn fail(&self, id: &str, peer: Option<IpAddr>, now: u64) {
        self.fail_key(&pair_key(id, peer), now);
        self.fail_key(id, now);
    }

    fn check_key(&self, id: &str, limit: u32, now: u64) -> Result<(), u64> {
        let slot = self.slot(id);
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slots.get(slot) {
            Some((minute, count)) if *minute == now / 60 && *count >= limit => Err(60 - now % 60),
            _ => Ok(()),
        }
    }

    fn fail_key(&self, id: &str, now: u64) {
        let slot = self.slot(id);
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let minute = now / 60;
        if let Some(entry) = slots.get_mut(slot) {
            if entry.0 != minute {
                *entry = (minute, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

/// The failure-counter key of `id` seen from `peer`.
pub(super) fn pair_key(id: &str, peer: Option<IpAddr>) -> String {
    match peer {
        Some(ip) => format!("{id}\n{ip}"),
        None => format!("{id}\n-"),
    }
}
