//! Raw → [`Snapshot`]: every check in one pass, every error collected with the path of its field, so an operator
//! fixes a file in one round. Nothing here does I/O except reading the JWKS files the config names and the
//! environment variables credentials name (both through [`BuildContext`]).
//!
//! # Layout
//! [`validate()`] runs the sections in order, each adding its errors to one collector, and assembles the snapshot:
//! - `settings`: `[listeners]`, `[limits]`, `[upstream]`, `[reload]`, `[tokens]`, `[store]`, `[admin]`,
//!   `[identity]`.
//! - `issuers`: `[[issuers]]` and idguard's own issuer; [`read_jwks`], [`normalize_typ`].
//! - `directory`: `[[organizations]]`, `[[groups]]`, `[[users]]`, and references to them.
//! - `principals`: `[[agents]]` (with their permission) and `[[clients]]`, and the credentials both register.
//! - `nodes`: `[[credentials]]`, `[[llm]]` and `[[external]]`.
//! - `services`: `[[enterprise]]`.
//! - `grants`: `[[outbound]]` and `[[inbound]]`.
//! - `rules`: what every section shares: the error collector, id, scope ([`is_scope_token`]), header, audience
//!   and URL rules.
//!
//! Defaults live in [`crate::defaults`]; key parsing ([`public_key`]) in [`crate::keys`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{ValidationError, ValidationErrors};
use crate::raw::RawConfig;
use crate::seal::MasterKeys;
use crate::snapshot::Snapshot;

mod directory;
mod grants;
mod issuers;
mod nodes;
mod principals;
mod rules;
mod services;
mod settings;

pub use crate::defaults::METHODS as DEFAULT_METHODS;
pub use crate::keys::public_key;
pub use issuers::{normalize_typ, read_jwks};
pub use rules::is_scope_token;
pub use settings::url_has_password;

/// What building a snapshot may consult besides the raw file.
pub struct BuildContext<'a> {
    /// Directory that relative paths in the file are relative to.
    pub base_dir: PathBuf,
    /// Master keys for sealed credential values (`None`: sealed values stay unavailable).
    pub master_keys: Option<&'a MasterKeys>,
    /// Environment lookup for `env = "..."` credentials (a closure so tests need not touch the process env).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The generation the snapshot will carry.
    pub generation: u64,
    /// The public listener's bound address, once `serve` has bound it: an omitted or `"auto"` `[identity]
    /// issuer` is derived from it rather than from `[listeners] public` (which may name port 0).
    pub public_addr: Option<std::net::SocketAddr>,
}

/// `[store]`'s Redis connection settings alone, for opening the store before the first snapshot exists (the
/// same rules [`validate`] applies).
///
/// # Errors
/// Every problem found in those settings, each with its field path.
pub fn redis_connection(
    raw: &crate::raw::RawStore,
    base_dir: &std::path::Path,
) -> Result<crate::snapshot::RedisConnection, ValidationErrors> {
    let mut errors = rules::Errors(Vec::new());
    let connection = settings::redis_connection(raw, base_dir, &mut errors);
    if errors.0.is_empty() {
        Ok(connection)
    } else {
        Err(ValidationErrors(errors.0))
    }
}

/// Validates `raw` and builds the snapshot.
///
/// # Errors
/// Every problem found, each with its field path; never an empty list.
pub fn validate(raw: RawConfig, ctx: &BuildContext<'_>) -> Result<Snapshot, ValidationErrors> {
    // The order of the sections is the order of the errors an operator reads.
    let mut errors = rules::Errors(Vec::new());
    let settings = settings::settings(&raw, ctx, &mut errors);
    let mut issuers = issuers::issuers(&raw, ctx, &mut errors);
    // The bound address when serve knows it (the file may name port 0), else the file's.
    let public = settings
        .as_ref()
        .map(|s| (ctx.public_addr.unwrap_or(s.public_addr), s.tls.is_some()));
    let identity = raw
        .identity
        .as_ref()
        .and_then(|r| settings::identity(r, public, &mut errors));
    if let Some(id) = &identity {
        issuers.push(issuers::own_issuer(&raw, id, &mut errors));
    }
    let directory = directory::directory(&raw, &mut errors);
    let (agents, mut audiences) = principals::agents(&raw, &directory, &mut errors);
    let credentials = nodes::credentials(&raw, ctx, &mut errors);
    let nodes = nodes::nodes(&raw, &credentials, &mut errors);
    let services = services::services(&raw, &nodes, &mut audiences, &credentials, &mut errors);
    let (service_grants, edges) = grants::outbound(&raw, &agents, &nodes, &services, &mut errors);
    let clients = principals::clients(&raw, &agents, &services, &directory, &mut errors);
    let inbound = grants::inbound(&raw, &clients, &agents, &mut errors);

    if !errors.0.is_empty() {
        return Err(ValidationErrors(errors.0));
    }
    // `settings` is only None when an error was recorded.
    let Some(settings) = settings else {
        return Err(ValidationErrors(vec![ValidationError {
            path: "listeners".into(),
            line: None,
            message: "invalid".into(),
        }]));
    };
    Ok(Snapshot {
        generation: ctx.generation,
        store_version: 0,
        settings,
        issuers,
        agents,
        credentials,
        nodes,
        edges,
        directory,
        clients,
        inbound,
        services,
        service_grants,
        identity: identity.map(Arc::new),
    })
}

#[cfg(test)]
mod tests;
