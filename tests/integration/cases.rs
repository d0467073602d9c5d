//! Behaviour tests, by area.

mod admin;
mod cli;
mod cli_admin;
mod connections;
mod console;
mod echo;
mod exchange;
mod file_reads;
mod framing;
mod identity;
mod identity_abuse;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod reload_guard;
mod replicas;
mod reseal;
mod sdk;
mod ssrf;
mod tokens;
mod upstream;
