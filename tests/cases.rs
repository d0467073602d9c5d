//! Behaviour tests, by area.

mod injection;
mod tokens;
