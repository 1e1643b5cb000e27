//! ngm's migration model: the request and state types that travel between steps, the pure
//! planners for every step of the procedure, and the port traits that adapters implement.
//!
//! This crate does no I/O: no AWS SDK, no kube client, no runtime, no clock and no environment.
//! Steps observe the world through [`ports`], hand plain structs from [`model`] to a planner in
//! [`plan`] together with an injected `now`, execute the returned actions and report a new
//! [`state::MigrationState`].

pub mod asl;
pub mod marks;
pub mod model;
pub mod plan;
pub mod ports;
pub mod request;
pub mod state;

mod digest;
#[cfg(test)]
mod fixtures;

pub use digest::{Fnv, hex_of};
#[cfg(test)]
mod state_tests;
