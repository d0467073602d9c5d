//! Behaviour tests, by area.

mod injection;
