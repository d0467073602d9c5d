//! Test support: signing keys and tokens, recording mock upstreams, the in-process harness, HTTP clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

pub mod admin_client;
pub mod browser;
pub mod client;
pub mod harness;
pub mod idp;
pub mod keys;
pub mod mock;
pub mod process;
pub mod redis_server;
pub mod tls;
