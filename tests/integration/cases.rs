//! Behaviour tests, by area.

mod admin;
mod cli;
mod connections;
mod exchange;
mod framing;
mod identity;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod replicas;
mod tokens;
mod upstream;
