//! Behaviour tests, by area.

mod admin;
mod cli;
mod cli_admin;
mod cli_messages;
mod connections;
mod console;
mod echo;
mod exchange;
mod file_reads;
mod first_config;
mod framing;
mod health;
mod identity;
mod identity_abuse;
mod injection;
mod leaks;
mod messages;
mod observability;
mod paths;
mod reload;
mod reload_guard;
mod replicas;
mod reseal;
mod ssrf;
mod tokens;
mod upstream;
