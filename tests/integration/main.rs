//! The one integration-test binary: every behaviour test of idguard, against real servers on 127.0.0.1:0,
//! mock upstreams that record what they receive, and real TLS. Add cases under `tests/integration/cases/`; a new
//! file directly under `tests/` would link another test binary.

// Tests panic on the unexpected by design; the workspace's unwrap/expect denial is for production code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
mod common;
