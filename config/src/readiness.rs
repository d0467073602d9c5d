//! The one ready/not-ready state both planes share. `/readyz` reports it; each flag has one writer.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::store::StoreMismatch;

/// Why the process is not ready. The strings are what `/readyz` answers and what logs carry as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// No snapshot has been published yet.
    NoConfig,
    /// Sealed credentials exist but no master key was given (Vault's "sealed").
    Sealed,
    /// Shutdown has begun: new work should go elsewhere.
    Draining,
    /// The shared store (Redis) has been unreachable longer than the configured bound.
    StoreUnreachable,
    /// The shared store answers but has lost its data (no identity, no objects): the last topology is kept.
    StoreEmpty,
    /// The shared store answers but is not the one this replica remembers: the last topology is kept.
    StoreReplaced,
    /// The store answered but holds a record this build cannot read (a newer stored format, or a corrupt one):
    /// the replica keeps its running topology and must not take traffic meant for the newer one.
    StoreUnreadable,
}

impl NotReady {
    /// The machine-readable reason.
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::NoConfig => "no_config",
            NotReady::Sealed => "sealed",
            NotReady::Draining => "draining",
            NotReady::StoreUnreachable => "store_unreachable",
            NotReady::StoreEmpty => "store_empty",
            NotReady::StoreReplaced => "store_replaced",
            NotReady::StoreUnreadable => "store_unreadable",
        }
    }
}

/// Shared readiness flags.
#[derive(Debug, Default)]
pub struct Readiness {
    config_loaded: AtomicBool,
    sealed: AtomicBool,
    draining: AtomicBool,
    store_unreachable: AtomicBool,
    store_unreadable: AtomicBool,
    topology_expired: AtomicBool,
    // 0: the store is the one remembered; 1: empty; 2: replaced.
    store_mismatch: AtomicU8,
    store_topology_missing: AtomicBool,
}

// === impl Readiness ===

impl Readiness {
    /// Records that a snapshot is in force and whether it is sealed (written by the reloader).
    pub fn set_config(&self, sealed: bool) {
        self.sealed.store(sealed, Ordering::Release);
        self.config_loaded.store(true, Ordering::Release);
    }

    /// Records that shutdown has begun (written by the binary on SIGTERM/SIGINT).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Records whether the shared store has been unreachable past its bound (written by the store watcher).
    pub fn set_store_unreachable(&self, unreachable: bool) {
        self.store_unreachable.store(unreachable, Ordering::Release);
    }

    /// Records whether the shared store is not the one this replica remembers (written by the store watcher).
    pub fn set_store_mismatch(&self, mismatch: Option<StoreMismatch>) {
        let v = match mismatch {
            None => 0,
            Some(StoreMismatch::Empty) => 1,
            Some(StoreMismatch::Replaced) => 2,
        };
        self.store_mismatch.store(v, Ordering::Release);
    }

    /// Records whether the last load met a stored record this build cannot read (written by the reloader).
    pub fn set_store_unreadable(&self, unreadable: bool) {
        self.store_unreadable.store(unreadable, Ordering::Release);
    }

    /// Records whether the store has been unreachable past the longest time its last topology may be served.
    pub fn set_topology_expired(&self, expired: bool) {
        self.topology_expired.store(expired, Ordering::Release);
    }

    /// Whether the topology in force is too old to serve (the proxy answers 503 while it is).
    pub fn topology_expired(&self) -> bool {
        self.topology_expired.load(Ordering::Acquire)
    }

    /// Records whether the topology in force lacks the store's objects because the store has not been read since
    /// start (written by the reloader: set when the first load could not reach the store, cleared by the first
    /// load that did).
    pub fn set_store_topology_missing(&self, missing: bool) {
        self.store_topology_missing
            .store(missing, Ordering::Release);
    }

    /// Whether the topology in force is the routing file alone because the store has never been read: what it
    /// does not know (an object created through the admin API) may exist, so the planes answer 503 rather than
    /// "unknown" for it.
    pub fn store_topology_missing(&self) -> bool {
        self.store_topology_missing.load(Ordering::Acquire)
    }

    /// `Ok` when ready, else the first reason it is not.
    ///
    /// # Errors
    /// The reason the process is not ready.
    pub fn check(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::Acquire) {
            return Err(NotReady::Draining);
        }
        if !self.config_loaded.load(Ordering::Acquire) {
            return Err(NotReady::NoConfig);
        }
        if self.sealed.load(Ordering::Acquire) {
            return Err(NotReady::Sealed);
        }
        // A store that is not the one remembered is the more precise reason: its loads are refused too.
        match self.store_mismatch.load(Ordering::Acquire) {
            0 => {}
            1 => return Err(NotReady::StoreEmpty),
            _ => return Err(NotReady::StoreReplaced),
        }
        // The store answering again is not enough while its objects have not been loaded yet.
        if self.store_unreachable.load(Ordering::Acquire)
            || self.store_topology_missing.load(Ordering::Acquire)
        {
            return Err(NotReady::StoreUnreachable);
        }
        if self.store_unreadable.load(Ordering::Acquire) {
            return Err(NotReady::StoreUnreadable);
        }
        Ok(())
    }
}
