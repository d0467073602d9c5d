//! The one ready/not-ready state both planes share. `/readyz` reports it; each flag has one writer.

use std::sync::atomic::{AtomicBool, Ordering};

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
        if self.store_unreachable.load(Ordering::Acquire) {
            return Err(NotReady::StoreUnreachable);
        }
        if self.store_unreadable.load(Ordering::Acquire) {
            return Err(NotReady::StoreUnreadable);
        }
        Ok(())
    }
}
