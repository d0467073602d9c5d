//! Behaviour tests, by area.

mod cli;
mod injection;
mod leaks;
mod observability;
mod paths;
mod reload;
mod tokens;
mod upstream;
