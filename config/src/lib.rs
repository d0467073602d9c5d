//! idguard's configuration: the topology model, its parsing and validation, credential sealing, and the
//! immutable [`Snapshot`] that both planes read. This crate speaks no HTTP and depends on no crate of ours.
//!
//! # Layout
//! - [`mod@env`]: every environment variable idguard reads, as a `pub const ENV_*`.
//! - [`clock`]: Unix time through one seam, so tests move time instead of sleeping.
//! - [`raw`]: the serde input types of the routing file (`deny_unknown_fields` everywhere).
//! - [`files`]: reading operator-named files: regular files only, each kind with a size cap.
//! - [`defaults`]: every default applied to a field left out, shared by validation and the admin API.
//! - [`validate`]: raw → [`Snapshot`], collecting every error with the path of the field it concerns; one
//!   submodule per section of the file.
//! - [`snapshot`]: the validated, immutable topology plus settings, replaced whole on reload.
//! - [`secret`]: [`Secret`], the only type a credential value lives in; it prints `[redacted]`.
//! - [`keys`]: registered public keys (JWK or PEM) normalized to a fixed algorithm; client secret digests.
//! - [`seal`]: AES-256-GCM sealing of credential values under versioned master keys.
//! - [`reload`]: load a file (and the store) into a snapshot; watch it (and SIGHUP) and publish each good one.
//! - [`store`]: the [`store::Store`] trait for API-managed objects, and their merge into the file's model; the
//!   [`store::IdentityStore`] trait for the identity service's shared state.
//! - [`identity`]: the seams between the identity service and the proxy (token exchange, local signing keys,
//!   revocations) and the `jti` digest both sides compute.
//! - [`hashes`]: the stored forms of client secrets, credential fingerprints and passwords.
//! - [`net`]: which addresses upstreams may not reach (every IPv4 and IPv6 spelling), and the resolver seam.
//! - [`readiness`]: the shared ready/not-ready state that `/readyz` reports.
//! - [`error`]: the crate's error types.

pub mod clock;
pub mod defaults;
pub mod env;
pub mod error;
pub mod files;
pub mod hashes;
pub mod identity;
pub mod keys;
pub mod net;
pub mod raw;
pub mod readiness;
pub mod reload;
pub mod seal;
pub mod secret;
pub mod snapshot;
pub mod store;
pub mod validate;

pub use clock::Clock;
pub use error::{ConfigError, SealError, ValidationError, ValidationErrors};
pub use net::Resolver;
pub use readiness::Readiness;
pub use reload::{Loader, Reloader, SnapshotRx, SnapshotTx};
pub use seal::MasterKeys;
pub use secret::Secret;
pub use snapshot::Snapshot;
