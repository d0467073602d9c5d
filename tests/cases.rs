//! Behaviour tests, by area.

mod injection;
mod observability;
mod paths;
mod reload;
mod tokens;
mod upstream;
