//! Behaviour tests, by area.

mod admin;
mod cli;
mod exchange;
mod file_reads;
mod identity;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod reload_guard;
mod replicas;
mod reseal;
mod tokens;
mod upstream;
