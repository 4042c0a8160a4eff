//! The record: what a host is meant to run. `spec` is one container as the user set it
//! (captured, compared, turned back into a create request), `state` the file that lists them,
//! `rules` the scope and allow rules, `schema` and `validate` the checks of a hand-edited list
//! (what a create request can carry, and what the engine takes), `shape` what the file must be
//! before it is read at all, and `change` the values a changed container differs in. Pure, apart
//! from reading and writing the state file: no engine here.

pub mod change;
pub mod rules;
pub mod schema;
mod shape;
pub mod spec;
pub mod state;
pub mod validate;
