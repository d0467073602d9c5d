//! The one integration-test binary: every behaviour test of idguard, against real servers on 127.0.0.1:0,
//! mock upstreams that record what they receive, and real TLS. Add cases under `tests/cases/`, not new files
//! beside this one (each file here would link another binary).

mod cases;
mod common;
