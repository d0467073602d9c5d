//! Behaviour tests, by area.

mod admin;
mod cli;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod tokens;
mod upstream;
