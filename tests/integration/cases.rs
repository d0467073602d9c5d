//! Behaviour tests, by area.

mod admin;
mod cli;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod replicas;
mod tokens;
mod upstream;
