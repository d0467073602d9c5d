//! The `idguard` binary's library: the one place every plane is built and wired, so that `idguard serve`,
//! `idguard demo` and the integration tests start exactly the same thing.
//!
//! # Layout
//! - [`serve`]: [`serve::Server`] builds the store, the identity service, the admin API and the proxy from a
//!   routing file and the [`serve::Environment`], and runs them on listeners the caller has bound until a
//!   shutdown future completes; [`serve::shutdown_signal`] is that future for a real process.
//! - [`admin_cli`]: `idguard admin`, a client of the admin API (tables for people, JSON for scripts; secrets
//!   from standard input, never the command line).
//! - [`commands`]: the one-shot subcommands `check`, `export` and `seal`.
//! - [`demo`]: `idguard demo`, the whole flow on one machine.
//! - [`health`]: `idguard health URL`, a plain-HTTP probe of `/healthz` or `/readyz` for container health
//!   checks in images without a shell.
//! - [`init`], [`secret`], [`token`]: a first routing file and master key, client secrets for agents the file
//!   declares, and tokens for shell use.
//!
//! The crates it wires: `idguard-config` (model, validation, snapshot; depends on none of ours), and over it
//! `idguard-proxy` (data plane), `idguard-identity` (OAuth authorization server) and `idguard-admin` (control
//! plane), none of which depends on another.

pub mod admin_cli;
pub mod commands;
pub mod demo;
pub mod health;
pub mod init;
pub mod secret;
pub mod serve;
pub mod token;

pub use serve::{Environment, Listeners, Options, Server};
