//! Behaviour tests, by area.

mod injection;
mod paths;
mod tokens;
mod upstream;
