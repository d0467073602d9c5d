//! Recording when each client secret last authenticated, for the admin API's `last_used`: at most one store write
//! per secret per [`INTERVAL`] on this replica, on a blocking thread the grant never waits for. A write that fails
//! is logged and lost (the next use a minute later writes again): a timestamp is never worth a refused grant.

use std::collections::HashMap;
use std::sync::Mutex;

use super::IdentityService;

/// The least time between two writes for one secret from one replica (seconds).
pub(crate) const INTERVAL: u64 = 60;

/// Past this many remembered secrets, those not written within [`INTERVAL`] are forgotten. Only secrets that
/// authenticated are remembered, so what strangers send never grows it.
const PRUNE_AT: usize = 4096;

/// When this replica last wrote each secret's use, by use key.
#[derive(Default)]
pub(crate) struct Throttle {
    written: Mutex<HashMap<[u8; 32], u64>>,
}

// === impl Throttle ===

impl Throttle {
    /// Whether a use at `now` is to be written, marking it written if so.
    pub(crate) fn due(&self, use_key: &[u8; 32], now: u64) -> bool {
        let Ok(mut written) = self.written.lock() else {
            return false;
        };
        if written
            .get(use_key)
            .is_some_and(|&at| now < at.saturating_add(INTERVAL))
        {
            return false;
        }
        if written.len() >= PRUNE_AT {
            written.retain(|_, at| now < at.saturating_add(INTERVAL));
        }
        written.insert(*use_key, now);
        true
    }
}

// === impl IdentityService ===

impl IdentityService {
    /// Notes that the secret `secret_id` (stored hash `hash`) of `principal` just authenticated: writes the time to
    /// the shared store when this replica has not done so within [`INTERVAL`], without waiting for it.
    pub(super) fn note_secret_use(&self, principal: &str, secret_id: &str, hash: &[u8]) {
        let now = self.now();
        let key = self
            .inner
            .hasher
            .client_secret_use_key(principal, secret_id, hash);
        if !self.inner.secret_use.due(&key, now) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.inner.store.clone();
        runtime.spawn_blocking(move || {
            if let Err(e) = store.record_secret_use(&key, now) {
                tracing::warn!(
                    reason = "secret_use_unrecorded",
                    "a client secret's last use was not recorded: {e}"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_write_per_secret_per_interval() {
        let t = Throttle::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(t.due(&a, 1000));
        assert!(!t.due(&a, 1000 + INTERVAL - 1));
        assert!(t.due(&b, 1001), "another secret has its own interval");
        assert!(t.due(&a, 1000 + INTERVAL));
        assert!(!t.due(&a, 1000 + INTERVAL + 1));
    }

    #[test]
    fn the_table_forgets_quiet_secrets_instead_of_growing() {
        let t = Throttle::default();
        for i in 0..PRUNE_AT {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_be_bytes());
            assert!(t.due(&k, 0));
        }
        assert!(t.due(&[0xff; 32], INTERVAL));
        assert_eq!(t.written.lock().unwrap().len(), 1);
    }
}
