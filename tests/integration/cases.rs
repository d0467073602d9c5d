//! Behaviour tests, by area.

mod admin;
mod cli;
mod exchange;
mod identity;
mod identity_abuse;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod replicas;
mod ssrf;
mod tokens;
mod upstream;
